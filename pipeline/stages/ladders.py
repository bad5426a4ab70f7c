"""ladders: every real ladder and the simulated zoo, held out at their top, every candidate scored.

``python -m pipeline ladders`` (settings: params.yaml ``ladders:``; docs/ladders.md) writes

* ``data/calibration/ladder_forecasts.csv.gz`` (``ladders.forecasts``) and its manifest
  ``ladder_forecasts.json``: every candidate's forecast of every ladder's top at every holdout
  factor, and the out-of-group auto forecasts; what auto and the calibrated intervals of the
  backtest, forecast and report stages are learned from;
* ``reports/ladders/lolo.csv`` (``ladders.out_dir``): the leave-one-ladder-out table, per ladder
  class x holdout factor x method (auto included): failures, MAE, coverage, median width and
  interval score on the forecasts every method made;
* ``reports/ladders/beyond_support.csv`` (``ladders.beyond_support``): the same table for a policy
  learned from the nearer holdouts alone (2x and 4x) and judged at a farther one (16x): how auto
  and the intervals hold past the distances they were learned at, as a forecast past 16x must;
* ``reports/ladders/new_design.csv``: the same table for the simulated ladders with each design left
  out whole: how the policy does on a kind of ladder it has never seen.

About 6 minutes on 2 cores, so it is not a ``dvc repro`` stage; ``--evaluate-only`` recomputes the
three tables from the forecasts already written (about a minute).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from pipeline import files, params, scores
from pipeline.cli import Parser, progress, run_cli
from pipeline.errors import CapcastError
from pipeline.ladders import calibration, table
from pipeline.parallel import shown


def parser(cfg: dict | None = None) -> argparse.ArgumentParser:
    """The command's options, their defaults from params.yaml ``ladders:`` (``cfg``)."""
    cfg = cfg or {}
    p = Parser(prog="python -m pipeline ladders", description=__doc__.split("\n")[0])
    p.add_argument("--evaluate-only", action="store_true",
                   help="recompute the leave-one-ladder-out table from the forecasts already written")
    p.add_argument("--processes", type=int, default=int(cfg.get("processes", 1)),
                   help="forked worker processes for the fits (the same bytes whatever the number)")
    return p


def parsers() -> dict:
    """Every parser of the command, by mode."""
    return {"ladders": parser()}


def _main(argv) -> int:
    cfg = params.load("ladders")
    args = parser(cfg).parse_args(argv)
    t0 = time.perf_counter()
    forecasts_path = Path(cfg.get("forecasts", calibration.DEFAULT_PATH))
    out_dir = Path(cfg.get("out_dir", "reports/ladders"))
    beyond_path = out_dir / "beyond_support.csv" if beyond_factors(cfg) else None  # checked before the long work
    files.check_outputs([("ladders.forecasts", None if args.evaluate_only else forecasts_path),
                         ("ladders.out_dir", out_dir / "lolo.csv"), ("ladders.out_dir", beyond_path),
                         ("ladders.out_dir", out_dir / "new_design.csv")],
                        [("ladders.scores", cfg.get("scores"))])
    candidates, level = list(cfg["candidates"]), float(cfg.get("level", 0.9))
    if not args.evaluate_only:
        scores_table = scores.read(cfg.get("scores", "data/scores.parquet"))
        with progress("ladders", "ladder") as bars, shown(bars):  # the harness's fork_map over the ladders
            forecasts = table.build(scores_table, cfg, args.processes)
        table.write_forecasts(forecasts, forecasts_path)
        text = json.dumps(calibration.manifest(cfg, forecasts), indent=1, sort_keys=True) + "\n"
        scores.atomic_write(calibration.manifest_path(forecasts_path), lambda tmp: Path(tmp).write_text(text))
    # evaluated as written (rounded), so that --evaluate-only gives the same bytes
    lolo = table.evaluate(calibration.read(forecasts_path), candidates, level)
    scores.write_csv(lolo.round(3), out_dir / "lolo.csv")
    print(summary(lolo))
    if beyond_path is not None:
        beyond = table.beyond_support(calibration.read(forecasts_path), candidates, level, *beyond_factors(cfg))
        scores.write_csv(beyond.round(3), beyond_path)
        print("beyond the support (policies learned from the nearer holdouts alone):\n" + summary(beyond))
    designs = table.new_design(calibration.read(forecasts_path), candidates, level)
    scores.write_csv(designs.round(3), out_dir / "new_design.csv")
    print("each simulated design left out whole:\n" + summary(designs))
    print(f"wrote {forecasts_path if not args.evaluate_only else ''} {out_dir / 'lolo.csv'}"
          f"{' ' + str(beyond_path) if beyond_path is not None else ''} {out_dir / 'new_design.csv'} "
          f"({time.perf_counter() - t0:.0f}s)".replace("  ", " "))
    return 0


def beyond_factors(cfg: dict) -> tuple[list[float], float] | None:
    """``ladders.beyond_support`` as (learned_at, scored_at), checked against ``ladders.factors``
    (None where it is not set): the policy learned from the holdouts at ``learned_at`` alone,
    judged at ``scored_at``, a factor past them."""
    spec = cfg.get("beyond_support")
    if not spec:
        return None
    learned_at, scored_at = [float(f) for f in spec["learned_at"]], float(spec["scored_at"])
    factors = {float(f) for f in cfg.get("factors") or ()}
    if scored_at in learned_at or scored_at not in factors or not set(learned_at) <= factors:
        shown = ", ".join(f"{f:g}" for f in sorted(factors))
        raise CapcastError(f"params.yaml ladders.beyond_support: learned_at {spec['learned_at']} and scored_at "
                           f"{spec['scored_at']} must be among ladders.factors ({shown}), scored_at not among "
                           "learned_at")
    return learned_at, scored_at


def summary(lolo: pd.DataFrame) -> str:
    """Auto per class and factor, and the single method that beats it by most on the forecasts
    both made (or that it beats by least), one line each."""
    lines = []
    for (cls, factor), g in lolo.groupby(["ladder_class", "factor"], sort=True):
        auto = g.loc[g["method"] == "auto"].iloc[0]
        single = table.singles(g)
        name = table.closest_single(single, "mae")
        best = single.loc[name] if name is not None else None
        best_text = (f"; closest single {name} {best['mae']:.2f} vs auto {best['ref_mae']:.2f} on the "
                     f"same {int(best['shared_n'])}") if best is not None else ""
        lines.append(f"  {cls:<24} {factor:>4g}x  auto MAE {auto['mae']:5.2f}  coverage {auto['coverage']:.2f}  "
                     f"width {auto['median_width']:5.1f}  interval score {auto['interval_score']:6.1f}{best_text}")
    return "\n".join(lines)


def main(argv=None) -> int:
    return run_cli(_main, sys.argv[1:] if argv is None else argv)
