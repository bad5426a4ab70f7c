"""Scoring held-out predictions as forecasts (../shared/docs/forecast-scoring.md): n, MAE and max
error (in points for accuracies), interval coverage, median width and interval score (Gneiting &
Raftery 2007), Spearman rank correlation and the noise floor of a group (:func:`score_group`);
the table of every (split, method, target) with its failures counted and its scores on the
predictions every method of the split made (:func:`score`); the small DVC metrics of the backtest
(:func:`metrics`) and of the forecasts (:func:`forecast_metrics`).
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from pipeline import scores
from pipeline.laws.conformal import interval_score

UNIT = ["fold", "model", "step", "task", "metric"]  # one held-out value of a split


def _points(task_metric_kind: str) -> float:
    return 100.0 if task_metric_kind == "accuracy" else 1.0


def score_group(g: pd.DataFrame, level: float = 0.9) -> dict:
    """n, MAE, max error, coverage, median width, interval score (points), Spearman, noise floor
    of one group of predictions.

    ``n`` counts the predictions scored; ``skipped`` those with an actual value but no finite
    prediction (e.g. a family the law has no line for), so an MAE never covers fewer models
    than were asked for without saying so."""
    y, p, lo, hi, se = (g[c].to_numpy(float) for c in ("actual", "predicted", "lower", "upper", "stderr"))
    has_actual = np.isfinite(y)
    skipped = int((has_actual & ~np.isfinite(p)).sum())
    ok = np.isfinite(p) & has_actual
    y, p, lo, hi, se = y[ok], p[ok], lo[ok], hi[ok], se[ok]
    metric = g["metric"].to_numpy(object)[ok]
    points = {m: _points(scores.metric_kind(m)) for m in set(metric)}
    scale = np.array([points[m] for m in metric], float)
    n = int(ok.sum())
    err = np.abs(p - y) * scale
    inside = (y >= lo) & (y <= hi)
    width = (hi - lo) * scale
    iscore = interval_score(lo, hi, y, 1 - level) * scale
    return {"n": n, "mae": float(err.mean()) if n else np.nan,
            "max_error": float(err.max()) if n else np.nan,
            "coverage": float(inside.mean()) if n else np.nan,
            "median_width": float(np.median(width)) if n else np.nan,
            "interval_score": float(np.mean(iscore)) if n else np.nan,
            "spearman": _spearman(g["task"].to_numpy(object)[ok], metric, p, y),
            "noise": float(np.nanmean(se * scale)) if np.isfinite(se).any() else np.nan,
            "skipped": skipped}


def _spearman(task: np.ndarray, metric: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> float:
    """Mean over targets (in (task, metric) order) of the rank correlation of predicted vs actual
    (>= 3 units each, neither constant)."""
    from scipy.stats import spearmanr

    if not len(task):
        return np.nan
    # "\0" sorts before every other character: the joined keys sort as the (task, metric) pairs
    keys, which = np.unique(np.char.add(np.char.add(task.astype(str), "\0"), metric.astype(str)), return_inverse=True)
    values = []
    for k in range(len(keys)):
        p, a = predicted[which == k], actual[which == k]
        if len(p) >= 3 and len(np.unique(a)) > 1 and len(np.unique(p)) > 1:
            values.append(float(spearmanr(p, a).statistic))
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


def score(preds: pd.DataFrame, errors: pd.DataFrame | None = None, level: float = 0.9) -> pd.DataFrame:
    """One row per (split, method, target) and per (split, method) over all targets ("ALL"):
    :func:`score_group`, ``failed_fits`` (fits of that method that failed, one per fold and target:
    ``errors``), and ``shared_*``: the same scores on the held-out values every method of the split
    predicted (``shared_n`` of them), so that methods compare on the same predictions."""
    failed = _failed_fits(errors)
    rows = []
    for split, s in preds.groupby("split", sort=False):
        common = dict(tuple(shared(s).groupby("method", sort=False)))
        for method, g in s.groupby("method", sort=False):
            mine = common.get(method, s.iloc[:0])
            by_target = dict(tuple(mine.groupby(["task", "metric"], sort=False)))
            for (task, metric), t in g.groupby(["task", "metric"], sort=False):
                extra = {"n_components": int(t["n_components"].iloc[0])} if "n_components" in t and t["n_components"].notna().any() else {}
                extra.update(choices(t))
                own = by_target.get((task, metric), mine.iloc[:0])
                rows.append({"split": split, "method": method, "task": task, "metric": metric,
                             **score_group(t, level), "failed_fits": failed.get((split, method, f"{task}:{metric}"), 0),
                             **_shared_scores(own, level), **extra})
            total = sum(v for (sp, m, _), v in failed.items() if sp == split and m == method)
            rows.append({"split": split, "method": method, "task": "ALL", "metric": "", **score_group(g, level),
                         "failed_fits": total, **_shared_scores(mine, level)})
    out = pd.DataFrame(rows)
    if "n_components" in out:
        out["n_components"] = out["n_components"].astype("Int64")
    return out


def shared(split_preds: pd.DataFrame) -> pd.DataFrame:
    """The predictions of a split at the held-out values every one of its methods predicted."""
    ok = split_preds.loc[np.isfinite(split_preds["predicted"].astype(float))
                         & np.isfinite(split_preds["actual"].astype(float))]
    if not len(ok):
        return ok
    methods = split_preds["method"].nunique()
    count = ok.groupby(UNIT, dropna=False, sort=False)["method"].transform("nunique")
    return ok.loc[count.to_numpy() == methods]


def _shared_scores(g: pd.DataFrame, level: float) -> dict:
    s = score_group(g, level) if len(g) else {"n": 0, "mae": np.nan, "coverage": np.nan, "interval_score": np.nan}
    return {"shared_n": s["n"], "shared_mae": s["mae"], "shared_coverage": s["coverage"],
            "shared_interval_score": s["interval_score"]}


def _failed_fits(errors: pd.DataFrame | None) -> dict:
    """(split, method, target) -> number of failed fits (one per fold)."""
    if errors is None or not len(errors):
        return {}
    return {k: int(v) for k, v in errors.groupby(["split", "method", "target"]).size().items()}


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
            "n": int(r["n"]), "failed": int(r["failed_fits"]) + int(r["skipped"]), **{
                k: None if pd.isna(r[k]) else round(float(r[k]), 3) for k in ("mae", "coverage", "interval_score")}}
    out.update(two_step_summary(totals))
    return out


FORECAST_BOUNDS = ("predicted", "lower", "upper")


def forecast_metrics(fc: pd.DataFrame, method: str = "auto") -> dict:
    """DVC metrics of the forecasts, so that ``dvc exp show`` compares them across experiments:
    ``{target slug: {"TASK.BOUND": {"forecast": value}}}`` for ``method``'s predicted, lower and
    upper (BOUND), each written as ``reports/forecast/<target slug>/<TASK>.<BOUND>.json``.  One key
    per file (one column of ``dvc metrics show``, which prints every metrics file's keys side by
    side); the slug is the target's family (``-2``, ``-3`` for a family's later targets), so it
    stays when a target's size or tokens change."""
    out: dict = {}
    slugs: dict = {}
    for target, g in fc.loc[fc["method"] == method].groupby("target", sort=False):
        family = re.sub(r"[^a-z0-9]+", "-", str(g["family"].iloc[0]).lower()).strip("-") or "target"
        slugs[family] = slugs.get(family, 0) + 1
        slug = family if slugs[family] == 1 else f"{family}-{slugs[family]}"
        for _, r in g.iterrows():
            for bound in FORECAST_BOUNDS:
                value = float(r[bound])
                out.setdefault(slug, {})[f"{r['task']}.{bound}"] = {
                    "forecast": round(value, 4) if np.isfinite(value) else None}
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
