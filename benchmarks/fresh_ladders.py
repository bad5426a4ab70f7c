"""The one-command family forecast on ladders the calibration never held: fresh seeds of the zoo.

The policy behind ``--method auto`` and every method's interval was learned from the zoo's seeds
0-49 of each design (and the real ladders).  This draws seeds from 5000 on -- ladders of a known
design that no calibration ladder is -- cuts each one as a user would have it (the runs at least
``factor`` x below the top compute), and forecasts the top runs' final checkpoints with the same
code path as ``python -m pipeline forecast --family`` (:func:`pipeline.forecasting.family.run`).
An isoFLOP ladder's target is the compute-optimal run beyond its sweeps (:mod:`pipeline.ladders.zoo`).

``--designs line_in_log_c`` draws instead a ladder whose truth is one of the candidates: accuracy a
straight line in log compute (6-12 sizes over 1.3-1.7 decades, 10 checkpoints a run that lag the
finished run by 2-5% of their compute, binomial noise of 2,000 items).  The zoo leaves such
ladders out on purpose -- the policy learns from forms it does not fit -- so this one measures
what auto's hedging costs where the truth is the simplest candidate.

Printed per design and method: forecasts n, MAE (accuracy points), coverage of the 90% interval,
median width (points), interval score (points; Gneiting & Raftery 2007), auto's mean weight on the
final-checkpoint line, and the MAE as a ratio of that line's in the same run (the simple baseline
that won on other labs' ladders).

    .venv/bin/python benchmarks/fresh_ladders.py [--designs isoflop,checkpoints_constant_lr]
        [--ladders 10] [--factor 16] [--methods auto,line_final,line_frontier,direct,two_step] [--neighbours K]
        [--variant quantile_average]

``--variant`` runs the forecasts with one of ``benchmarks/interval_variants.py``'s library variants
(its ``variant_code``): a variant chosen on the forecast table is judged here on ladders it never saw.

About 2 minutes for the defaults on 2 cores.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pipeline  # noqa: E402,F401  (pins the numerical kernels before numpy does any work)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from pipeline import scores  # noqa: E402
from pipeline.errors import CapcastError  # noqa: E402
from pipeline.forecasting import family  # noqa: E402
from pipeline.ladders.calibration import Source  # noqa: E402
from pipeline.ladders.zoo import simulate  # noqa: E402
from pipeline.laws import conformal  # noqa: E402

FIRST_SEED = 5000  # the calibration zoo's seeds are 0..ladders.n_per_design - 1
BASELINE = "line_final"
METHODS = ("auto", "line_final", "line_frontier", "direct", "two_step")
TOP_RUNG = 1.5  # the runs within this factor of the top compute are the ones forecast (as the harness)
MIN_TRAIN_RUNS = 3  # runs a cut ladder needs to be forecast (the harness's min_train_runs)
COLUMNS = ["design", "seed", "model", "method", "actual", "predicted", "lower", "upper", "baseline_weight"]


LINE = "line_in_log_c"  # a ladder of one candidate's own form (not a zoo design)


def line_ladder(seed: int) -> tuple[pd.DataFrame, str]:
    """(rows, target) of a constant-LR checkpoint ladder whose accuracy is a line in log compute."""
    rng = np.random.default_rng([99, seed])
    sizes = np.logspace(7.5, 7.5 + rng.uniform(1.3, 1.7), int(rng.integers(6, 13)))  # 30M to 0.6-1.6B
    ratio, slope, lag = rng.uniform(10, 40), rng.uniform(0.04, 0.12), rng.uniform(0.02, 0.05)
    top_c, top_acc, chance = np.log10(6 * ratio * sizes[-1] ** 2), rng.uniform(0.45, 0.75), 0.25
    rows = []
    for n in sizes:
        for frac in np.linspace(0.1, 1.0, 10):
            d = frac * ratio * n
            seen = 6 * n * d * (1 - lag * (frac < 1))  # a mid-run checkpoint lags the finished run
            p = max(top_acc + slope * (np.log10(seen) - top_c), chance + 0.005)
            v = rng.binomial(2000, p) / 2000
            rows.append({"model": f"line-{seed}-{n:.3g}", "family": f"line-{seed}", "params": n, "tokens": d,
                         "compute_flops": 6 * n * d, "step": int(round(frac * 1000)), "task": "line_task",
                         "metric": "acc", "value": v, "stderr": np.sqrt(v * (1 - v) / 2000), "num_fewshot": 0,
                         "source": "benchmark", "suite": "benchmark", "chance": chance})
    return scores.validate(pd.DataFrame(rows), origin=LINE), "line_task:acc"


def cut(design: str, seed: int, factor: float) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """(training rows, the top runs' final accuracies, task) of one fresh ladder."""
    if design == LINE:
        rows, target = line_ladder(seed)
    else:
        ladder = simulate(design, seed)
        rows, target = ladder.rows, ladder.target
    acc = rows[rows["metric"] == "acc"]
    run_compute = acc.groupby("model")["compute_flops"].max()
    top = float(run_compute.max())
    train = rows[rows["model"].isin(run_compute.index[run_compute <= top / factor])]
    held = acc[acc["model"].isin(run_compute.index[run_compute >= top / TOP_RUNG])]
    final = held.loc[held.groupby("model")["tokens"].idxmax()]
    return train.reset_index(drop=True), final.reset_index(drop=True), target.split(":")[0]


def _key(params: float, tokens: float) -> str:
    return f"{float(params):.6g} {float(tokens):.6g}"


def run(designs, ladders: int, factor: float, methods=METHODS) -> pd.DataFrame:
    """One row per (design, seed, held-out run, method): truth, forecast and interval (NaN: failed)."""
    out, source, skipped = [], Source(), []
    for design in designs:
        for seed in range(FIRST_SEED, FIRST_SEED + ladders):
            train, final, task = cut(design, seed, factor)
            if train["model"].nunique() < MIN_TRAIN_RUNS:  # as the harness: too narrow to cut this far
                skipped.append(f"{design}/{seed}")
                continue
            fam = str(train["family"].iloc[0])
            targets = tuple((float(r.params), float(r.tokens)) for r in final.itertuples())
            for method in methods:
                req = family.Request(fam, targets, tasks=(task,), method=method, n_bootstrap=0, calibration=source)
                try:
                    fc = family.run(train, req).forecast
                except CapcastError:
                    fc = pd.DataFrame({"params": [p for p, _ in targets], "tokens": [d for _, d in targets],
                                       "predicted": np.nan, "lower": np.nan, "upper": np.nan})
                by_target = {_key(r.params, r.tokens): r for r in fc.itertuples()}
                for truth in final.itertuples():
                    row = by_target[_key(truth.params, truth.tokens)]
                    out.append({"design": design, "seed": seed, "model": truth.model, "method": method,
                                "actual": float(truth.value), "predicted": float(row.predicted),
                                "lower": float(row.lower), "upper": float(row.upper),
                                "baseline_weight": baseline_weight(getattr(row, "form", ""), method)})
    if skipped:
        print(f"{len(skipped)} ladder(s) with fewer than {MIN_TRAIN_RUNS} runs {factor:g}x below the top left out: "
              + ", ".join(skipped), file=sys.stderr)
    numbers = {c: float for c in ("actual", "predicted", "lower", "upper", "baseline_weight")}
    return pd.DataFrame(out, columns=COLUMNS).astype({"seed": int, **numbers})


def baseline_weight(form, method: str) -> float:
    """Auto's weight on the baseline, read off its form label ("line_final 0.29, ..."); NaN for the others."""
    if method != "auto" or not isinstance(form, str):
        return np.nan
    found = re.search(rf"(?:^|, ){BASELINE} ([0-9.]+)", form)
    return float(found.group(1)) if found else 0.0


def summary(results: pd.DataFrame, level: float = 0.9) -> pd.DataFrame:
    """Per design and method: n, failed, MAE, coverage, median width, interval score, MAE / baseline's."""
    alpha = 1 - level
    r = results.assign(err=(results["predicted"] - results["actual"]).abs() * 100,
                       hit=(results["actual"] >= results["lower"]) & (results["actual"] <= results["upper"]),
                       width=(results["upper"] - results["lower"]) * 100)
    r["score"] = r["width"] + 200 / alpha * (np.maximum(r["lower"] - r["actual"], 0)
                                             + np.maximum(r["actual"] - r["upper"], 0))
    ok = r[np.isfinite(r["predicted"])]
    keys = r[["design", "method"]].drop_duplicates()  # a method that failed on every ladder keeps its row
    table = keys.merge(ok.groupby(["design", "method"], sort=False).agg(
        n=("err", "size"), mae=("err", "mean"), coverage=("hit", "mean"), median_width=("width", "median"),
        interval_score=("score", "mean"), weight_on_baseline=("baseline_weight", "mean")).reset_index(),
        on=["design", "method"], how="left").fillna({"n": 0}).astype({"n": int})
    failed = r.groupby(["design", "method"], sort=False)["predicted"].apply(lambda s: int(s.isna().sum()))
    table["failed"] = failed.reindex(pd.MultiIndex.from_frame(table[["design", "method"]])).to_numpy()
    base = table[table["method"] == BASELINE].set_index("design")["mae"]
    table["mae_vs_" + BASELINE] = table["mae"] / table["design"].map(base)
    return table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--designs", default="isoflop,checkpoints_constant_lr")
    ap.add_argument("--ladders", type=int, default=10)
    ap.add_argument("--factor", type=float, default=16.0)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--neighbours", type=int, default=conformal.NEIGHBOURS,
                    help="calibration forecasts each local conformal quantile is taken over (the library's by "
                         "default): compare a neighbourhood on ladders no calibration table holds")
    ap.add_argument("--variant", default="mixture",
                    help="a library variant of benchmarks/interval_variants.py (mixture: the code in use)")
    args = ap.parse_args(argv)
    if args.neighbours < 1:
        ap.error("--neighbours: give a count >= 1")
    import interval_variants

    if args.variant not in interval_variants.CODE_VARIANTS and not interval_variants._numbered(args.variant):
        ap.error(f"--variant: choose from {', '.join(interval_variants.CODE_VARIANTS)} (or ridge=R, neighbours=K)")
    conformal.NEIGHBOURS = args.neighbours
    methods = args.methods.split(",")
    if BASELINE not in methods:
        methods.append(BASELINE)
    with interval_variants.variant_code(args.variant):
        table = summary(run(args.designs.split(","), args.ladders, args.factor, methods))
    print(f"fresh zoo seeds {FIRST_SEED}-{FIRST_SEED + args.ladders - 1}, training runs <= top compute / {args.factor:g}"
          + (f", variant {args.variant}" if args.variant != "mixture" else ""))
    print(table.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
