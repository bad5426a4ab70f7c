"""A seeded zoo of simulated ladders, generated from forms capcast does not fit.

capcast learns which forecasting method to trust, and how wide its intervals must be, from
leave-one-ladder-out errors over real ladders and this zoo.  Were the zoo drawn from capcast's own
candidate laws, that choice would be rigged; so every ladder here comes from the loss surfaces and
accuracy links of :mod:`pipeline.ladders.zoo_forms` (Kaplan et al. 2020's joint law, a
non-separable law with a size-dependent data exponent, Caballero et al. 2023's broken power law;
Richards, Gompertz, probit and Weibull links and their mixtures), never from Chinchilla plus a
logistic.  ``docs/zoo.md`` describes each design.

One ladder = one task of one simulated benchmark: an accuracy row (``sim_<k>:acc``), a task loss
row (``sim_<k>:bpb``, bits per byte of the correct answer) and a corpus loss row (``corpus:bpb``)
per unit (a run's checkpoint, or its final model).  Accuracy is binomial on a real benchmark's
number of items, after a per-run (seed) scatter of the latent loss and a per-unit jitter of the
accuracy (Madaan et al. 2024, arXiv 2406.10229: seeds move benchmark scores by about a point).

Deterministic: ``simulate(design, seed)`` draws the ladder's structure from
``np.random.default_rng([design_index, seed])`` and its noise from ``[design_index, seed, 1]``, and
rounds every number to 6 significant digits (sizes to 3), so the same call gives the same bytes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from pipeline import scores
from pipeline.errors import CapcastError
from pipeline.ladders import zoo_forms as forms

DESIGNS: tuple[str, ...] = ("checkpoints_constant_lr", "multi_budget", "isoflop", "narrow_range", "broken_power_law",
                            "odd_link", "near_chance", "near_ceiling", "emergent", "inverse")
# (name, items, chance) of real benchmarks' evaluation splits: the binomial noise of a ladder is
# that of a real benchmark (stderr 0.3-3 points), its chance that benchmark's.
BENCHMARKS = (("wsc273", 273, 0.5), ("openbookqa", 500, 0.25), ("logiqa", 651, 0.25), ("sciq", 1000, 0.25),
              ("arc_challenge", 1172, 0.25), ("commonsense_qa", 1221, 0.2), ("winogrande", 1267, 0.5),
              ("piqa", 1838, 0.5), ("social_iqa", 1954, 1 / 3), ("arc_easy", 2376, 0.25), ("boolq", 3270, 0.5),
              ("hellaswag", 10042, 0.25))
# Free-form answers (chance 0): emergent tasks are often scored by exact match.
FREE_FORM = (("gsm8k", 1319, 0.0), ("lambada_openai", 5153, 0.0))
MULTIPLIERS = (0.5, 1, 2, 4, 8, 16, 32)  # token budgets of multi_budget, in units of 20 tokens per parameter
LINK_OF = {"odd_link": "odd", "near_chance": "near_chance", "near_ceiling": "near_ceiling", "emergent": "emergent",
           "inverse": "inverse"}  # the rest: an asymmetric smooth sigmoid ("smooth")
SUITE = "zoo"


@dataclass(frozen=True)
class SimLadder:
    """One simulated ladder: its scores-table rows and the parameters that generated them."""
    name: str  # "zoo/<design>/<seed:04d>"
    design: str
    seed: int
    rows: pd.DataFrame = field(repr=False)  # validated scores-table rows (acc, bpb, corpus bpb)
    target: str  # "sim_<k>:acc"
    loss: str  # "sim_<k>:bpb"
    truth: dict = field(repr=False)  # generating parameters, JSON-serialisable


def simulate(design: str, seed: int, noise: bool = True) -> SimLadder:
    """The ladder ``seed`` of ``design`` (one of :data:`DESIGNS`).  ``noise=False`` gives the same
    ladder with noise-free values (for tests of :func:`truth_curve`)."""
    ladder, columns = _draw(design, seed, noise)
    return replace(ladder, rows=scores.validate(pd.DataFrame(columns), origin=ladder.name))


def zoo(n_per_design: int = 30, seed: int = 0) -> list[SimLadder]:
    """``n_per_design`` ladders of every design (300 by default), seeds ``seed * 10000 + i``, so
    zoos of different ``seed`` share no ladder.  Each ladder equals ``simulate(design, its seed)``."""
    if not 0 < n_per_design <= 10000:
        raise CapcastError(f"n_per_design must be in 1..10000, got {n_per_design}")
    drawn = [_draw(d, seed * 10000 + i, True) for d in DESIGNS for i in range(n_per_design)]
    # One frame and one validation for the whole zoo: pandas' and validate's fixed costs per call
    # would be most of the cost of a ladder.  On the concatenation validate also checks that no
    # two ladders share a key.
    table = pd.DataFrame({k: np.concatenate([cols[k] for _, cols in drawn]) for k in drawn[0][1]})
    rows = scores.validate(table, origin="zoo")
    ends = np.cumsum([len(cols["model"]) for _, cols in drawn])
    return [replace(ladder, rows=rows.iloc[end - len(cols["model"]):end].reset_index(drop=True))
            for (ladder, cols), end in zip(drawn, ends)]


def _draw(design: str, seed: int, noise: bool) -> tuple[SimLadder, dict]:
    """The ladder (its ``rows`` still None) and the columns of its rows, not validated."""
    if design not in DESIGNS:
        raise CapcastError(f"unknown zoo design {design!r}; one of {', '.join(DESIGNS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise CapcastError(f"zoo seed must be a whole number >= 0, got {seed!r}")
    index, seed = DESIGNS.index(design), int(seed)
    rng = np.random.default_rng([index, seed])
    name, task = f"zoo/{design}/{seed:04d}", f"sim_{index}_{seed}"
    bench, items, chance = _benchmark(rng, design)
    law = forms.draw_loss(rng, forms.pick(rng, ("kaplan", "nonseparable")))
    units, layout = _layout(rng, design, law)
    law, link = _generators(rng, design, law, units, chance)
    truth = _jsonable({
        "design": design, "seed": seed, "benchmark": bench, "n_items": items, "chance": chance, "layout": layout,
        "loss_law": law, "link": link, "task_scale": rng.uniform(0.25, 0.55), "bytes_per_token": rng.uniform(3.5, 4.5),
        "noise": {"seed_sd": rng.uniform(0.002, 0.006), "acc_sd": rng.uniform(0.002, 0.006),
                  "bpb_sd": rng.uniform(0.002, 0.006), "corpus_sd": rng.uniform(0.0005, 0.002)},
        "corpus": "corpus:bpb"})
    runs = {r: f"{name}/run{r:03d}-N{_short(n)}-D{_short(d)}"
            for r, n, d in zip(units["run"].tolist(), units["N"].tolist(), units["Dfinal"].tolist())}
    models = np.array([runs[r] for r in units["run"].tolist()])
    truth["targets"] = sorted(set(models[units["target"]].tolist()))
    noise_rng = np.random.default_rng([index, seed, 1]) if noise else None
    columns = _rows(units, models, truth, task, name, noise_rng)
    return SimLadder(name, design, seed, None, f"{task}:acc", f"{task}:bpb", truth), columns


def truth_curve(ladder: SimLadder, params, tokens) -> np.ndarray:
    """Noise-free accuracy of *finished* runs of ``params`` parameters on ``tokens`` tokens."""
    N, D = np.broadcast_arrays(np.asarray(params, float), np.asarray(tokens, float))
    t = ladder.truth
    return forms.accuracy(t["link"], forms.loss(t["loss_law"], N, D), 6.0 * N * D)


def truth_loss(ladder: SimLadder, params, tokens) -> np.ndarray:
    """Noise-free task loss (the ``bpb`` rows' scale) of finished runs: no lag, no seed scatter."""
    N, D = np.broadcast_arrays(np.asarray(params, float), np.asarray(tokens, float))
    return ladder.truth["task_scale"] * forms.loss(ladder.truth["loss_law"], N, D)


# ------------------------------------------------------------------------------- the ladder
def _benchmark(rng, design: str) -> tuple[str, int, float]:
    pool = BENCHMARKS + (FREE_FORM if design == "emergent" else ())
    name, items, chance = pool[int(rng.integers(len(pool)))]
    return name, items, chance


def _generators(rng, design: str, law: dict, units: dict, chance: float) -> tuple[dict, dict]:
    """The loss law (replaced by a broken power law for that design) and the accuracy link,
    the link's rise placed along the range of the ladder's finished-run losses."""
    N, D = units["N"][units["final"]], units["D"][units["final"]]
    if design == "broken_power_law":
        C = 6.0 * N * D
        C0, span = float(C.min()), float(np.log10(C.max() / C.min()))
        if rng.random() >= 0.6:  # the task's error itself breaks; the loss stays smooth
            ceil = chance + (1 - chance) * rng.uniform(0.8, 1.0)
            return law, {"kind": "bnsl_error", "a0": chance, "ceil": ceil, "C0": C0,
                         **forms.draw_bnsl(rng, span, "error")}
        law = {"form": "bnsl", "E": rng.uniform(1.5, 2.1), "C0": C0, **forms.draw_bnsl(rng, span, "loss")}
    # Position t along the ladder: t = 0 at its worst finished run, 1 at its best, geometric in the
    # reducible loss L - E, so that t = 2 is about one more span of the ladder's compute beyond
    # it (and reachable: L never drops below E).
    E, L = law["E"], forms.loss(law, N, D)
    hi, lo = float(L.max()) - E, float(L.min()) - E
    return law, forms.draw_link(rng, LINK_OF.get(design, "smooth"), chance, lambda t: E + hi * (lo / hi) ** t)


def _rows(units: dict, models: np.ndarray, truth: dict, task: str, name: str, noise_rng) -> dict:
    """Columns of the accuracy, task-loss and corpus-loss rows, unit by unit (not validated)."""
    N, D, n, sd, count = units["N"], units["D"], truth["n_items"], truth["noise"], len(models)
    latent = forms.loss(truth["loss_law"], N, D) * (1 + units["lag"])  # mid-run checkpoints lag
    z = np.zeros((3, count))
    if noise_rng is not None:  # one seed scatter per run, shared by its checkpoints
        latent = latent * (1 + noise_rng.normal(0, sd["seed_sd"], units["run"].max() + 1)[units["run"]])
    p = forms.accuracy(truth["link"], latent, 6.0 * N * D)
    if noise_rng is not None:
        p = np.clip(p + noise_rng.normal(0, sd["acc_sd"], len(p)), 0, 1)
        p = noise_rng.binomial(n, np.round(p, 12)) / n  # rounded: a last-bit difference cannot move a draw
        z = noise_rng.normal(0, 1, (3, count))
    acc = _sig(p)
    bpb = _sig(truth["task_scale"] * latent * (1 + sd["bpb_sd"] * z[1]))
    corpus = _sig(latent / (math.log(2) * truth["bytes_per_token"]) * (1 + sd["corpus_sd"] * z[2]))
    stderr = np.stack([np.sqrt(acc * (1 - acc) / n), bpb * sd["bpb_sd"], corpus * sd["corpus_sd"]], axis=1)
    step = np.where(units["step"] >= 0, units["step"], np.nan)  # final models only: no step
    three = lambda x: np.repeat(x, 3)  # noqa: E731  (a unit's three rows)
    return {"suite": np.full(3 * count, SUITE), "model": three(models), "family": np.full(3 * count, name),
            "params": three(N), "tokens": three(D), "compute_flops": three(_sig(6.0 * N * D)), "step": three(step),
            "task": np.tile([task, task, "corpus"], count), "metric": np.tile(["acc", "bpb", "bpb"], count),
            "value": np.stack([acc, bpb, corpus], axis=1).ravel(), "stderr": _sig(stderr.ravel()),
            "num_fewshot": np.zeros(3 * count, int), "chance": np.tile([truth["chance"], np.nan, np.nan], count),
            "source": np.full(3 * count, f"simulated:{truth['design']}:{truth['seed']}")}


# ------------------------------------------------------------------------------- layouts
def _layout(rng, design: str, law: dict) -> tuple[dict, dict]:
    """Units (run, N, D, Dfinal, step (-1: none), lag, final, target) and the layout's settings."""
    kind = {"checkpoints_constant_lr": "constant_lr", "multi_budget": "multi_budget", "isoflop": "isoflop",
            "narrow_range": "narrow", "broken_power_law": "sizes"}.get(design)
    kind = kind or forms.pick(rng, ("sizes", "sizes_checkpoints", "multi_budget"))
    if kind == "isoflop":
        units, info = _isoflop(rng, law)
    elif kind == "narrow":
        units, info = _narrow(rng)
    elif kind == "multi_budget":
        units, info = _multi_budget(rng)
    else:
        big = kind == "constant_lr"
        units, info = _sizes_ladder(rng, (6, 12) if big else (6, 10), (10, 30) if big else (4, 12),
                                    checkpoints=kind != "sizes")
    columns = {k: np.array([u[k] for u in units]) for k in units[0]}
    if "target" not in columns:  # size ladders: the largest size is the one held out
        columns["target"] = columns["N"] == columns["N"].max()
    return columns, {"layout": kind, **info}


def _sizes(rng, count: tuple, lo: tuple, decades: tuple) -> np.ndarray:
    """Geometric sizes from a random smallest one over a random span; interior ones jittered
    a little (real ladders are not exactly geometric), all to 3 significant digits."""
    n = int(rng.integers(count[0], count[1] + 1))
    first = forms.loguniform(rng, *lo)
    sizes = np.geomspace(first, first * 10 ** rng.uniform(*decades), n)
    sizes[1:-1] *= np.exp(rng.normal(0, 0.05, n - 2))
    return _sig(sizes, 3)


def _run(run: int, N: float, D_final: float, fractions=None, lag_of=None, batch: int = 2 ** 20) -> list[dict]:
    """Units of one run: its final model alone (step -1), or checkpoints at ``fractions`` of its
    schedule, whose tokens are step x batch (small runs halve the batch to keep >= 500 steps)."""
    if fractions is None:
        return [dict(run=run, N=N, D=_sig1(D_final), Dfinal=_sig1(D_final), step=-1, lag=0.0, final=True)]
    while batch > 2 ** 16 and D_final / batch < 500:
        batch //= 2
    total = max(int(round(D_final / batch)), len(fractions))
    steps = np.unique(np.maximum(1, np.round(np.asarray(fractions) * total))).astype(int)
    return [dict(run=run, N=N, D=_sig1(s * batch), Dfinal=_sig1(total * batch), step=int(s),
                 lag=float(lag_of(s / total)), final=bool(s == total)) for s in steps]


def _sizes_ladder(rng, count, checkpoints_count, checkpoints: bool):
    """One recipe at 10-40 tokens per parameter over 1.5-2.5 decades of N.  With checkpoints,
    the learning rate is constant until a cooldown over the last 10-20% of the run
    (warmup-stable-decay: Hu et al. 2024, arXiv 2404.06395; Hägele et al. 2024, arXiv
    2405.18392): a mid-run checkpoint's loss is the finished run's at its D times (1 + lag),
    the lag (2-5%) shrinking to 0 only over the cooldown."""
    sizes = _sizes(rng, count, (3e7, 3e8), (1.52, 2.5))  # >= 1.5 decades after rounding to 3 digits
    ratio = rng.uniform(10, 40)
    info = {"tokens_per_param": ratio}
    if not checkpoints:
        return [u for r, N in enumerate(sizes) for u in _run(r, N, ratio * N)], info
    k = int(rng.integers(checkpoints_count[0], checkpoints_count[1] + 1))
    cool, lag, power = rng.uniform(0.1, 0.2), rng.uniform(0.02, 0.05), rng.uniform(0.5, 1.5)
    batch = 2 ** int(rng.integers(19, 23))  # 0.5M-4M tokens
    info |= {"checkpoints": k, "cooldown": cool, "lag": lag, "lag_power": power, "batch_tokens": batch}
    lag_of = lambda f: lag * min(1.0, (1 - f) / cool) ** power  # noqa: E731
    fractions = np.arange(1, k + 1) / k
    return [u for r, N in enumerate(sizes) for u in _run(r, N, ratio * N, fractions, lag_of, batch)], info


def _multi_budget(rng):
    """An over-training ladder (Gadre et al. 2024, arXiv 2403.08540): every size at 4-7 token
    budgets of 0.5-32x 20 tokens per parameter, each a run of its own (cosine schedule) with its
    final model only, or 2-3 checkpoints whose loss lags by lag x (1 - f)^power."""
    sizes = _sizes(rng, (4, 6), (3e7, 3e8), (1.0, 1.5))
    k = int(rng.integers(4, 8))
    start = int(rng.integers(0, len(MULTIPLIERS) - k + 1))
    mults, n_ckpt = MULTIPLIERS[start:start + k], int(rng.choice([1, 1, 2, 3]))
    lag, power, batch = rng.uniform(0.01, 0.04), rng.uniform(0.5, 1.5), 2 ** int(rng.integers(19, 23))
    fractions = None if n_ckpt == 1 else np.arange(1, n_ckpt + 1) / n_ckpt
    runs = [(N, 20.0 * m * N) for N in sizes for m in mults]
    units = [u for r, (N, D) in enumerate(runs)
             for u in _run(r, N, D, fractions, lambda f: lag * (1 - f) ** power, batch)]
    return units, {"multipliers": list(mults), "checkpoints": n_ckpt, "lag": lag, "lag_power": power}


def _isoflop(rng, law: dict):
    """IsoFLOP profiles (Hoffmann et al. 2022, arXiv 2203.15556, approach 2): 4-6 budgets over
    ~2 decades, 5-8 sizes each spanning 0.7-1.2 decades around the law's true optimum (off-centre
    by up to 0.15 decades, as a grid planned from a guess is), D = C / 6N, final models only; and
    the run the sweeps are made for, the target: one model at a budget 2-20x beyond the largest
    sweep's, sized at the optimum (up to 0.1 decades off it, as one planned from a fit is)."""
    K, k = int(rng.integers(4, 7)), int(rng.integers(5, 9))
    budgets = forms.loguniform(rng, 1e18, 5e18) * 10 ** np.linspace(0, rng.uniform(1.8, 2.2), K)
    half, units, best = rng.uniform(0.35, 0.6), [], []
    for C in budgets:
        best.append(_optimum(law, C))
        sizes = _sig(best[-1] * 10 ** (rng.uniform(-0.15, 0.15) + np.linspace(-half, half, k)), 3)
        units += [u | {"target": False} for i, N in enumerate(sizes) for u in _run(len(units) + i, N, C / (6 * N))]
    C_target = _sig1(budgets[-1] * 10 ** rng.uniform(np.log10(2), np.log10(20)), 3)
    N_target = _sig1(_optimum(law, C_target) * 10 ** rng.uniform(-0.1, 0.1), 3)
    units += [u | {"target": True} for u in _run(len(units), N_target, C_target / (6 * N_target))]
    return units, {"budgets": budgets.tolist(), "optimal_params": best, "sizes_per_budget": k,
                   "target_budget": C_target, "target_params": N_target}


def _optimum(law: dict, C: float) -> float:
    """The loss-optimal size at compute ``C`` over a grid kept to 5-200 tokens per parameter."""
    grid = np.geomspace(np.sqrt(C / 1200), np.sqrt(C / 30), 400)
    return float(grid[np.argmin(forms.loss(law, grid, C / (6 * grid)))])


def _narrow(rng):
    """4-6 training sizes spanning only 2-2.9x, plus 1-3 target sizes 10.2-20x beyond the largest
    (all at one tokens-per-parameter ratio, final models only)."""
    train = _sizes(rng, (4, 6), (5e7, 1.5e9), (np.log10(2), np.log10(2.9)))
    targets = np.unique(_sig(train.max() * rng.uniform(10.2, 20, int(rng.integers(1, 4))), 3))
    ratio = rng.uniform(10, 40)
    units = [u | {"target": bool(N in targets)}
             for r, N in enumerate(np.concatenate([train, targets])) for u in _run(r, N, ratio * N)]
    return units, {"tokens_per_param": ratio, "train_params": train.tolist(), "target_params": targets.tolist()}


# ------------------------------------------------------------------------------- helpers
def _sig(x, digits: int = 6) -> np.ndarray:
    """Round to significant digits through the decimal string: the same bytes on every machine."""
    flat = np.asarray(x, float).ravel()
    return np.array([float(f"{v:.{digits}g}") for v in flat.tolist()]).reshape(np.shape(x))


def _sig1(x: float, digits: int = 6) -> float:
    return float(f"{float(x):.{digits}g}")


def _short(x: float) -> str:
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def _jsonable(obj):
    """numpy scalars and arrays to Python ones, so that ``json.dumps(truth)`` works."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return float(obj)
    return obj

