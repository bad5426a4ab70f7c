"""Which backtest intervals a researcher can bet on: calibrated and sharp split × method pairs.

Reads the backtest stage's summary (``reports/backtest.csv``, every split × method's ``ALL`` row)
and judges each pair with ``--min-n`` or more predictions by two tests of a 90% interval:

* calibrated: coverage >= ``--min-coverage`` (0.80);
* sharp: interval score (Gneiting & Raftery 2007, alpha = 0.1) <= ``--max-ratio`` x MAE (7; a
  normal error whose interval is exactly right scores about 5.2 x its MAE, so 7 allows an interval
  about 1.7x too wide).

Prints every pair (n, MAE, coverage, median width, interval score, its ratio to the MAE, the
verdict) and the count that pass both; docs/laws.md quotes that count.

    .venv/bin/python benchmarks/backtest_calibration.py [--backtest reports/backtest.csv] [--failing]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def judge(backtest: pd.DataFrame, min_n: int = 10, min_coverage: float = 0.80, max_ratio: float = 7.0) -> pd.DataFrame:
    """One row per split × method with ``min_n`` or more predictions: its scores and verdict."""
    rows = backtest.loc[(backtest["task"] == "ALL") & (backtest["n"] >= min_n)].copy()
    rows["is_over_mae"] = rows["interval_score"] / rows["mae"]
    rows["calibrated"] = rows["coverage"] >= min_coverage
    rows["sharp"] = rows["is_over_mae"] <= max_ratio
    rows["passes"] = rows["calibrated"] & rows["sharp"]
    return rows[["split", "method", "n", "mae", "coverage", "median_width", "interval_score", "is_over_mae",
                 "calibrated", "sharp", "passes"]].reset_index(drop=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backtest", default=str(ROOT / "reports" / "backtest.csv"))
    ap.add_argument("--min-n", type=int, default=10)
    ap.add_argument("--min-coverage", type=float, default=0.80)
    ap.add_argument("--max-ratio", type=float, default=7.0)
    ap.add_argument("--failing", action="store_true", help="print only the pairs that fail a test")
    args = ap.parse_args(argv)
    try:
        backtest = pd.read_csv(args.backtest)
    except (OSError, ValueError) as exc:
        ap.error(f"{args.backtest}: unreadable ({' '.join(str(exc).split())[:100]}); run `dvc repro backtest`")
    missing = {"split", "method", "task", "n", "mae", "coverage", "median_width", "interval_score"} - set(backtest)
    if missing:
        ap.error(f"{args.backtest}: not the backtest stage's summary (missing {', '.join(sorted(missing))})")
    table = judge(backtest, args.min_n, args.min_coverage, args.max_ratio)
    shown = table.loc[~table["passes"]] if args.failing else table
    print(shown.round(3).to_string(index=False))
    print(f"{int(table['passes'].sum())} of {len(table)} split x method pairs with >= {args.min_n} predictions: "
          f"coverage >= {args.min_coverage:g} and interval score <= {args.max_ratio:g} x MAE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
