"""Whether the local conformal quantile can tell a kind of ladder from the others, per ladder class.

A method's interval at a forecast is scaled by the conformal quantile of its
``conformal.NEIGHBOURS`` nearest calibration forecasts (:meth:`pipeline.laws.conformal.Conformal.local_shift_q`),
nearest in the standardised features of the training rows.  Coverage can hold class by class only
where a class's forecasts find their own class among those neighbours.  For each ladder group left
out in turn (as :mod:`pipeline.ladders.lolo` leaves it out), one method's conformal model is fitted
on the other groups' forecasts and every forecast of the group is read against it.

Printed per ladder class and holdout factor: forecasts n; ``purity``, the mean share of a
forecast's neighbours of its own class; ``share``, that class's share of the calibration forecasts
(the purity of neighbours drawn at random); ``coverage`` of the method's conformal interval
(without the measurement band); and the median local quantile ``q`` (in units of sigma).

    .venv/bin/python benchmarks/neighbour_purity.py [--method line_final] [--factor 16]

A few seconds.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pipeline  # noqa: E402,F401  (pins the numerical kernels before numpy does any work)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from pipeline.ladders import calibration  # noqa: E402
from pipeline.laws import conformal, policy  # noqa: E402
from pipeline.laws.policy import AUTO, link_errors, with_spread  # noqa: E402

LEVEL = 0.9


def read_group(cal: pd.DataFrame, mine: pd.DataFrame) -> pd.DataFrame:
    """``mine``'s forecasts read against a conformal model of ``cal``'s errors: per forecast its
    neighbours' purity, whether its interval covers, and its local quantile."""
    model = conformal.Conformal.fit(cal["e"], cal["nz"], conformal.design(cal), LEVEL, policy._group_weights(cal))
    fitted = np.isfinite(cal["e"]) & np.isfinite(cal["nz"]) & np.isfinite(conformal.design(cal)).all(axis=1)
    kinds = cal.loc[fitted, "kind"].to_numpy()
    phi = conformal.design(mine)
    shift, q = model.local_shift_q(phi)
    score = mine["e"].to_numpy(float) / model.sigma(mine["nz"].to_numpy(float), phi)
    purity = [float(np.mean(kinds[near] == kind)) for near, kind in zip(model.neighbours(phi), mine["kind"])]
    return mine[["kind", "factor"]].assign(purity=purity, covered=np.abs(score - shift) <= q, q=q)


def run(table: pd.DataFrame, method: str) -> pd.DataFrame:
    rows = link_errors(with_spread(table.loc[table["candidate"] != AUTO]).query("status == 'ok' and candidate == @method"))
    rows = rows.loc[np.isfinite(rows["e"]) & np.isfinite(rows["nz"])]
    share = rows["kind"].value_counts(normalize=True)
    read = pd.concat([read_group(rows.loc[rows["group"] != g], rows.loc[rows["group"] == g])
                      for g in sorted(rows["group"].unique())], ignore_index=True)
    out = read.groupby(["kind", "factor"]).agg(n=("purity", "size"), purity=("purity", "mean"),
                                               coverage=("covered", "mean"), q=("q", "median")).reset_index()
    out.insert(4, "share", out["kind"].map(share))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method", default="line_final", help="the candidate whose conformal model is read")
    ap.add_argument("--factor", type=float, default=None, help="only this holdout factor (default: every one)")
    ap.add_argument("--table", default=str(calibration.DEFAULT_PATH))
    args = ap.parse_args(argv)
    table = calibration.read(args.table)
    if args.method not in set(table["candidate"]) - {AUTO}:
        ap.error(f"--method: {args.method!r} has no forecasts in {args.table}; one of "
                 f"{', '.join(sorted(set(table['candidate']) - {AUTO}))}")
    if args.factor is not None:
        if args.factor not in set(table["factor"]):
            ap.error(f"--factor: the table holds out {', '.join(f'{f:g}' for f in sorted(set(table['factor'])))}")
        table = table.loc[table["factor"] == args.factor]
    print(f"{args.method}: each ladder group left out, its forecasts' {conformal.NEIGHBOURS} nearest calibration forecasts")
    print(run(table, args.method).round(2).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
