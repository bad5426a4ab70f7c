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
OPT_SHAPES_SOURCE = ("facebookresearch/metaseq@f7ffa5fd61cf90f498a36d365c13dd7f1a912ff7:"
                     "metaseq/launcher/opt_job_constants.py (layers, d_model; d_ffn = 4 d_model)")
CEREBRAS_SHAPES_SOURCE = CEREBRAS_SOURCE.replace("(training table, 20 tokens/param)", "(model table)")


def non_embedding_from_shape(n_layers: int, d_model: int, d_ffn: int) -> float:
    """Parameters of a GPT-style decoder without its embeddings: per layer the attention
    projections (4 d^2 + 4 d, with biases), the MLP (2 d d_ffn + d_ffn + d) and two layer norms
    (4 d), plus the final layer norm (2 d).  Gives Pythia's published non-embedding counts
    exactly (tests/test_scores.py); used where a family publishes only its shapes (OPT,
    Cerebras-GPT)."""
    d = d_model
    return float(n_layers * (4 * d * d + 2 * d * d_ffn + 9 * d + d_ffn) + 2 * d)


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
    lineage: str | None = None  # the recipe this family is a variant of (its ladders are left out with it)

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
                  tokens_per_step=PYTHIA_TOKENS_PER_STEP, aliases=aliases,
                  lineage="pythia" if deduped else None)  # the same recipe on the deduplicated Pile


_OPT_SIZES = (  # nominal, total, layers, d_model
    ("125m", 125e6, 12, 768), ("350m", 350e6, 24, 1024), ("1.3b", 1.3e9, 24, 2048), ("2.7b", 2.7e9, 32, 2560),
    ("6.7b", 6.7e9, 32, 4096), ("13b", 13e9, 40, 5120), ("30b", 30e9, 48, 7168), ("66b", 66e9, 64, 9216),
    ("175b", 175e9, 96, 12288))
OPT_TOKENS = 180e9

# (size, params, tokens, final step) from the Cerebras modelzoo training table; (layers, d_model,
# d_ffn) from its model table.
_CEREBRAS = (("111M", 111e6, 2.22e9, 9037, 10, 768, 3072), ("256M", 256e6, 5.12e9, 9468, 14, 1088, 4352),
             ("590M", 590e6, 11.8e9, 21836, 18, 1536, 6144), ("1.3B", 1.316e9, 26.3e9, 24334, 24, 2048, 8192),
             ("2.7B", 2.652e9, 53.0e9, 49041, 32, 2560, 10240), ("6.7B", 6.658e9, 133e9, 62522, 32, 4096, 16384),
             ("13B", 12.853e9, 257e9, 174335, 40, 5120, 20480))

_BLOOM = (("560m", 560e6), ("1b1", 1.1e9), ("1b7", 1.7e9), ("3b", 3.0e9), ("7b1", 7.1e9))

FAMILIES: dict[str, Family] = {
    f.name: f for f in (
        _pythia(False),
        _pythia(True),
        Family("opt", f"{OPT_SOURCE}; non-embedding counts from shapes: {OPT_SHAPES_SOURCE}",
               tuple(Model(f"facebook/opt-{s}", s, p, OPT_TOKENS, non_embedding_from_shape(L, d, 4 * d))
                     for s, p, L, d in _OPT_SIZES)),
        Family("cerebras-gpt", f"{CEREBRAS_SOURCE}; non-embedding counts from shapes: {CEREBRAS_SHAPES_SOURCE}",
               tuple(Model(f"cerebras/Cerebras-GPT-{s}", s, p, d, non_embedding_from_shape(L, dm, ff), st)
                     for s, p, d, st, L, dm, ff in _CEREBRAS),
               tokens_per_param=20.0),
        Family("bloom", BLOOM_SOURCE, tuple(Model(f"bigscience/bloom-{s}", s, p, 366e9) for s, p in _BLOOM)),
    )
}


def _index() -> dict[str, tuple[Family, Model]]:
    """Hub ids and aliases, and their short names (``pythia-1.4b`` for ``EleutherAI/pythia-1.4b``):
    a table that names models without the organisation must find the same facts."""
    idx = {}
    for fam in FAMILIES.values():
        for m in fam.models:
            idx[m.hf_id.lower()] = (fam, m)
        for alias, target in fam.aliases.items():
            idx[alias.lower()] = (fam, next(m for m in fam.models if m.hf_id == target))
    short: dict[str, set] = {}
    for key, (fam, m) in idx.items():
        short.setdefault(key.rpartition("/")[2], set()).add((fam.name, m.hf_id))
    for name, found in short.items():
        if len(found) == 1 and name not in idx:  # unambiguous short names only
            fam_name, hf_id = next(iter(found))
            idx[name] = idx[hf_id.lower()]
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
        f"unknown model {model_id!r}: not in the families registry (pipeline/sources/families.py); "
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
