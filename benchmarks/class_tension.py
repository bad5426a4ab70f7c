"""What auto's weights trade between ladder classes: its error on each class with and without another.

Auto's weights are one function of a forecast's features, learned over every ladder class at once
(:class:`pipeline.laws.policy.Gate`).  Where two classes look alike from their training rows (a task
flat near chance that stays there, one flat near chance that takes off later), the weights that
serve one cost the other.  This prints auto's out-of-group MAE (accuracy points) per class and
holdout factor, as :func:`pipeline.ladders.lolo.auto_forecasts` makes it, with the weights learned
from every class ("in use") and with the ladders of one class left out of what they learn from
(``--without KIND``, repeatable), beside the final-checkpoint line's MAE on the same forecasts, and
how far the best single candidate's MAE is below auto's (in use) on the forecasts that candidate made.

    .venv/bin/python benchmarks/class_tension.py --without emergent [--classes near_chance,emergent,real]

About 10 seconds a policy set on one core (each group left out in turn); less with ``--classes``,
which forecasts only those classes' ladders.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pipeline  # noqa: E402,F401  (pins the numerical kernels before numpy does any work)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from pipeline.ladders import calibration, lolo  # noqa: E402
from pipeline.laws.policy import AUTO, with_spread  # noqa: E402

LEVEL = 0.9


def auto_errors(table: pd.DataFrame, candidates: list[str], learn_from: pd.DataFrame) -> pd.Series:
    """Auto's absolute error (points) per forecast unit (kind, factor, ladder, model), its weights
    learned from ``learn_from``'s other groups."""
    auto = lolo.auto_forecasts(table, candidates, LEVEL, learn_from)
    err = (auto["predicted"] - auto["actual"]).abs() * 100
    return err.set_axis(pd.MultiIndex.from_frame(auto[["kind", "factor", "ladder", "model"]]))


def run(table: pd.DataFrame, candidates: list[str], without: list[str], classes=None) -> pd.DataFrame:
    """Per class (of ``classes``: by default every one) and factor: n, auto's MAE in use and without
    each class of ``without``, the final-checkpoint line's MAE on the same forecasts and the best
    candidate's lead.  Weights are always learned from every other group of the whole table."""
    table = with_spread(table.loc[table["candidate"] != AUTO])
    mine = table if classes is None else table.loc[table["kind"].isin(list(classes))]
    cols = {"in use": auto_errors(mine, candidates, table)}
    for kind in without:
        cols[f"without {kind}"] = auto_errors(mine, candidates, table.loc[table["kind"] != kind])
    errors = pd.DataFrame(cols)
    ok = table.loc[table["status"] == "ok"]
    single = ok.assign(err=(ok["predicted"] - ok["actual"]).abs() * 100).pivot_table(
        index=["kind", "factor", "ladder", "model"], columns="candidate", values="err")
    single = single.reindex(errors.index)
    # judged on the forecasts auto and the final-checkpoint line both made (the line rarely fails)
    both = errors.notna().all(axis=1) & single["line_final"].notna()
    errors, single = errors.loc[both], single.loc[both]
    by = ["kind", "factor"]
    out = errors.groupby(level=by).mean()
    out.insert(0, "n", errors.groupby(level=by).size())
    out["line_final"] = single["line_final"].groupby(level=by).mean()
    # each candidate against auto (in use) on the forecasts that candidate made: the best one's lead
    lead = single.sub(errors["in use"], axis=0).groupby(level=by).mean()
    out["best candidate - auto"] = lead.min(axis=1)
    out["which"] = lead.idxmin(axis=1)
    return out.reset_index()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--without", action="append", default=[], metavar="KIND",
                    help="leave this ladder class out of what the weights learn from (repeatable)")
    ap.add_argument("--classes", default="", help="comma-separated classes to print (default: every one)")
    ap.add_argument("--table", default=str(calibration.DEFAULT_PATH))
    args = ap.parse_args(argv)
    table = calibration.read(args.table)
    kinds = sorted(set(table["kind"]))
    shown = [k for k in args.classes.split(",") if k] or kinds
    unknown = sorted(set(args.without + shown) - set(kinds))
    if unknown:
        ap.error(f"no ladder class {', '.join(unknown)} in {args.table}; one of {', '.join(kinds)}")
    out = run(table, calibration.DEFAULT_CANDIDATES, args.without, shown)
    print("auto's out-of-group MAE (points), with the weights learned from every class and without each --without")
    print(out.round(2).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
