"""Backtests of the trends stage: labels and forecasts from small models, and the crossing point.

* **Labels and forecasts** (:func:`holdout`, splits in params.yaml ``trends.backtest``): each
  curve is labelled and forecast from the training rows only, and compared with the label from
  all rows (agreement, and the confusion of every label with every label) and with the held-out
  values (interval coverage, MAE in accuracy points).
* **The crossing point** (:func:`crossing_backtest`): every curve of ``emergence.backtest_suites``
  (one family over its models, and one model over its checkpoints) whose values cross chance +
  margin inside the data, after at least ``backtest_min_points`` points on one side, is cut just
  before the crossing; each route forecasts where it crosses from what is left (for the loss and
  PC routes the family's models at and above the crossing leave every suite), and the forecast is
  scored in decades of compute against where the curve actually crossed (log10 compute
  interpolated between the last point before and the first point past the level).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline import scores
from pipeline.trends import analysis, emergence
from pipeline.trends.curves import (CURVE_KEY, LABELS, final_rows, group_curves, metric_orientation, plain, prepare,
                                    x_column)

CLASSES = LABELS + ("insufficient",)


# ----------------------------------------------------------------------------- labels and forecasts
def _hkey(k: dict) -> tuple:  # NaN shots compare unequal: key them by a sentinel
    return tuple(-1 if (isinstance(v, float) and np.isnan(v)) else v for v in k.values())


def holdout(universe: pd.DataFrame, train: pd.DataFrame, cfg: dict, name: str, seed: int = 0) -> pd.DataFrame:
    """For every curve: label from the training rows, label from all rows, and for each model in
    ``universe`` but not in ``train`` (final checkpoint) the forecast, its interval and the actual."""
    st = analysis.settings(cfg)
    xcol = x_column(cfg["x"])
    fin_all = final_rows(plain(universe))
    train_curves = {_hkey(k): g for k, g in group_curves(final_rows(plain(train)), CURVE_KEY)}
    cases = []
    for key, pts_all in group_curves(fin_all, CURVE_KEY):
        pts_tr = train_curves.get(_hkey(key))
        test = pts_all[~pts_all["model"].isin(set(pts_tr["model"]) if pts_tr is not None else set())]
        if not test.empty:
            cases.append((key, pts_all, pts_tr, test.sort_values(xcol, kind="mergesort")))
    margin = cfg["emergence"]["margin"]
    labels_all = []
    for key, pts_all, _, _ in cases:
        prep = prepare(key["task"], key["metric"], pts_all, xcol, cfg)
        labels_all.append(analysis.label(prep.curve, st, margin).label if prep.curve is not None else prep.reason)
    fitted = [i for i, c in enumerate(cases) if c[2] is not None]
    preps = [prepare(cases[i][0]["task"], cases[i][0]["metric"], cases[i][2], xcol, cfg) for i in fitted]
    targets = [np.log10(cases[i][3][xcol].to_numpy(dtype=float)) for i in fitted]
    results = dict(zip(fitted, analysis.analyse_curves(preps, cfg, st, targets=targets, seed=seed)))
    out = []
    for i, (key, _, _, test) in enumerate(cases):
        res = results.get(i)
        label_small = res["label"] if res is not None else "insufficient: no training rows"
        for j, (_, r) in enumerate(test.iterrows()):
            row = dict(split=name, **key, label_small=label_small, label_all=labels_all[i],
                       model=r["model"], params=r["params"], x_value=r[xcol], actual=r["value"],
                       actual_stderr=r["stderr"], forecast_form=(res or {}).get("forecast_form", ""))
            if res is not None and "targets" in res:
                p, lo, hi = res["targets"][j]
                row.update(pred=p, lo=lo, hi=hi, hit=bool(lo <= r["value"] <= hi))
            out.append(row)
    cols = ["split"] + CURVE_KEY + ["label_small", "label_all", "model", "params", "x_value", "actual",
                                    "actual_stderr", "forecast_form", "pred", "lo", "hi", "hit"]
    return pd.DataFrame(out).reindex(columns=cols)


def _valid(label) -> bool:
    return isinstance(label, str) and label in LABELS


def label_class(label) -> str:
    return label if _valid(label) else "insufficient"


def backtest_metrics(bt: pd.DataFrame) -> dict:
    """Label agreement (curves labelled by both, neither noisy), 90% interval coverage, and the
    forecasts' errors on accuracies in points (x100, the unit of the scaling-law backtest)."""
    def summary(d: pd.DataFrame) -> dict:
        curves = d.drop_duplicates(["split"] + CURVE_KEY)
        both = curves[curves["label_small"].map(_valid) & curves["label_all"].map(_valid)]
        clean = both[(both["label_small"] != "noisy") & (both["label_all"] != "noisy")]
        strict = both[both["label_all"] != "noisy"]
        pts = d[d["pred"].notna()]
        acc = pts[pts["metric"].map(lambda m: scores.metric_kind(m) == "accuracy")]
        err = (acc["pred"] - acc["actual"]).abs() * 100  # accuracy points
        return {
            "label_agreement": _ratio((clean["label_small"] == clean["label_all"]).sum(), len(clean)),
            "label_agreement_curves": int(len(clean)),
            "label_agreement_incl_noisy_small": _ratio((strict["label_small"] == strict["label_all"]).sum(),
                                                       len(strict)),
            "label_agreement_all_labelled": _ratio((both["label_small"] == both["label_all"]).sum(), len(both)),
            "curves": int(len(curves)),
            "curves_insufficient": int(len(curves) - len(both)),
            "interval_coverage": _ratio(pts["hit"].astype(bool).sum(), len(pts)),
            "heldout_points": int(len(pts)),
            "mae_accuracy": round(float(err.mean()), 4) if len(acc) else None,
            "max_abs_error_accuracy": round(float(err.max()), 4) if len(acc) else None,
            "accuracy_points": int(len(acc)),
        }

    out = summary(bt)
    out["splits"] = {name: summary(g) for name, g in bt.groupby("split", sort=True)}
    return out


def confusion(bt: pd.DataFrame) -> pd.DataFrame:
    """reports/trends_label_confusion.csv: curves by label from the small models (rows) and from
    all models (columns), every label x every label (unlabelled curves as 'insufficient'); split
    ALL (every split) first, then each split; ``agreement`` = the diagonal share of the row."""
    curves = bt.drop_duplicates(["split"] + CURVE_KEY)
    parts = [("ALL", curves)] + list(curves.groupby("split", sort=True))
    rows = []
    for name, d in parts:
        tab = pd.crosstab(d["label_small"].map(label_class), d["label_all"].map(label_class))
        tab = tab.reindex(index=list(CLASSES), columns=list(CLASSES), fill_value=0).fillna(0).astype(int)
        for small, counts in tab.iterrows():
            total = int(counts.sum())
            rows.append({"split": name, "label_small": small, **counts.to_dict(), "curves": total,
                         "agreement": round(counts[small] / total, 4) if total else np.nan})
    return pd.DataFrame(rows, columns=["split", "label_small", *CLASSES, "curves", "agreement"])


def dvc_metrics(metrics: dict) -> dict:
    """The DVC metrics file: a few flat numbers over every split (details: :func:`summary_frame`,
    the crossing backtest's in trends_crossing_summary.csv).

    Same names and units as the scaling-law backtest's (reports/metrics/): mae in accuracy points,
    coverage a fraction, n the held-out points; emergence_* the crossing backtest (first route
    with a forecast per case): coverage of its interval, median |error| in decades of compute.
    """
    em = metrics.get("crossing") or {}
    out = {"label_agreement": metrics["label_agreement"], "coverage": metrics["interval_coverage"],
           "mae": metrics["mae_accuracy"], "n": metrics["heldout_points"],
           "emergence_coverage": em.get("coverage"), "emergence_log10_error": em.get("median_abs_log10_error")}
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}


SUMMARY_COLUMNS = ["split", "label_agreement", "label_agreement_curves", "label_agreement_incl_noisy_small",
                   "label_agreement_all_labelled", "curves", "curves_insufficient", "coverage", "heldout_points",
                   "mae", "max_error", "accuracy_points"]


def summary_frame(metrics: dict) -> pd.DataFrame:
    """reports/trends_backtest_summary.csv: the backtest numbers, split ALL (every split) then each split."""
    def row(name, m):
        return {"split": name, **{k: v for k, v in m.items() if not isinstance(v, dict)},
                "coverage": m["interval_coverage"], "mae": m["mae_accuracy"], "max_error": m["max_abs_error_accuracy"]}

    rows = [row("ALL", metrics)] + [row(k, v) for k, v in (metrics.get("splits") or {}).items()]
    return pd.DataFrame(rows).reindex(columns=SUMMARY_COLUMNS)


def _ratio(a, b):
    return round(float(a) / b, 6) if b else None


# ----------------------------------------------------------------------------- the crossing point
@dataclass
class Case:
    """A curve that crosses ``level`` inside its data: the ``before`` points on the ``side`` it
    starts on (+1 below, -1 above), then the crossing at log10 compute ``t_obs``."""

    kind: str  # size (a family over its models) | step (one model over its checkpoints)
    key: dict
    pts: pd.DataFrame  # sorted by compute
    chance: float
    level: float
    side: float
    before: int
    t_obs: float


def crossing_cases(full: pd.DataFrame, cfg: dict) -> list[Case]:
    """Every curve of the backtest suites that crosses chance + margin after >= min points."""
    ecfg = cfg["emergence"]
    table = plain(full)
    table = table[table["suite"].isin(ecfg["backtest_suites"])]
    curves = [("size", k, g) for k, g in group_curves(final_rows(table), CURVE_KEY)]
    curves += [("step", k, g) for k, g in analysis.checkpoint_curves(table, cfg)]
    out = []
    for kind, key, pts in curves:
        if scores.metric_kind(key["metric"]) != "accuracy" or not (pts["compute_flops"] > 0).all():
            continue
        _, bounded, ch, _ = metric_orientation(key["task"], key["metric"], pts)
        if ch is None or not bounded:
            continue
        c = pts["compute_flops"].to_numpy(dtype=float)
        pts = pts.iloc[np.lexsort((pts["model"].to_numpy(dtype=object).astype(str), c))]
        v = pts["value"].to_numpy(dtype=float)
        t = np.log10(pts["compute_flops"].to_numpy(dtype=float))
        level = ch + ecfg["margin"]
        side = 1.0 if v[0] < level else -1.0
        past = np.flatnonzero(side * (v - level) >= 0)
        if not len(past) or past[0] < ecfg["backtest_min_points"] or t[past[0]] <= t[past[0] - 1]:
            continue
        j = past[0]
        t_obs = t[j - 1] + (level - v[j - 1]) / (v[j] - v[j - 1]) * (t[j] - t[j - 1])
        out.append(Case(kind, key, pts, ch, level, side, int(j), float(t_obs)))
    return out


def crossing_backtest(full: pd.DataFrame, cfg: dict, seed: int = 0) -> pd.DataFrame:
    """One row per case and route: the forecast crossing from the points before it (log10 compute
    point and interval) against the observed one; ``primary`` marks the route the stage would
    report first (loss, pc, fit)."""
    cases = crossing_cases(full, cfg)
    st = analysis.settings(cfg)
    preps = [prepare(c.key["task"], c.key["metric"], c.pts.iloc[:c.before], "compute_flops", cfg) for c in cases]
    fits = analysis.analyse_curves(preps, cfg, st, levels=[(c.level, c.side) for c in cases], seed=seed)
    table = plain(full)
    fin = final_rows(table)
    base = emergence.Routes(table, fin, cfg)
    rows = []
    for case, res in zip(cases, fits):
        fit = ((res["cross_fit"], f"{res['label']} from {case.before} points, forecast form {res['forecast_form']}")
               if "cross_fit" in res else (None, res.get("cross_why") or f"{res['label']}: no forecast toward the level"))
        routes = [("fit", fit)]
        if case.kind == "size" and case.side > 0:
            case_id = {**case.key, "points_before": case.before, "level": case.level}
            routes = _other_routes(base, case, analysis.curve_seed(seed, case_id)) + routes
        else:
            routes = [(m, (None, "one model over its checkpoints" if case.kind == "step" else "a falling curve"))
                      for m in ("loss", "pc")] + routes
        first = next((m for m, (val, _) in routes if val is not None), None)
        for method, (val, detail) in routes:
            rows.append(_case_row(case, method, val, detail, method == first))
    cols = ["kind", "suite", "family", "model", "task", "metric", "num_fewshot", "side", "level", "points_before",
            "observed_compute", "method", "primary", "pred_compute", "lo_compute", "hi_compute", "log10_error",
            "hit", "detail"]
    return pd.DataFrame(rows).reindex(columns=cols)


def _other_routes(base: emergence.Routes, case: Case, seed: int) -> list:
    """The loss and PC routes with the family's models at and above the crossing gone from every suite."""
    fin = base.final
    first_past = float(case.pts["compute_flops"].iloc[case.before])
    gone = set(fin.loc[(fin["family"] == case.key["family"]) & (fin["compute_flops"] >= first_past), "model"])
    res = {"label": "", "cross_why": "-"}
    routes = base.without(gone).estimates(case.key, case.chance, case.level, res, seed)
    return [(m, v) for m, v in routes if m != "fit"]


def _case_row(case: Case, method: str, val, detail: str, primary: bool) -> dict:
    c = case.pts
    row = dict(kind=case.kind, **case.key, side="up" if case.side > 0 else "down", level=case.level,
               points_before=case.before, observed_compute=10 ** case.t_obs, method=method, primary=primary,
               detail=detail)
    row.setdefault("model", c["model"].iloc[0] if case.kind == "step" else "")
    if val is not None:
        pt, lo, hi = (float(v) for v in val)
        row.update(pred_compute=10 ** pt if np.isfinite(pt) else np.inf,
                   lo_compute=10 ** lo if np.isfinite(lo) else np.inf,
                   hi_compute=10 ** hi if np.isfinite(hi) else np.inf,
                   log10_error=pt - case.t_obs if np.isfinite(pt) else np.inf,
                   hit=bool(lo <= case.t_obs <= hi))
    return row


def crossing_summary(eb: pd.DataFrame) -> pd.DataFrame:
    """reports/trends_backtest_crossing.csv: per group of cases, how many got a forecast, how many
    a finite one, the coverage of the intervals (of those forecast) and the median |error| in
    decades (of the finite ones).  Groups: every case by its primary route (ALL), per kind and
    suite, and per route over every case it was tried on."""
    prim = eb[eb["primary"].astype(bool)] if len(eb) else eb
    cases = eb.drop_duplicates(["kind", "suite", "family", "model", "task", "metric", "num_fewshot"]) if len(eb) else eb
    groups = [("ALL", "primary", prim, len(cases))]
    for (kind, suite), g in cases.groupby(["kind", "suite"], sort=True):
        keys = g[["kind", "suite", "family", "model", "task", "metric", "num_fewshot"]]
        p = prim.merge(keys, how="inner")
        groups.append((f"{kind} / {suite}", "primary", p, len(g)))
    for method, g in eb.groupby("method", sort=True):
        groups.append(("ALL", method, g, len(g)))
    rows = []
    for name, method, g, n in groups:
        done = g[g["pred_compute"].notna()]
        finite = done[np.isfinite(done["log10_error"].astype(float))]
        rows.append({"cases": name, "method": method, "n": int(n), "forecast": int(len(done)),
                     "finite": int(len(finite)), "coverage": _ratio(done["hit"].astype(bool).sum(), len(done)),
                     "median_abs_log10_error": round(float(finite["log10_error"].abs().median()), 4)
                     if len(finite) else None})
    return pd.DataFrame(rows, columns=["cases", "method", "n", "forecast", "finite", "coverage",
                                       "median_abs_log10_error"])


def crossing_metrics(summary: pd.DataFrame) -> dict:
    top = summary.iloc[0] if len(summary) else {}
    return {"cases": int(top["n"]) if len(summary) else 0,
            "coverage": None if not len(summary) or pd.isna(top["coverage"]) else float(top["coverage"]),
            "median_abs_log10_error": None if not len(summary) or pd.isna(top["median_abs_log10_error"])
            else float(top["median_abs_log10_error"])}
