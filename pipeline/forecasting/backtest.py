"""backtest stage: fit every law on named splits, predict the held-out models, score the errors.

``python -m pipeline backtest`` (no arguments) runs every split in the ``backtest:`` section of
params.yaml on the collected scores table and writes

* ``reports/backtest.csv`` — one row per (split, method, target) and per (split, method) over
  all targets ("ALL"): n, MAE and max error (points), 90% interval coverage, Spearman rank
  correlation of predicted vs actual over the held-out models, the noise floor;
* ``reports/backtest_predictions.csv`` — every prediction with its interval;
* ``reports/metrics/<split>/<method>.json`` — n, MAE (points) and coverage for ``dvc metrics``.

``python -m pipeline backtest --scores FILE --method M --target TASK:METRIC --train Q --test Q``
runs one backtest on any table in the scores schema (see docs/laws.md).

A split is declared before fitting: train rows and test rows are queries over the row
columns (:mod:`pipeline.query`: comparisons, and/or/not, in-lists, arithmetic; never code), or
a ``leave_out`` column whose values are held out one at a time.  Nothing about the
test rows informs a fit or a choice; their ``value`` is read only to score.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import config, query, scores
from pipeline.errors import CapcastError, FitError
from pipeline.parallel import fork_map

OUT_COLUMNS = ["model", "step", "task", "metric", "actual", "predicted", "lower", "upper"]
PRED_COLUMNS = ["split", "fold", "method", "task", "metric", "suite", "model", "family", "step", "params", "tokens",
                "compute_flops", "actual", "stderr", "predicted", "lower", "upper"]


# -- selecting rows -------------------------------------------------------------------
def select(table: pd.DataFrame, query_text: str, what: str) -> pd.DataFrame:
    """Rows matching a query (:mod:`pipeline.query`); one-line FitError when it is invalid or selects nothing."""
    return query.select(table, query_text, what, error=FitError)


def folds(name: str, split: dict) -> list[tuple[str, str, str]]:
    """(fold, train query, test query) for a split: itself, or one fold per held-out value.

    For a ``keep_smallest`` split these are the queries before the kept models are named (they
    depend on the table): :func:`table_folds` adds them.
    """
    if "leave_out" not in split:
        return [(name, split["train"], split["test"])]
    col, rows = split["leave_out"], split.get("rows", "index == index")
    return [(f"{name}/{value}", f"({rows}) and {col} != {value!r}", f"({rows}) and {col} == {value!r}")
            for value in split["values"]]


def table_folds(name: str, split: dict, table: pd.DataFrame) -> list[tuple[str, str, str]]:
    """:func:`folds` with ``keep_smallest: K`` applied: the K smallest models (by parameters, then
    compute, then name) of each held-out group join the training rows and leave the test rows --
    a new family judged from one small model of it (Polo et al. 2024's protocol)."""
    keep = int(split.get("keep_smallest") or 0)
    if not keep or "leave_out" not in split:
        return folds(name, split)
    col, rows = split["leave_out"], split.get("rows", "index == index")
    out = []
    for (fold, _, test), value in zip(folds(name, split), split["values"]):
        small = smallest_models(select(table, test, f"{fold}: held-out group"), keep)
        out.append((fold, f"({rows}) and ({col} != {value!r} or model in {small!r})",
                    f"{test} and model not in {small!r}"))
    return out


def smallest_models(rows: pd.DataFrame, k: int) -> list[str]:
    """The ``k`` smallest models of ``rows`` by parameters, then compute, then name."""
    models = rows.drop_duplicates("model").sort_values(["params", "compute_flops", "model"], kind="mergesort")
    if models["model"].nunique() <= k:
        raise FitError(f"keep_smallest: {k} leaves no model of this group to predict ({models['model'].nunique()} "
                       f"models); lower keep_smallest or drop the value from values")
    return [str(m) for m in models["model"].iloc[:k]]


# -- running laws ----------------------------------------------------------------------
def law_options(cfg: dict, split: dict, method: str, target: str) -> dict:
    """Global, then split-level, then target-level options of one method."""
    opts = {k: cfg[k] for k in ("n_bootstrap", "level", "random_state") if k in cfg}
    opts.update((cfg.get("options") or {}).get(method) or {})
    opts.update((split.get("options") or {}).get(method) or {})
    opts.update(((split.get("target_options") or {}).get(target) or {}).get(method) or {})
    return opts


def run_law(method: str, target: str, options: dict, train: pd.DataFrame, test: pd.DataFrame) -> pd.DataFrame:
    from pipeline import laws

    law = laws.make(method, target=target, **options).fit(train)
    pred = law.predict(test)
    pred["form"] = law.form_label()
    pred["inner_error"] = law.inner_error_
    pred["params_used"] = getattr(law, "params_used_", "")
    task, _, metric = target.rpartition(":")
    rows = test[(test["task"] == task) & (test["metric"] == metric)].drop_duplicates(["model", "step"])
    suite = pred[["model", "step"]].merge(rows[["model", "step", "suite"]], on=["model", "step"], how="left")
    pred.insert(0, "suite", suite["suite"].to_numpy())
    pred.insert(0, "metric", metric)
    pred.insert(0, "task", task)
    pred.insert(0, "method", method)
    return pred


def run_split(table: pd.DataFrame, name: str, split: dict, cfg: dict, log=print) -> tuple[pd.DataFrame, list]:
    """All methods x targets x folds of one split: (predictions, errors)."""
    preds, errors = [], []
    for fold, train_q, test_q in table_folds(name, split, table):
        p, e = run_fold(table, name, split, cfg, fold, train_q, test_q, log)
        preds += p
        errors += e
    return (pd.concat(preds, ignore_index=True) if preds else pd.DataFrame(columns=PRED_COLUMNS)), errors


def run_fold(table: pd.DataFrame, name: str, split: dict, cfg: dict, fold: str, train_q: str, test_q: str,
             log=print) -> tuple[list, list]:
    """All methods x targets of one fold: (prediction frames, errors)."""
    train, test = select(table, train_q, f"{fold}: train"), select(table, test_q, f"{fold}: test")
    preds, errors = [], []
    for method in split["methods"]:
        for target in split["targets"]:
            try:
                p = run_law(method, target, law_options(cfg, split, method, target), train, test)
            except CapcastError as exc:
                errors.append({"split": name, "fold": fold, "method": method, "target": target, "error": str(exc)})
                log(f"  {fold} {method} {target}: not fitted: {exc}")
                continue
            p.insert(0, "fold", fold)
            p.insert(0, "split", name)
            preds.append(p)
    return preds, errors


# -- scoring ---------------------------------------------------------------------------
def _points(task_metric_kind: str) -> float:
    return 100.0 if task_metric_kind == "accuracy" else 1.0


def score_group(g: pd.DataFrame) -> dict:
    """n, MAE, max error (points), coverage, Spearman, noise floor of one group of predictions.

    ``n`` counts the predictions scored; ``skipped`` those with an actual value but no finite
    prediction (e.g. a family the law has no line for), so an MAE never covers fewer models
    than were asked for without saying so."""
    has_actual = np.isfinite(g["actual"].astype(float))
    skipped = int((has_actual & ~np.isfinite(g["predicted"].astype(float))).sum())
    g = g[np.isfinite(g["predicted"].astype(float)) & has_actual]
    scale = np.array([_points(scores.metric_kind(m)) for m in g["metric"]]) if len(g) else np.array([])
    err = np.abs(g["predicted"].to_numpy(float) - g["actual"].to_numpy(float)) * scale
    inside = (g["actual"] >= g["lower"]) & (g["actual"] <= g["upper"])
    return {"n": int(len(g)), "mae": float(err.mean()) if len(g) else np.nan,
            "max_error": float(err.max()) if len(g) else np.nan,
            "coverage": float(inside.mean()) if len(g) else np.nan,
            "spearman": _spearman(g),
            "noise": float(np.nanmean(g["stderr"].to_numpy(float) * scale)) if g["stderr"].notna().any() else np.nan,
            "skipped": skipped}


def _spearman(g: pd.DataFrame) -> float:
    """Mean over targets of the rank correlation of predicted vs actual (>= 3 units each)."""
    from scipy.stats import spearmanr

    values = []
    for _, t in g.groupby(["task", "metric"], sort=True):
        if len(t) >= 3 and t["actual"].nunique() > 1 and t["predicted"].nunique() > 1:
            values.append(float(spearmanr(t["predicted"], t["actual"]).statistic))
    return float(np.mean(values)) if values else np.nan


def choices(t: pd.DataFrame) -> dict:
    """The nested choices of one (split, method, target): the form(s) chosen (per fold, distinct)
    and the mean inner extrapolation error in points."""
    if "form" not in t:
        return {}
    folds = t.drop_duplicates(["fold"])
    inner = folds["inner_error"].astype(float) * _points(scores.metric_kind(str(t["metric"].iloc[0])))
    return {"form": ";".join(sorted(set(folds["form"].astype(str)))),
            "inner_error": float(inner.mean()) if inner.notna().any() else np.nan}


def score(preds: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (split, method), g in preds.groupby(["split", "method"], sort=False):
        for (task, metric), t in g.groupby(["task", "metric"], sort=False):
            extra = {"n_components": int(t["n_components"].iloc[0])} if "n_components" in t and t["n_components"].notna().any() else {}
            extra.update(choices(t))
            rows.append({"split": split, "method": method, "task": task, "metric": metric, **score_group(t), **extra})
        rows.append({"split": split, "method": method, "task": "ALL", "metric": "", **score_group(g)})
    out = pd.DataFrame(rows)
    if "n_components" in out:
        out["n_components"] = out["n_components"].astype("Int64")
    return out


def metrics(table: pd.DataFrame) -> dict:
    """DVC metrics, small and flat: per split and method (all targets), n, MAE (points) and coverage.

    Written one file per (split, method) under reports/metrics/ (:func:`write_metrics`), so that
    ``dvc metrics show`` prints one row per split and method with three columns; every other number
    stays in backtest.csv.
    """
    out: dict = {}
    totals = table[table["task"] == "ALL"]
    for _, r in totals.iterrows():
        out.setdefault(r["split"], {})[r["method"]] = {
            "n": int(r["n"]), "mae": None if pd.isna(r["mae"]) else round(float(r["mae"]), 3),
            "coverage": None if pd.isna(r["coverage"]) else round(float(r["coverage"]), 3)}
    out.update(two_step_summary(totals))
    return out


TWO_STEP_SPLITS = "two_step_splits"  # the headline: every split two_step runs on


def two_step_summary(totals: pd.DataFrame) -> dict:
    """Per method, over the splits two_step ran on: the mean of its split MAEs, its smallest split
    coverage and the number of those splits it ran on (a pseudo-split of the DVC metrics)."""
    splits = set(totals.loc[totals["method"] == "two_step", "split"])
    rows = totals[totals["split"].isin(splits) & totals["mae"].notna()]
    summary = {m: {"n": int(g["split"].nunique()), "mae": round(float(g["mae"].mean()), 3),
                   "coverage": round(float(g["coverage"].min()), 3)} for m, g in rows.groupby("method")}
    return {TWO_STEP_SPLITS: summary} if splits else {}


def write_metrics(summary: dict, out_dir: Path) -> None:
    """``out_dir/<split>/<method>.json`` for every entry of :func:`metrics` (each written atomically),
    then any other file there removed (a split or method no longer run)."""
    out_dir = Path(out_dir)
    written = set()
    for split, methods in summary.items():
        for method, vals in methods.items():
            text = json.dumps(vals, sort_keys=True) + "\n"
            path = out_dir / split / f"{method}.json"
            scores.atomic_write(path, lambda tmp, t=text: Path(tmp).write_text(t))
            written.add(path)
    for path in sorted(out_dir.rglob("*"), reverse=True):  # files before their folders
        if path.is_file() and path not in written:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


# -- the stage -------------------------------------------------------------------------
def run_stage(cfg: dict, scores_path: str | None = None, out_dir: str | None = None, only=None) -> dict:
    t0 = time.perf_counter()
    table = scores.read(scores_path or cfg.get("scores", "data/scores.parquet"))
    out = Path(out_dir or cfg.get("out_dir", "reports"))
    # (reports/metrics/ is swept by write_metrics)
    scores.clean_stale_temps(out, names=["backtest.csv", "backtest_predictions.csv", "backtest_errors.csv"])
    splits = cfg.get("splits") or {}
    if not splits:
        raise CapcastError("params.yaml: backtest.splits is empty; declare at least one split")
    names = [n for n in splits if not only or n in only]
    # one job per fold (not per split): a leave-one-family-out split of 16 folds is most of the work
    jobs = [(name, fold) for name in names for fold in table_folds(name, splits[name], table)]

    def job(item):
        name, fold = item
        t, lines = time.perf_counter(), []
        preds, errors = run_fold(table, name, splits[name], cfg, *fold, log=lines.append)
        return preds, errors, lines, time.perf_counter() - t

    all_preds, all_errors, took = [], [], {}
    for (name, _), (preds, errors, lines, seconds) in zip(jobs, fork_map(job, jobs, int(cfg.get("processes", 1)))):
        if lines:
            print("\n".join(lines))
        all_preds += preds
        all_errors += errors
        p, e, t = took.get(name, ([], 0, 0.0))
        took[name] = (p + preds, e + len(errors), t + seconds)
    for name, (p, e, t) in took.items():
        split_preds = pd.concat(p, ignore_index=True) if p else pd.DataFrame(columns=PRED_COLUMNS)
        for method, g in split_preds.groupby("method", sort=False):
            print(f"  {name} {method}: {law_line(g, 'points')}")
        print(f"{name}: {len(split_preds)} predictions, {e} not fitted ({t:.1f}s of fitting)")
    preds = pd.concat(all_preds, ignore_index=True) if all_preds else pd.DataFrame(columns=PRED_COLUMNS)
    results = score(preds)
    errors = pd.DataFrame(all_errors, columns=["split", "fold", "method", "target", "error"])
    scores.write_csv(results, out / "backtest.csv")
    scores.write_csv(preds.reindex(columns=PRED_COLUMNS + [c for c in ("intermediate", "n_components", "form", "inner_error",
                                                                 "params_used") if c in preds]),
              out / "backtest_predictions.csv")
    scores.write_csv(errors, out / "backtest_errors.csv")
    summary = metrics(results)
    write_metrics(summary, out / "metrics")
    _print_summary(results)
    overall = score_group(preds)
    print(f"overall {cfg.get('level', 0.9):.0%} interval coverage {overall['coverage']:.3f} over {overall['n']} "
          f"predictions; wrote {out}/backtest.csv and {out}/metrics/ ({time.perf_counter() - t0:.1f}s)")
    return summary


def law_line(pred: pd.DataFrame, unit: str) -> str:
    """What the fitted law(s) settled, for the logs: forms chosen (with counts over targets and
    folds), the mean nested inner error and which N the law used."""
    first = pred.drop_duplicates(["fold", "task", "metric"]) if "fold" in pred else pred.head(1)
    forms = first["form"].astype(str).value_counts()
    chosen = ", ".join(f"{f} x{n}" if len(forms) > 1 or n > 1 else f for f, n in forms.items())
    scale = 100.0 if unit == "points" else 1.0
    inner = first["inner_error"].astype(float) * scale
    inner_text = f"nested inner error {inner.mean():.2f} {unit}" if inner.notna().any() else \
        "no nested check (too few sizes to hold one out)"
    used = sorted(set(first["params_used"].astype(str)) - {"", "nan"})
    return f"chosen {chosen}; {inner_text}" + (f"; N: {used[0]}" + (" ..." if len(used) > 1 else "") if used else "")


def _print_summary(results: pd.DataFrame) -> None:
    allrows = results[results["task"] == "ALL"]
    for _, r in allrows.iterrows():
        skipped = f"  ({r['skipped']} without a prediction, not in the MAE)" if r["skipped"] else ""
        print(f"  {r['split']:<22} {r['method']:<22} n={r['n']:<4} MAE {r['mae']:6.2f}  max {r['max_error']:6.2f}  "
              f"coverage {r['coverage']:.2f}  spearman {r['spearman']:.2f}{skipped}")


# -- the CLI for any table ----------------------------------------------------------------
def _parser(cfg: dict) -> argparse.ArgumentParser:
    from pipeline.laws import METHODS

    p = argparse.ArgumentParser(
        prog="python -m pipeline backtest",
        description="Without --scores: run the splits in params.yaml (backtest:). With --scores: fit one "
                    "law on the --train rows of FILE and predict the --test rows.")
    p.add_argument("--scores", help="CSV or Parquet in the scores-table schema")
    p.add_argument("--method", choices=sorted(METHODS), help="law to fit")
    p.add_argument("--target", help="TASK:METRIC to predict, e.g. arc_easy:acc")
    p.add_argument("--loss", help="two_step: TASK:METRIC of the loss rows (step 1 fits them, step 2 links)")
    p.add_argument("--features", help="observational: TASK:METRIC,... forming the capability matrix "
                                      "(default: every other task's metrics present for all training models)")
    p.add_argument("--mode", choices=["features", "compute"], help="observational: predict from the model's "
                                                                   "other benchmarks (default) or from compute via its family line")
    p.add_argument("--train", help="query selecting the training rows, e.g. \"params <= 1.5e9\"")
    p.add_argument("--test", help="query selecting the rows to predict, e.g. \"params > 1.5e9\"")
    p.add_argument("--leave-out", metavar="COLUMN=VALUE", help="instead of --train/--test: predict the rows with "
                   "COLUMN == VALUE (e.g. family=opt) from the others")
    p.add_argument("--keep-smallest", type=int, default=0, metavar="K",
                   help="with --leave-out: keep the K smallest models of the held-out group in the training rows")
    p.add_argument("--rows", help="with --leave-out: query narrowing both sides, e.g. \"suite == 'obsscaling'\"")
    p.add_argument("--out", help="write model, step, task, metric, actual, predicted, lower, upper here (CSV)")
    p.add_argument("--bootstrap", type=int, default=cfg.get("n_bootstrap", 200), help="bootstrap resamples (0: none)")
    p.add_argument("--level", type=float, default=cfg.get("level", 0.9), help="prediction-interval level")
    p.add_argument("--seed", type=int, default=cfg.get("random_state", 0), help="random_state of the bootstrap")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other option of the law, e.g. --set params=non_embedding (repeatable)")
    p.add_argument("--chance", action="append", metavar="TASK=LEVEL[,...]",
                   help="random-guess level of a task the table does not give (its chance column, else the "
                        "built-in table), e.g. --chance my_task=0.25 (repeatable)")
    p.add_argument("--only", action="append", help="stage mode: run only this split (repeatable)")
    return p


def _options(args) -> dict:
    import inspect

    import yaml

    from pipeline.laws import METHODS

    accepted = inspect.signature(METHODS[args.method].__init__).parameters
    opts = {"n_bootstrap": args.bootstrap, "level": args.level, "random_state": args.seed}
    for flag, key, value in (("--loss", "loss", args.loss), ("--mode", "mode", args.mode),
                             ("--features", "features", args.features)):
        if value is None:
            continue
        if key not in accepted:
            users = ", ".join(m for m, c in METHODS.items() if key in inspect.signature(c.__init__).parameters)
            raise FitError(f"{flag} is used by --method {users} only; drop it for --method {args.method}")
        opts[key] = [f.strip() for f in value.split(",") if f.strip()] if key == "features" else value
    flags = {"n_bootstrap": "--bootstrap", "level": "--level", "random_state": "--seed", "loss": "--loss",
             "mode": "--mode", "features": "--features"}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FitError(f"--set {item!r} is not KEY=VALUE")
        try:
            opts[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise FitError(f"--set {item!r}: the value is not a number, text or [list]") from None
        flags[key.strip()] = f"--set {key.strip()}"
    for key, value in opts.items():  # the same checks as the options in params.yaml
        config.check_option(args.method, key, value, flags.get(key, key))
    return opts


def _leave_out_queries(args, table: pd.DataFrame) -> tuple[str, str]:
    """--leave-out COLUMN=VALUE [--rows QUERY] [--keep-smallest K] -> (train, test) queries."""
    col, sep, value = args.leave_out.partition("=")
    if not sep or not col.strip() or not value.strip():
        raise FitError(f"--leave-out {args.leave_out!r} is not COLUMN=VALUE (e.g. family=opt)")
    if args.train or args.test:
        raise FitError("--leave-out builds the training and test rows itself; drop --train/--test (narrow with --rows)")
    split = {"leave_out": col.strip(), "values": [value.strip()], "rows": args.rows or "index == index",
             "keep_smallest": args.keep_smallest}
    return table_folds("--leave-out", split, table)[0][1:]


def cli(args) -> int:
    needed = ("method", "target") + (() if args.leave_out else ("train", "test"))
    missing = [f"--{k}" for k in needed if not getattr(args, k)]
    if missing:
        raise FitError(f"with --scores, also give {', '.join(missing)}")
    from pipeline.laws.data import Metric

    target = str(Metric.parse(args.target))
    table = scores.with_chance(scores.read(args.scores), scores.parse_chance(args.chance))
    train_q, test_q = args.train, args.test
    if args.leave_out:
        train_q, test_q = _leave_out_queries(args, table)
    train, test = select(table, train_q, "--train"), select(table, test_q, "--test")
    pred = run_law(args.method, target, _options(args), train, test)
    width = max(len(str(m)) for m in pred["model"])
    pct = int(round(args.level * 100))
    for _, r in pred.iterrows():
        step = "" if pd.isna(r["step"]) else f"@{int(r['step'])}"
        actual = "   n/a" if pd.isna(r["actual"]) else f"{r['actual']:.4f}"
        if not np.isfinite(r["predicted"]):
            print(f"{str(r['model']) + step:<{width + 8}} actual {actual}  predicted n/a (the law gives no number "
                  "for this model)")
            continue
        print(f"{str(r['model']) + step:<{width + 8}} actual {actual}  predicted {r['predicted']:.4f}  "
              f"{pct}% [{r['lower']:.4f}, {r['upper']:.4f}]")
    if args.out:
        scores.write_csv(pred.reindex(columns=OUT_COLUMNS), Path(args.out))
    s = score_group(pred)
    unit = "points" if scores.metric_kind(target.rpartition(":")[2]) == "accuracy" else "(metric units)"
    print(law_line(pred, unit))
    missing = ""
    if s["skipped"]:
        none = pred.loc[np.isfinite(pred["actual"].astype(float)) & ~np.isfinite(pred["predicted"].astype(float))]
        names = ", ".join(str(m) for m in none["model"].iloc[:3]) + (", ..." if len(none) > 3 else "")
        missing = f"; {s['skipped']} of {s['n'] + s['skipped']} have no prediction and are not in it ({names})"
    if s["n"]:
        print(f"MAE {s['mae']:.2f} {unit} over {s['n']} predictions "
              f"({pct}% interval coverage {s['coverage']:.2f}, max error {s['max_error']:.2f}){missing}")
    elif s["skipped"]:
        print(f"MAE n/a: none of the {s['skipped']} --test models with an actual value got a prediction ({names})")
    else:
        print("MAE n/a: the --test rows hold no actual values of the target")
    return 0


def _main(argv) -> int:
    from pipeline import params

    try:
        cfg = params.load("backtest")
    except config.ConfigError:
        raise  # a params.yaml that is there but wrong is reported, also with --scores
    except CapcastError:
        if "--scores" not in argv:
            raise
        cfg = {}  # the CLI works on any table, with or without this repository's params.yaml
    args = _parser(cfg).parse_args(argv)
    if args.scores:
        return cli(args)
    run_stage(cfg, only=args.only)
    return 0


def main(argv=None) -> int:
    from pipeline.cli import run_cli

    return run_cli(_main, sys.argv[1:] if argv is None else argv)
