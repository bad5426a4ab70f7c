"""Checkpoint families: published facts (sizes, tokens, schedules), each with its citation.

Parameter counts are as published; where capcast loads a model (evaluate stage), the counted
number wins and is recorded beside the published one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

PYTHIA_SOURCE = (
    "EleutherAI/pythia@a19eecb807ec2c79a39ebf18108816e6ffffc1d5:README.md "
    "(143,000 steps x 2,097,152 tokens; counts as on the HF model cards, mirrored at "
    "shimo-lab/modelmap@7614095ff8f57601283c9c9764338b13e8c66d99)"
)
OPT_SOURCE = (
    "Zhang et al. 2022, OPT (arXiv:2205.01068) Table 1 sizes; facebook/opt-* model cards: "
    "'180B tokens' corpus. The paper also states ~300B tokens trained; capcast uses 180B (issue #2)."
)
CEREBRAS_SOURCE = (
    "Cerebras/modelzoo@85864f91909ccab00ef25bb72b951983660e196a:"
    "modelzoo/transformers/pytorch/gpt3/configs/Cerebras_GPT/README.md (training table, 20 tokens/param)"
)
BLOOM_SOURCE = "bigscience/bloom-* model cards: 366B tokens; nominal sizes"


@dataclass(frozen=True)
class Model:
    hf_id: str
    size: str  # nominal size label as the family names it (70m, 1.3B, ...)
    params: float  # total parameters, as published
    train_tokens: float  # tokens at the final checkpoint
    params_non_embedding: float | None = None
    final_step: int | None = None


@dataclass(frozen=True)
class Family:
    name: str
    source: str
    models: tuple[Model, ...]
    tokens_per_step: float | None = None  # fixed batch size in tokens, when checkpoints are by step
    tokens_per_param: float | None = None  # fixed D/N recipe (Cerebras-GPT), else None
    aliases: dict = field(default_factory=dict)  # other names of a model -> hf_id

    def tokens_at(self, model: Model, step: int | None) -> float:
        """Tokens seen at ``step`` (the final checkpoint when step is None)."""
        if step is None or self.tokens_per_step is None:
            return model.train_tokens
        return float(step) * self.tokens_per_step


_PYTHIA_SIZES = (  # nominal, total, non-embedding (HF cards)
    ("70m", 70_426_624, 18_915_328),
    ("160m", 162_322_944, 85_056_000),
    ("410m", 405_334_016, 302_311_424),
    ("1b", 1_011_781_632, 805_736_448),
    ("1.4b", 1_414_647_808, 1_208_602_624),
    ("2.8b", 2_775_208_960, 2_517_652_480),
    ("6.9b", 6_857_302_016, 6_444_163_072),
    ("12b", 11_846_072_320, 11_327_027_200),
)
PYTHIA_TOKENS_PER_STEP = 2_097_152
PYTHIA_FINAL_STEP = 143_000


def _pythia(deduped: bool) -> Family:
    suffix = "-deduped" if deduped else ""
    models = tuple(
        Model(f"EleutherAI/pythia-{size}{suffix}", size, float(total),
              PYTHIA_FINAL_STEP * PYTHIA_TOKENS_PER_STEP, float(non_emb), PYTHIA_FINAL_STEP)
        for size, total, non_emb in _PYTHIA_SIZES
    )
    # Old (v0) size names still appear in leaderboards and evals: 1.3b = 1.4b, 2.7b = 2.8b, ...
    old = {"125m": "160m", "350m": "410m", "800m": "1b", "1.3b": "1.4b", "2.7b": "2.8b", "6.7b": "6.9b", "13b": "12b"}
    aliases = {f"EleutherAI/pythia-{o}{suffix}": f"EleutherAI/pythia-{n}{suffix}" for o, n in old.items()}
    aliases.update({f"EleutherAI/pythia-v1.1-{s}{suffix}": f"EleutherAI/pythia-{s}{suffix}" for s, _, _ in _PYTHIA_SIZES})
    if not deduped:
        aliases["EleutherAI/pythia-1b-bf16"] = "EleutherAI/pythia-1b"
        aliases["EleutherAI/pythia-v1.1-1b-bf16"] = "EleutherAI/pythia-1b"
    return Family("pythia-deduped" if deduped else "pythia", PYTHIA_SOURCE, models,
                  tokens_per_step=PYTHIA_TOKENS_PER_STEP, aliases=aliases)


_OPT_SIZES = (("125m", 125e6), ("350m", 350e6), ("1.3b", 1.3e9), ("2.7b", 2.7e9), ("6.7b", 6.7e9),
              ("13b", 13e9), ("30b", 30e9), ("66b", 66e9), ("175b", 175e9))
OPT_TOKENS = 180e9

# (size, params, tokens, final step) from the Cerebras modelzoo training table.
_CEREBRAS = (("111M", 111e6, 2.22e9, 9037), ("256M", 256e6, 5.12e9, 9468), ("590M", 590e6, 11.8e9, 21836),
             ("1.3B", 1.316e9, 26.3e9, 24334), ("2.7B", 2.652e9, 53.0e9, 49041),
             ("6.7B", 6.658e9, 133e9, 62522), ("13B", 12.853e9, 257e9, 174335))

_BLOOM = (("560m", 560e6), ("1b1", 1.1e9), ("1b7", 1.7e9), ("3b", 3.0e9), ("7b1", 7.1e9))

FAMILIES: dict[str, Family] = {
    f.name: f for f in (
        _pythia(False),
        _pythia(True),
        Family("opt", OPT_SOURCE, tuple(Model(f"facebook/opt-{s}", s, p, OPT_TOKENS) for s, p in _OPT_SIZES)),
        Family("cerebras-gpt", CEREBRAS_SOURCE,
               tuple(Model(f"cerebras/Cerebras-GPT-{s}", s, p, d, None, st) for s, p, d, st in _CEREBRAS),
               tokens_per_param=20.0),
        Family("bloom", BLOOM_SOURCE, tuple(Model(f"bigscience/bloom-{s}", s, p, 366e9) for s, p in _BLOOM)),
    )
}


def _index() -> dict[str, tuple[Family, Model]]:
    idx = {}
    for fam in FAMILIES.values():
        for m in fam.models:
            idx[m.hf_id.lower()] = (fam, m)
        for alias, target in fam.aliases.items():
            idx[alias.lower()] = (fam, next(m for m in fam.models if m.hf_id == target))
    return idx


_INDEX = _index()


class UnknownModel(KeyError):
    pass


def lookup(model_id: str) -> tuple[Family, Model]:
    """Family and published facts of a model id (case-insensitive, old Pythia names accepted)."""
    key = model_id.strip().lower()
    if key in _INDEX:
        return _INDEX[key]
    raise UnknownModel(
        f"unknown model {model_id!r}: not in the families registry (pipeline/families.py); "
        f"known families: {', '.join(FAMILIES)}"
    )


def find(model_id: str) -> tuple[Family, Model] | None:
    try:
        return lookup(model_id)
    except UnknownModel:
        return None


_STEP = re.compile(r"^step(\d+)$")


def parse_step(revision: str | None) -> int | None:
    """'step3000' -> 3000; 'main'/None -> None (the final checkpoint)."""
    if revision in (None, "", "main"):
        return None
    m = _STEP.match(revision)
    if not m:
        raise ValueError(f"revision {revision!r} is not of the form stepN (or 'main')")
    return int(m.group(1))
