"""Score forecasts as forecasts: MAE, coverage, median width and interval score, side by side,
on the predictions every compared method made, failures counted (../shared/docs/forecast-scoring.md).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.laws.conformal import interval_score

POINTS = 100.0  # accuracies are scored in points
SCORE_COLUMNS = ["n", "failed", "mae", "coverage", "median_width", "interval_score"]


def score(rows: pd.DataFrame, level: float = 0.9) -> dict:
    """Scores of forecast rows (actual, predicted, lower, upper, status): ``failed`` counts the
    rows without a prediction; the others are scored in accuracy points."""
    ok = rows.loc[rows["status"] == "ok"]
    y, p = ok["actual"].to_numpy(float), np.clip(ok["predicted"].to_numpy(float), 0, 1)
    lo, hi = ok["lower"].to_numpy(float), ok["upper"].to_numpy(float)
    has = np.isfinite(lo) & np.isfinite(hi)
    n = len(ok)
    return {"n": n, "failed": int(rows["status"].astype(str).str.startswith("failed").sum()),
            "mae": float(np.mean(np.abs(p - y)) * POINTS) if n else np.nan,
            "coverage": float(np.mean((y[has] >= lo[has]) & (y[has] <= hi[has]))) if has.any() else np.nan,
            "median_width": float(np.median(hi[has] - lo[has]) * POINTS) if has.any() else np.nan,
            "interval_score": float(np.mean(interval_score(lo[has], hi[has], y[has], 1 - level)) * POINTS)
            if has.any() else np.nan}


def shared(rows: pd.DataFrame, methods: list[str], key=("ladder", "factor", "model")) -> pd.DataFrame:
    """The rows of ``methods`` at the forecast units where every one of them made a prediction."""
    key = list(key)
    sub = rows.loc[rows["candidate"].isin(methods)]
    made = sub.loc[sub["status"] == "ok"].groupby(key)["candidate"].nunique()
    units = made.index[made == len(methods)]
    index = pd.MultiIndex.from_frame(sub[key])
    return sub.loc[index.isin(units)]


def table(rows: pd.DataFrame, methods: list[str], by: list[str], level: float = 0.9, reference: str = "auto"
          ) -> pd.DataFrame:
    """One row per ``by`` group x method: its failures among all its forecasts; its scores on the
    forecasts it and ``reference`` both made (``shared_n``), beside the reference's scores on the
    same forecasts (``ref_mae``, ``ref_coverage``, ``ref_interval_score``).  The reference's own row
    scores every forecast it made."""
    out = []
    for keys, g in rows.groupby(by, sort=True):
        ident = dict(zip(by, keys if isinstance(keys, tuple) else (keys,)))
        for method in methods:
            mine = g.loc[g["candidate"] == method]
            pair = [method] if method == reference else [method, reference]
            common = shared(g, pair)
            s = score(common.loc[common["candidate"] == method], level)
            ref = s if method == reference else score(common.loc[common["candidate"] == reference], level)
            s["failed"] = int(mine["status"].astype(str).str.startswith("failed").sum())
            s["not_applicable"] = int(mine["status"].astype(str).str.startswith("n/a").sum())
            out.append({**ident, "method": method, **s, "ref_mae": ref["mae"], "ref_coverage": ref["coverage"],
                        "ref_interval_score": ref["interval_score"]})
    return pd.DataFrame(out).rename(columns={"n": "shared_n"})
