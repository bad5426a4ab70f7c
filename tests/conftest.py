"""Shared pytest fixtures.  Each block belongs to one part of the pipeline; add yours as a new block."""
import os

import pytest


# ------------------------------------------------------------------------ evaluate stage (issue #3)
# Tests never touch the network, also when run as plain `pytest` (the Makefile sets these too).
# Set at import, before anything imports huggingface_hub/datasets/transformers, which read them once.
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")

# The package pins the numerical kernels (OpenBLAS core type, numpy's SIMD loops) before numpy
# loads; a test module that imports pandas or numpy first would run other kernels than the CLI
# and disagree with a committed number in its last printed digit.  Import it before any of them.
import pipeline  # noqa: E402,F401


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    """Tiny GPT-NeoX (in a stand-in hub cache, with step revisions) and OPT (local folders) models,
    their BPE tokenizer and the local tasks; see tests/tiny_models.py.  The hub cache is patched
    for the whole session so that ``capcast-test/...`` ids load offline through transformers."""
    import huggingface_hub.constants

    from tests.tiny_models import build_zoo

    zoo = build_zoo(tmp_path_factory.mktemp("tiny_zoo"))
    patch = pytest.MonkeyPatch()
    patch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(zoo.hub_cache))
    yield zoo
    patch.undo()


@pytest.fixture(scope="session")
def lm_eval_runs(tiny_zoo, tmp_path_factory):
    """lm-eval's own CLI on the tiny ladder (3 sizes x 2 checkpoints, both tasks) with
    --log_samples: what a user's ``lm_eval --output_path`` folder holds.  Run once per session
    (about 40 s); tests copy it before changing anything in it."""
    from tests.test_lm_eval_import import LADDER, LASTWORD, MC
    from tests.tiny_models import run_lm_eval_cli

    out = tmp_path_factory.mktemp("lm_eval_runs") / "out"
    files = run_lm_eval_cli(tiny_zoo, out, LADDER, (MC, LASTWORD))
    assert len(files) == len(LADDER)
    return out
# ------------------------------------------------------------------- end of evaluate stage block
