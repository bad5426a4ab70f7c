"""How the laws extrapolate on ladders none of them was developed on: synthetic ones, drawn at random.

Each ladder is a family of runs whose loss follows a Chinchilla law with random coefficients and
whose task accuracy follows a random link from that loss (a saturating sigmoid in log L with its
ceiling below 1, the same with the ceiling at 1, or Gadre et al.'s exponential), on a task with
chance 0.25 or 0.5, scored with binomial noise on a few hundred to a few thousand items.  Two
ladder kinds:

* ``sizes``: five sizes 100M-1.6B at 20 tokens per parameter, ten checkpoints each (one schedule
  per size, as Pythia), predicting the final checkpoints of 6.4B and 13B;
* ``budgets``: four sizes 150M-1.2B each trained at 1x, 2x, 5x and 10x Chinchilla tokens with
  its own schedule (final checkpoints only, and the loss of a mid-run checkpoint of a 10x run
  is not that of a finished run), predicting 13B at 1x and 5x.

Every method of the backtest runs on every ladder with the options the stage uses; printed per
ladder kind and method: MAE (accuracy points), 90% interval coverage, the share of ladders where
the method is within 0.5 points of the best, and the signed mean error (negative: predicted low).
The baseline is the ``loglinear`` law on the same ladders, run in the same process.

    .venv/bin/python benchmarks/synthetic_ladders.py [--ladders 60] [--seed 0] [--bootstrap 100]

About 40 s for the default 60 ladders on 2 cores.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pipeline  # noqa: E402,F401  (pins the numerical kernels before numpy does any work)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from pipeline import scores  # noqa: E402
from pipeline.errors import CapcastError  # noqa: E402
from pipeline.laws import make  # noqa: E402

# name: (method, options); "two_step, shape kept" is two_step without its unidentified-shape rule
METHODS = {"two_step": ("two_step", {}), "two_step, shape kept": ("two_step", {"unidentified": "keep"}),
           "direct": ("direct", {}), "sigmoid": ("sigmoid", {}), "loglinear": ("loglinear", {})}
TARGET, LOSS = "task:acc", "task:bpb"


def loss_law(rng) -> dict:
    return {"E": rng.uniform(1.6, 2.1), "A": rng.uniform(300, 600), "alpha": rng.uniform(0.3, 0.38),
            "B": rng.uniform(300, 2000), "beta": rng.uniform(0.26, 0.32)}


def link(rng, chance: float):
    """A random accuracy-of-loss curve whose rise happens inside or just past the ladder."""
    form = rng.choice(["saturating", "to_one", "exponential"])
    x0 = rng.uniform(2.0, 2.7)  # the loss of the half-way point
    k = rng.uniform(4, 10)
    if form == "exponential":
        g = rng.uniform(1.0, 2.5)
        amp = 0.35 * (1 - chance) * np.exp(g * x0 - g * 2.4)  # at L = 2.4 a third of the way up
        return form, lambda L: np.minimum(chance + amp * np.exp(-g * (L - 2.4)), 0.98)
    ceiling = rng.uniform(0.7, 0.95) if form == "saturating" else 1.0
    return form, lambda L: chance + (ceiling - chance) / (1 + np.exp(k * (np.log(L) - np.log(x0))))


def ladder(kind: str, rng) -> tuple[pd.DataFrame, str]:
    p, chance = loss_law(rng), float(rng.choice([0.25, 0.5]))
    form, acc_of = link(rng, chance)
    items = int(rng.choice([500, 1000, 3000]))
    task_scale = rng.uniform(0.8, 1.2)  # the task's loss in bits per byte, proportional to the LM loss
    rows = []
    if kind == "sizes":
        runs = [(N, 20 * N, f) for N in (1e8, 2e8, 4e8, 8e8, 1.6e9, 6.4e9, 1.3e10)
                for f in np.linspace(0.1, 1.0, 10)]
    else:
        runs = [(N, m * 20 * N, 1.0) for N in (1.5e8, 3e8, 6e8, 1.2e9, 1.3e10) for m in (1, 2, 5, 10)]
    for N, D_final, frac in runs:
        D = D_final * frac
        # a checkpoint mid-schedule sits above the finished run of the same D (the schedule has not decayed)
        L = p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"] + 0.04 * (1 - frac)
        acc = float(acc_of(L))
        value = rng.binomial(items, acc) / items
        se = max(np.sqrt(value * (1 - value) / items), 1e-3)
        model = f"syn-{N:.2g}" + (f"-{D_final / N / 20:g}x" if kind == "budgets" else "")
        base = dict(suite="synthetic", model=model, family="syn", params=N, tokens=D, compute_flops=6 * N * D,
                    step=int(round(frac * 100000)), num_fewshot=0, source="benchmarks/synthetic_ladders.py",
                    chance=chance)
        rows.append({**base, "task": "task", "metric": "acc", "value": value, "stderr": se})
        rows.append({**base, "task": "task", "metric": "bpb", "value": task_scale * L / np.log(2), "stderr": np.nan})
    return scores.validate(pd.DataFrame(rows)), form


def split(kind: str, rows: pd.DataFrame):
    if kind == "sizes":
        train = rows[rows["params"] <= 2e9]
        test = rows[(rows["params"] > 2e9) & (rows["step"] == rows["step"].max())]
    else:
        train = rows[rows["params"] <= 2e9]
        test = rows[(rows["params"] > 2e9) & rows["model"].str.endswith(("-1x", "-5x"))]
    return train, test


def run(n: int, seed: int, bootstrap: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = ("sizes", "budgets")[i % 2]
        rows, form = ladder(kind, rng)
        train, test = split(kind, rows)
        for method, (law, options) in METHODS.items():
            opts = {"loss": LOSS, **options} if law == "two_step" else options
            try:
                pred = make(law, target=TARGET, n_bootstrap=bootstrap, random_state=0, **opts).fit(train).predict(test)
            except CapcastError as exc:
                out.append(dict(ladder=i, kind=kind, link=form, method=method, failed=str(exc)[:60]))
                continue
            for _, r in pred.iterrows():
                out.append(dict(ladder=i, kind=kind, link=form, method=method, model=r["model"],
                                error=100 * (r["predicted"] - r["actual"]),
                                covered=bool(r["lower"] <= r["actual"] <= r["upper"])))
    return pd.DataFrame(out)


def summary(res: pd.DataFrame) -> pd.DataFrame:
    ok = res.dropna(subset=["error"])
    per = ok.groupby(["kind", "ladder", "method"])["error"].apply(lambda e: e.abs().mean()).unstack("method")
    near_best = per.sub(per.min(axis=1), axis=0).le(0.5)
    rows = []
    for (kind, method), g in ok.groupby(["kind", "method"]):
        rows.append(dict(kind=kind, method=method, mae=g["error"].abs().mean(), coverage=g["covered"].mean(),
                         within_half_of_best=near_best.loc[kind, method].mean(), signed=g["error"].mean(),
                         ladders=g["ladder"].nunique(),
                         failed=int(res[(res["kind"] == kind) & (res["method"] == method)]["error"].isna().sum())))
    table = pd.DataFrame(rows)
    base = table[table["method"] == "loglinear"].set_index("kind")["mae"]
    table["mae / loglinear"] = table["mae"] / table["kind"].map(base)
    return table


def main() -> None:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ladders", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bootstrap", type=int, default=100)
    args = ap.parse_args()
    start = time.perf_counter()
    res = run(args.ladders, args.seed, args.bootstrap)
    pd.set_option("display.width", 200)
    print(summary(res).round(3).to_string(index=False))
    by_link = res.dropna(subset=["error"]).groupby(["link", "method"])["error"].apply(lambda e: e.abs().mean())
    print("\nMAE by the ladder's true link:\n" + by_link.unstack("method").round(2).to_string())
    print(f"\n{args.ladders} ladders, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
