"""backtest stage: fit every law on named splits, predict the held-out models, score the errors.

``python -m pipeline backtest`` (no arguments) runs every split in the ``backtest:`` section of
params.yaml on the collected scores table and writes

* ``reports/backtest.csv`` — one row per (split, method, target) and per (split, method) over
  all targets ("ALL"): n, MAE and max error (points), 90% interval coverage, Spearman rank
  correlation of predicted vs actual over the held-out models, the noise floor;
* ``reports/backtest_predictions.csv`` — every prediction with its interval (a `note` says why where it spans most of [chance, 1]);
* ``reports/metrics/<split>/<method>.json`` — n, MAE (points) and coverage for ``dvc metrics``.

``python -m pipeline backtest --scores FILE --method M --target TASK:METRIC --train Q --test Q``
runs one backtest on any table in the scores schema (see docs/laws.md).

What a split is and how a law runs on it: :mod:`pipeline.forecasting.backtest`; the scores:
:mod:`pipeline.forecasting.scoring`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import config, files, scores
from pipeline.cli import Parser, progress, run_cli, whole
from pipeline.errors import CapcastError, FitError
from pipeline.forecasting import backtest as engine
from pipeline.forecasting.backtest import PRED_COLUMNS
from pipeline.forecasting.scoring import metrics, score, score_group
from pipeline.parallel import fork_map

OUT_COLUMNS = ["model", "step", "task", "metric", "actual", "predicted", "lower", "upper"]


# -- the stage -------------------------------------------------------------------------
def write_metrics(summary: dict, out_dir: Path, sweep: bool = True) -> None:
    """``out_dir/<split>/<method>.json`` for every entry of :func:`metrics` (each written atomically),
    then the files of splits or methods no longer run removed: those the last run wrote (the
    manifest ``out_dir/.written``, :func:`pipeline.files.sweep`).  Without a manifest only
    ``<split>/<method>.json`` files of a known method holding such metrics are removed; anything
    else there (a user's notes, another tool's files) is left alone."""
    from pipeline.laws import METHODS

    out_dir = Path(out_dir)
    written = []
    for split, methods in summary.items():
        files.check_names([split], "backtest split")
        for method, vals in methods.items():
            files.check_names([method], "method")
            text = json.dumps(vals, sort_keys=True) + "\n"
            path = out_dir / split / f"{method}.json"
            scores.atomic_write(path, lambda tmp, t=text: Path(tmp).write_text(t))
            written.append(path)

    def ours(rel: str) -> bool:
        parts = rel.split("/")
        return (len(parts) == 2 and files.is_plain(parts[0]) and parts[1].removesuffix(".json") in METHODS
                and parts[1].endswith(".json") and files.is_metrics_json(out_dir / rel, METRIC_KEYS))

    if sweep:  # (an --only run writes its own splits' files and leaves the others' alone)
        files.sweep(out_dir, written, ours)


# what a file under reports/metrics/ holds (forecasting.scoring.metrics and its two_step summary)
METRIC_KEYS = ("n", "mae", "coverage")


def check_splits(table: pd.DataFrame, splits: dict, jobs: list) -> None:
    """Before any fit: split names that can be folder names (and not the metrics' own summary), and
    every fold's test rows held out from its training rows (:func:`engine.check_heldout`)."""
    from pipeline.forecasting.scoring import TWO_STEP_SPLITS

    files.check_names(list(splits), "backtest split")
    if TWO_STEP_SPLITS in splits:
        raise CapcastError(f"params.yaml: backtest.splits.{TWO_STEP_SPLITS}: the name of the metrics' own summary "
                           f"(reports/metrics/{TWO_STEP_SPLITS}/); rename the split")
    for name, (fold, train_q, test_q) in jobs:
        split = splits[name]
        where = f"params.yaml: backtest.splits.{name}" + (f" (fold {fold})" if fold != name else "")
        train = engine.select(table, train_q, f"params.yaml backtest.splits.{fold}: train")
        test = engine.select(table, test_q, f"params.yaml backtest.splits.{fold}: test")
        idle = sorted(set(split.get("options") or {}) - set(split.get("methods") or ()))
        if idle:  # options of a method the split does not run would be ignored without a word
            raise CapcastError(f"{where}.options: {idle[0]!r} is not among the split's methods "
                               f"({', '.join(split.get('methods') or ())}); add it to methods or drop its options")
        engine.check_heldout(train, test, where, split.get("targets") or (), bool(split.get("allow_overlap")),
                             bool(split.get("allow_cross_suite")))
        held = set(test["task"].astype(str) + ":" + test["metric"].astype(str))
        for target in split.get("targets") or ():
            if target not in held:  # a typo would be one "not fitted" line per method, or no split at all
                tasks = sorted({t.split(":")[0] for t in held})
                raise CapcastError(f"{where}.targets: {target!r} has no test rows (test tasks: {', '.join(tasks[:10])}"
                                   f"{', ...' if len(tasks) > 10 else ''}); fix the target (TASK:METRIC)")


def run_stage(cfg: dict, scores_path: str | None = None, out_dir: str | None = None, only=None) -> dict:
    t0 = time.perf_counter()
    scores_file = scores_path or cfg.get("scores", "data/scores.parquet")
    out = Path(out_dir or cfg.get("out_dir", "reports"))
    files.check_into(out, ["backtest.csv", "backtest_predictions.csv", "backtest_errors.csv"], "backtest.out_dir",
                     [("backtest.scores", scores_file)])
    table = scores.read(scores_file)
    # (reports/metrics/ is swept by write_metrics)
    scores.clean_stale_temps(out, names=["backtest.csv", "backtest_predictions.csv", "backtest_errors.csv"])
    splits = cfg.get("splits") or {}
    if not splits:
        raise CapcastError("params.yaml: backtest.splits is empty; declare at least one split")
    unknown = [n for n in only or () if n not in splits]
    if unknown:
        raise CapcastError(f"--only {unknown[0]}: no such split in params.yaml backtest.splits ({', '.join(splits)})")
    names = [n for n in splits if not only or n in only]
    source = calibration_source(warn=True)
    if int(cfg.get("n_bootstrap", 200)) == 0:
        print("backtest: warning: backtest.n_bootstrap is 0: the intervals of pooled and new-family splits are the "
              "measurement noise alone, and their coverage says so", file=sys.stderr)
    # one job per fold (not per split): a leave-one-family-out split of 16 folds is most of the work
    jobs = [(name, fold) for name in names for fold in engine.table_folds(name, splits[name], table)]
    check_splits(table, {n: splits[n] for n in names}, jobs)

    engine.policies(source, cfg, table, jobs, int(cfg.get("processes", 1)))

    def job(item):
        name, fold = item
        t, lines = time.perf_counter(), []
        preds, errors = engine.run_fold(table, name, splits[name], cfg, *fold, log=lines.append, source=source)
        return preds, errors, lines, time.perf_counter() - t

    all_preds, all_errors, took = [], [], {}
    with progress("backtest", "fold") as bars:
        results = fork_map(job, jobs, int(cfg.get("processes", 1)), progress=bars)
    for (name, _), (preds, errors, lines, seconds) in zip(jobs, results):
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
    errors = pd.DataFrame(all_errors, columns=["split", "fold", "method", "target", "error"])
    if preds.empty:
        first = errors.iloc[0] if len(errors) else None
        raise CapcastError("backtest: no method made a prediction" + (
            f" (e.g. {first['split']} {first['method']} {first['target']}: {first['error']})" if first is not None
            else "") + "; fix the splits in params.yaml backtest.splits")
    results = score(preds, errors, float(cfg.get("level", 0.9)))
    if only:  # the other splits' rows (and so their metrics), as the last run wrote them, stay
        results, preds, errors = (with_other_splits(out / name, names, list(splits), frame) for name, frame in
                                  (("backtest.csv", results), ("backtest_predictions.csv", preds),
                                   ("backtest_errors.csv", errors)))
    scores.write_csv(results, out / "backtest.csv")
    scores.write_csv(preds.reindex(columns=PRED_COLUMNS + [c for c in ("intermediate", "n_components", "form", "inner_error",
                                                                 "params_used", "note") if c in preds]),
              out / "backtest_predictions.csv")
    scores.write_csv(errors, out / "backtest_errors.csv")
    summary = metrics(results)
    if only:  # the other splits' metrics files as they are (recomputed from the rounded tables, a last
        # digit could move)
        from pipeline.forecasting.scoring import TWO_STEP_SPLITS

        summary = {k: v for k, v in summary.items() if k in names or k == TWO_STEP_SPLITS}
    write_metrics(summary, out / "metrics", sweep=not only)
    _print_summary(results)
    overall = score_group(preds, float(cfg.get("level", 0.9)))
    print(f"overall {cfg.get('level', 0.9):.0%} interval coverage {overall['coverage']:.3f} over {overall['n']} "
          f"predictions; wrote {out}/backtest.csv and {out}/metrics/ ({time.perf_counter() - t0:.1f}s)")
    return summary


def with_other_splits(path: Path, names: list, order: list, new: pd.DataFrame) -> pd.DataFrame:
    """``new`` (the rows of the splits ``names``: an ``--only`` run) beside the other splits' rows
    of the table at ``path`` as the last run wrote it, in the splits' order of params.yaml."""
    old = pd.read_csv(path) if path.exists() else new.iloc[:0]
    old = old.loc[~old["split"].astype(str).isin(names)] if "split" in old else old.iloc[:0]
    both = pd.concat([old, new], ignore_index=True) if len(old) else new
    rank = both["split"].map({s: i for i, s in enumerate(order)}).fillna(len(order))
    return both.assign(_rank=rank).sort_values("_rank", kind="mergesort").drop(columns="_rank").reset_index(drop=True)


def calibration_source(path=None, warn: bool = False):
    """Where auto and the calibrated intervals come from: params.yaml's ``ladders:`` section where
    there is one, else the repository's committed table; with ``warn``, say when the table no
    longer matches the law code or the settings."""
    from pipeline import params
    from pipeline.ladders import calibration

    try:
        cfg = params.load("ladders")
    except CapcastError:
        cfg = {}
    source = calibration.Source.from_config(cfg)
    if path:
        source.path = Path(path)
    if warn and cfg:
        why = calibration.stale(source.path, cfg)
        if why:
            print(f"warning: {source.path} may be stale ({why}); rebuild it with `python -m pipeline ladders`")
    return source


def law_line(pred: pd.DataFrame, unit: str) -> str:
    """What the fitted law(s) settled, for the logs: forms chosen (with counts over targets and
    folds), the mean nested inner error and which N the law used."""
    first = pred.drop_duplicates(["fold", "task", "metric"]) if "fold" in pred else pred.head(1)
    forms = first["form"].astype(str).value_counts()
    chosen = ", ".join(f"{f} x{n}" if len(forms) > 1 or n > 1 else f for f, n in forms.items())
    scale = 100.0 if unit == "points" else 1.0
    inner = first["inner_error"].astype(float) * scale
    if (first["method"] == "auto").all():
        head = f"weights {chosen} (learned on other ladders, docs/ladders.md)"
    elif inner.notna().any():
        head = f"chosen {chosen}; nested inner error {inner.mean():.2f} {unit}"
    else:
        head = "form " + ("as given (nothing left to choose)" if chosen == "-" else chosen)
    used = sorted(set(first["params_used"].astype(str)) - {"", "nan"})
    return head + (f"; N: {used[0]}" + (" ..." if len(used) > 1 else "") if used else "")


def _print_summary(results: pd.DataFrame) -> None:
    allrows = results[results["task"] == "ALL"]
    for _, r in allrows.iterrows():
        skipped = f"  ({r['skipped']} without a prediction, not in the MAE)" if r["skipped"] else ""
        print(f"  {r['split']:<22} {r['method']:<22} n={r['n']:<4} MAE {r['mae']:6.2f}  max {r['max_error']:6.2f}  "
              f"coverage {r['coverage']:.2f}  spearman {r['spearman']:.2f}{skipped}")


# -- the CLI for any table ----------------------------------------------------------------
def _parser(cfg: dict) -> argparse.ArgumentParser:
    from pipeline.laws import METHODS

    p = Parser(
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
    p.add_argument("--allow-overlap", action="store_true",
                   help="score test rows that are also training rows (same model, step, task, metric); refused "
                        "without it")
    p.add_argument("--allow-cross-suite", action="store_true",
                   help="score test rows of a suite none of the target's training rows come from; refused without it")
    p.add_argument("--out", "--output_path", dest="out", metavar="FILE",
                   help="write model, step, task, metric, actual, predicted, lower, upper here (CSV)")
    p.add_argument("--bootstrap", type=whole, default=cfg.get("n_bootstrap", 200),
                   help=f"bootstrap resamples (0: none; at most {config.MAX_BOOTSTRAP})")
    p.add_argument("--level", type=float, default=cfg.get("level", 0.9), help="prediction-interval level")
    p.add_argument("--seed", type=int, default=cfg.get("random_state", 0), help="random_state of the bootstrap")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other option of the law, e.g. --set params=non_embedding (repeatable)")
    p.add_argument("--chance", action="append", metavar="TASK=LEVEL[,...]",
                   help="random-guess level of a task the table does not give (its chance column, else the "
                        "built-in table), e.g. --chance my_task=0.25 (repeatable)")
    p.add_argument("--calibration", metavar="FILE", help="the ladder forecast table auto and the calibrated intervals "
                   "are learned from (default: params.yaml ladders.forecasts, else the repository's)")
    p.add_argument("--only", action="append", help="stage mode: run only this split (repeatable)")
    return p


def parsers() -> dict:
    """Every parser of the command, by mode (one parser: without --scores it runs the stage)."""
    return {"backtest": _parser({})}


def _options(args) -> dict:
    import yaml

    from pipeline import params
    from pipeline.laws import METHODS, options_of

    accepted = options_of(args.method)
    opts = {"n_bootstrap": args.bootstrap, "level": args.level, "random_state": args.seed}
    for flag, key, value in (("--loss", "loss", args.loss), ("--mode", "mode", args.mode),
                             ("--features", "features", args.features)):
        if value is None:
            continue
        if key not in accepted:
            users = ", ".join(m for m in METHODS if key in options_of(m))
            raise FitError(f"{flag} is used by --method {users} only; drop it for --method {args.method}")
        opts[key] = [f.strip() for f in value.split(",") if f.strip()] if key == "features" else value
    flags = {"n_bootstrap": "--bootstrap", "level": "--level", "random_state": "--seed", "loss": "--loss",
             "mode": "--mode", "features": "--features"}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FitError(f"--set {item!r} is not KEY=VALUE")
        try:
            opts[key.strip()] = params.load_yaml(value)
        except yaml.YAMLError:
            raise FitError(f"--set {item!r}: the value is not a number, text or [list]") from None
        flags[key.strip()] = f"--set {key.strip()}"
    for key, value in opts.items():  # the same checks as the options in params.yaml
        config.check_option(args.method, key, value, flags.get(key, key))
    return opts


def _leave_out_queries(args, table: pd.DataFrame) -> tuple:
    """--leave-out COLUMN=VALUE [--rows QUERY] [--keep-smallest K] -> (train, test) conditions, each
    part checked on its own (the column, the value's kind, the --rows query), never pasted into text."""
    import difflib

    col, sep, value = args.leave_out.partition("=")
    col, value = col.strip(), value.strip()
    if not sep or not col or not value:
        raise FitError(f"--leave-out {args.leave_out!r} is not COLUMN=VALUE (e.g. family=opt)")
    if args.train or args.test:
        raise FitError("--leave-out builds the training and test rows itself; drop --train/--test (narrow with --rows)")
    if col not in table.columns:
        close = difflib.get_close_matches(col, [str(c) for c in table.columns], n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise FitError(f"--leave-out {args.leave_out!r}: unknown column {col!r}; {hint}columns: "
                       f"{', '.join(map(str, table.columns))}")
    held = value
    if pd.api.types.is_numeric_dtype(table[col].dtype) and not pd.api.types.is_bool_dtype(table[col].dtype):
        try:
            held = float(value)
        except ValueError:
            raise FitError(f"--leave-out {args.leave_out!r}: column {col!r} holds numbers, and {value!r} is not "
                           "one") from None
    present = table[col].dropna()
    if not (present.astype(str) == value).any() and not (isinstance(held, float) and (present == held).any()):
        shown = ", ".join(map(str, sorted(map(str, present.unique()))[:8]))
        raise FitError(f"--leave-out {args.leave_out!r}: no row has {col} {value!r} (values: {shown}"
                       f"{', ...' if present.nunique() > 8 else ''})")
    split = {"leave_out": col, "values": [held], "keep_smallest": args.keep_smallest}
    if args.rows:
        split["rows"] = args.rows
    return tuple(engine.table_folds("--leave-out", split, table)[0][1:])


def cli(args) -> int:
    needed = ("method", "target") + (() if args.leave_out else ("train", "test"))
    missing = [f"--{k}" for k in needed if not getattr(args, k)]
    if missing:
        raise FitError(f"with --scores, also give {', '.join(missing)}")
    from pipeline.laws.data import Metric

    target = str(Metric.parse(args.target))
    files.check_outputs([("--out", args.out)], [("--scores", args.scores)])
    table = scores.with_chance(scores.read(args.scores), scores.parse_chance(args.chance))
    train_q, test_q = args.train, args.test
    if args.leave_out:
        train_q, test_q = _leave_out_queries(args, table)
    train, test = engine.select(table, train_q, "--train"), engine.select(table, test_q, "--test")
    engine.check_heldout(train, test, "--train/--test" if not args.leave_out else f"--leave-out {args.leave_out}",
                         [target], args.allow_overlap, args.allow_cross_suite,
                         ("--allow-overlap", "--allow-cross-suite"))
    source = calibration_source(args.calibration)
    policy = engine.fold_policy(source, {"level": args.level}, train, test) if source.path.exists() else None
    pred = engine.run_law(args.method, target, _options(args), train, test, policy, source.lineages)
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
    return run_cli(_main, sys.argv[1:] if argv is None else argv)
