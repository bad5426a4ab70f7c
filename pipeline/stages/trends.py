"""trends stage: label every (family, task, metric) curve's shape over scale and forecast it.

    python -m pipeline trends --scores FILE --out trends.csv [--x params|compute] [--train "QUERY"]
        [--chance TASK=LEVEL[,...]]

What a label, a forecast and a crossing are: :mod:`pipeline.trends` (the analysis is
:mod:`pipeline.trends.analysis`, its backtests :mod:`pipeline.trends.backtest`); every knob is in
params.yaml ``trends:`` over :data:`pipeline.trends.settings.DEFAULTS`.  The DVC stage writes
reports/trends*.csv, the backtest's metrics and the report's trends section (reports/trends.md).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from pipeline import files, params, query, scores
from pipeline.cli import Parser, progress, run_cli
from pipeline.trends import backtest as trends_backtest
from pipeline.trends.analysis import analyse_checkpoints, analyse_table, markdown, pct
from pipeline.trends.curves import CURVE_KEY, LABELS, TrendsError, final_rows, x_column
from pipeline.trends.settings import over_defaults


# ----------------------------------------------------------------------------- configuration
def load_config(path: str | Path | None = None) -> dict:
    """The ``trends:`` section of ``path`` over the built-in defaults (same values); without a path,
    params.yaml where there is one (the command also runs outside the repository), else the defaults."""
    p = Path(path or "params.yaml")
    if path is not None and not p.exists():
        raise TrendsError(f"--params-file {p}: not found; give an existing params file, or leave the flag out")
    section = (params.read(p).get("trends") or {}) if p.exists() else {}  # checked (pipeline/config.py)
    cfg = over_defaults(section)
    if cfg["x"] not in ("compute", "params"):
        raise TrendsError(f"trends.x must be 'compute' or 'params', got {cfg['x']!r}")
    return cfg


def select(table: pd.DataFrame, query_text: str, what: str) -> pd.DataFrame:
    """Rows matching a query (:mod:`pipeline.query`); one-line TrendsError when it is invalid or selects nothing."""
    return query.select(table, query_text, what, error=TrendsError)


# ----------------------------------------------------------------------------- CLI
def _clean_temps(paths) -> None:
    """Remove what an interrupted atomic write of these outputs left beside them."""
    for p in filter(None, paths):
        scores.clean_stale_temps(Path(p).parent, names=[Path(p).name])


def check_scale(table: pd.DataFrame, xcol: str, origin: str, what: str = "") -> None:
    """TrendsError naming the first row that is a curve's final checkpoint with a scale of 0
    (a checkpoint at initialisation): curves are fitted on a log scale."""
    fin = final_rows(table)
    bad = fin.index[~(fin[xcol].to_numpy(dtype=float) > 0)]
    if len(bad):
        raise TrendsError(f"{scores.where(table, bad[0], origin)}: {xcol} {table.loc[bad[0], xcol]:g} at the final "
                          f"checkpoint of its curve{what}; curves are fitted over log scale, so it needs > 0: "
                          "drop the row or give the model's tokens")


def run(args) -> int:
    if not args.out:
        raise TrendsError("give --out FILE.csv: where to write the table of curves (FILE_emergence.csv and "
                          "FILE_checkpoints.csv go beside it); the pipeline's own reports/trends*.csv are "
                          "written by `dvc repro`")
    out = Path(args.out)
    stem = out.with_suffix("")
    files.check_outputs([("--out", args.out), ("--emergence-out", args.emergence_out or f"{stem}_emergence.csv"),
                         ("--checkpoints-out", args.checkpoints_out or f"{stem}_checkpoints.csv"),
                         ("--out", f"{stem}_heldout.csv" if args.train else None), ("--metrics-out", args.metrics_out),
                         ("--metrics-out", args.metrics_out and Path(args.metrics_out).with_name(
                             "trends_backtest_summary.csv")), ("--markdown-out", args.markdown_out),
                         *(("--backtest-out", p) for p in backtest_paths(args).values())],
                        [("--scores", args.scores), ("--params-file", args.params_file)])
    cfg = load_config(args.params_file)
    if args.x:
        cfg["x"] = args.x
    table = scores.with_chance(scores.read(args.scores), scores.parse_chance(args.chance))
    check_scale(table, x_column(cfg["x"]), str(args.scores))
    full = table
    if args.train:
        table = select(table, args.train, "--train")
        check_scale(table, x_column(cfg["x"]), str(args.scores), " among the --train rows")
    _clean_temps([out, args.emergence_out or f"{stem}_emergence.csv", args.checkpoints_out or f"{stem}_checkpoints.csv",
                  f"{stem}_heldout.csv", args.metrics_out, args.markdown_out, *backtest_paths(args).values()])
    with progress("trends: curves", "curve") as bars:
        curves, em = analyse_table(table, cfg, progress=bars)
    scores.write_csv(curves, out)
    em_path = Path(args.emergence_out or f"{stem}_emergence.csv")
    if len(em) == 0:
        em = pd.DataFrame(columns=CURVE_KEY + ["label", "method", "level", "cross_compute"])
    scores.write_csv(em, em_path)
    with progress("trends: checkpoint curves", "curve") as bars:
        ck = analyse_checkpoints(table, cfg, progress=bars)
    scores.write_csv(ck, Path(args.checkpoints_out or f"{stem}_checkpoints.csv"))
    metrics = None
    if args.train:
        ho = trends_backtest.holdout(full, table, cfg, "train-query", seed=cfg["seed"])
        scores.write_csv(ho, Path(f"{stem}_heldout.csv"))
    if args.backtest_out:
        metrics = run_backtests(full, cfg, args)
    if args.markdown_out:
        text = markdown(curves, em, ck, metrics, cfg)
        scores.atomic_write(args.markdown_out, lambda tmp: Path(tmp).write_text(text))
    labelled = curves["label"].isin(LABELS)
    msg = (f"wrote {out}: {len(curves)} curves, {int(labelled.sum())} labelled "
           f"({', '.join(f'{k} {v}' for k, v in curves.loc[labelled, 'label'].value_counts().sort_index().items())})")
    if metrics:
        msg += (f"; backtest agreement {pct(metrics['label_agreement'])}, "
                f"coverage {pct(metrics['interval_coverage'])}")
    print(msg)
    return 0


def backtest_paths(args) -> dict:
    """The backtest's tables: the labels and forecasts (--backtest-out) and, beside it, the crossing
    backtest, its summary and the label confusion table."""
    if not args.backtest_out:
        return {}
    bt = Path(args.backtest_out)
    return {name: bt if name == "points" else bt.with_name(f"{bt.stem}_{name}.csv")
            for name in ("points", "emergence", "crossing", "confusion")}


def run_backtests(full: pd.DataFrame, cfg: dict, args) -> dict:
    """The params.yaml backtest splits and the crossing backtest: write their tables, return the metrics."""
    paths = backtest_paths(args)
    parts = []
    for split in cfg.get("backtest") or []:
        uni = select(full, split["universe"], f"backtest {split['name']} universe")
        tr = select(uni, split["train"], f"backtest {split['name']} train")
        parts.append(trends_backtest.holdout(uni, tr, cfg, split["name"], seed=cfg["seed"]))
    if not parts:
        raise TrendsError("--backtest-out given but params.yaml trends.backtest lists no splits")
    bt = pd.concat(parts, ignore_index=True)
    scores.write_csv(bt, paths["points"])
    scores.write_csv(trends_backtest.confusion(bt), paths["confusion"])
    metrics = trends_backtest.backtest_metrics(bt)
    eb = trends_backtest.crossing_backtest(full, cfg, seed=cfg["seed"])
    scores.write_csv(eb, paths["emergence"])
    summary = trends_backtest.crossing_summary(eb)
    scores.write_csv(summary, paths["crossing"])
    metrics["crossing"] = trends_backtest.crossing_metrics(summary)
    if args.metrics_out:
        text = json.dumps(trends_backtest.dvc_metrics(metrics), indent=2) + "\n"
        scores.atomic_write(args.metrics_out, lambda tmp: Path(tmp).write_text(text))
        scores.write_csv(trends_backtest.summary_frame(metrics), Path(args.metrics_out).with_name("trends_backtest_summary.csv"))
    return metrics


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m pipeline trends", description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scores", default="data/scores.parquet", help="scores table (CSV or Parquet)")
    p.add_argument("--x", choices=["params", "compute"], default=None, help="scale axis (default: params.yaml)")
    p.add_argument("--train", default=None,
                   help="query selecting the rows to fit (e.g. \"params <= 1.5e9\"); the other final "
                        "checkpoints of the same curves are predicted into <out>_heldout.csv")
    p.add_argument("--chance", action="append", default=None, metavar="TASK=LEVEL[,...]",
                   help="random-guess accuracy of tasks the table has no chance column for and capcast does not "
                        "know (1 / number of choices; 0 for free-form answers); repeatable")
    p.add_argument("--out", "--output_path", dest="out", metavar="FILE", default=None,
                   help="required: one row per curve (label, evidence, forecasts); the other tables go beside it")
    p.add_argument("--emergence-out", default=None, help="default: <out>_emergence.csv")
    p.add_argument("--checkpoints-out", default=None, help="default: <out>_checkpoints.csv")
    p.add_argument("--backtest-out", default=None, help="run the params.yaml backtest splits and write here; the "
                                                        "crossing backtest and the label confusion table go beside it "
                                                        "(<stem>_emergence.csv, _crossing.csv, _confusion.csv)")
    p.add_argument("--metrics-out", default=None, help="DVC metrics JSON of the backtest (a few flat numbers; "
                                                       "every split's in trends_backtest_summary.csv beside it)")
    p.add_argument("--markdown-out", default=None, help="the report's trends section (markdown)")
    p.add_argument("--params-file", "--params", dest="params_file", metavar="FILE", default=None,
                   help="the params file whose trends: section sets every knob (default: params.yaml; --params is "
                        "the old spelling)")
    return p


def parsers() -> dict:
    """Every parser of the command, by mode."""
    return {"trends": parser()}


def _main(argv) -> int:
    return run(parser().parse_args(argv))


def main(argv=None) -> int:
    return run_cli(_main, argv)
