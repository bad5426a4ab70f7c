"""Scoring held-out predictions: n, MAE and max error (in points for accuracies), interval coverage,
Spearman rank correlation and the noise floor of a group (:func:`score_group`); the table of every
(split, method, target) (:func:`score`) and the small DVC metrics (:func:`metrics`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline import scores


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

    Written one file per (split, method) under reports/metrics/ (:func:`pipeline.stages.backtest.write_metrics`), so that
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
