"""Every curve of a scores table: its label, evidence and forecasts, where it crosses chance + margin,
and the report's trends section (:func:`markdown`).

:func:`analyse_table` labels and forecasts every final-checkpoint curve (:func:`analyse_curves`: the
shape tests of :mod:`pipeline.trends.shapes`, the forecast forms of :mod:`pipeline.trends.fit`,
fitted together) and locates the crossings (:mod:`pipeline.trends.emergence`);
:func:`analyse_checkpoints` labels one model's curve over its checkpoints.
"""
from __future__ import annotations

from dataclasses import fields

import numpy as np
import pandas as pd

from pipeline.parallel import bar, each
from pipeline.trends import emergence, fit, shapes
from pipeline.trends.curves import CURVE_KEY, LABELS, Prepared, final_rows, group_curves, plain, prepare, x_column
from pipeline.trends.settings import Settings, settings_key


def settings(cfg: dict) -> Settings:
    names = {f.name for f in fields(Settings)}
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k in names}
    return Settings(**kw)


# ----------------------------------------------------------------------------- labels and forecasts
def x_label(t: float) -> str:
    return f"{10 ** t:.3g}"


_LABELS: dict = {}


def label(curve: shapes.Curve, st: Settings, margin: float) -> shapes.Analysis:
    """:func:`pipeline.trends.shapes.classify` of a curve, once per distinct curve (the backtest labels the
    same final-checkpoint curves the stage does)."""
    key = (curve.t.tobytes(), curve.y.tobytes(), curve.s.tobytes(), curve.chance, curve.orient, curve.bounded,
           curve.n_items, curve.log, margin, settings_key(st))
    an = _LABELS.get(key)
    if an is None:
        if len(_LABELS) >= 4096:
            _LABELS.clear()
        an = _LABELS[key] = shapes.classify(curve, st, x_label=x_label, margin=margin)
    return an


# which way a curve's values move, by label (times its orientation): the side a crossing comes from
DIRECTION = {"positive": 1.0, "emergent": 1.0, "inverse": -1.0}


def analyse_curves(preps: list[Prepared], cfg: dict, st: Settings, targets: list | None = None,
                   levels: list | None = None, seed: int = 0) -> list[dict]:
    """Label, evidence and forecasts of prepared curves, the forecast forms of all of them fitted
    together (:func:`pipeline.trends.fit.forecast`).

    ``targets[k]``: extra scales (log10) to forecast curve k at (a backtest's held-out models).
    ``levels[k]``: (level, side) to find where curve k's forecast reaches ``level``, coming from
    below (side +1) or above (-1); only a curve whose label moves that way gets one (``cross_fit``:
    point, early and late end of its interval, log10 scale; inf beyond ``max_decades``).
    Each dict has label, evidence, form (the label's), forecast_form, extrapolation_rate,
    horizons (h, pred, lo, hi), targets (pred, lo, hi) and, for inverse curves, the turn test."""
    margin = cfg["emergence"]["margin"]
    horizons = np.asarray(cfg["horizons"], dtype=float)
    outs, items, owners = [], [], []
    for k, prep in enumerate(preps):
        out: dict = {"n_points": len(prep.y), "x_min": float(np.min(prep.x)), "x_max": float(np.max(prep.x))}
        outs.append(out)
        if prep.curve is None:
            out.update(label=prep.reason, evidence=prep.note, form="")
            continue
        c = prep.curve
        an = label(c, st, margin)
        out.update(label=an.label, form=an.form, evidence=an.evidence + (f"; {prep.note}" if prep.note else ""),
                   tau=an.tau)
        t_max = float(c.t.max())
        t_tg = np.asarray(targets[k] if targets is not None else [], dtype=float)
        cross = None
        if levels is not None and levels[k] is not None:
            cross, why = crossing_request(prep, an.label, *levels[k], t_max + cfg["emergence"]["max_decades"])
            if why:
                out["cross_why"] = why
        items.append(fit.Item(c, an.label, an, np.concatenate([t_max + np.log10(horizons), t_tg]), cross))
        owners.append((k, len(t_tg)))
        if an.label == "inverse":
            out["turn"] = shapes.turn_test(c, an, st, float(np.log10(horizons.max())), cfg["turn_crit"])
    results = fit.forecast(items, st, int(cfg["bootstrap"]), cfg["interval"], seed)
    nh = len(horizons)
    for (k, nt), res in zip(owners, results):
        out = outs[k]
        out["horizons"] = [(h, res.point[i], res.lo[i], res.hi[i]) for i, h in enumerate(horizons)]
        out["targets"] = [(res.point[nh + i], res.lo[nh + i], res.hi[nh + i]) for i in range(nt)]
        out.update(forecast_form=res.form, interval_forms="+".join(res.plausible), extrapolation_rate=res.rate,
                   forecast_note=res.note, inner_errors=" ".join(f"{n}={v:.3g}" for n, v in res.inner.items()))
        if res.cross is not None:
            out["cross_fit"] = res.cross
    return outs


def crossing_request(prep: Prepared, label: str, level: float, side: float, t_cap: float):
    """(level, side, t_cap) for :class:`pipeline.trends.fit.Item` when the curve's forecast should
    locate its crossing of ``level`` (it is emergent, or not yet past the level and its label moves
    toward it), else (None, why); why is '' where there is nothing to locate (already past it)."""
    if label != "emergent" and not np.max(side * prep.y) < side * level:
        return None, ""
    if DIRECTION.get(label, 0.0) * prep.curve.orient != side:
        return None, f"the {label} curve does not move toward {level:.3g}"
    return (level, side, t_cap), ""


# ----------------------------------------------------------------------------- the tables
def curve_row(key: dict, res: dict, x: str) -> dict:
    row = dict(key)
    row.update(x=x, label=res["label"], evidence=res.get("evidence", ""), n_points=res["n_points"],
               x_min=res["x_min"], x_max=res["x_max"], form=res.get("form", ""),
               forecast_form=res.get("forecast_form", ""), interval_forms=res.get("interval_forms", ""),
               extrapolation_rate=res.get("extrapolation_rate", np.nan),
               inner_errors=res.get("inner_errors", ""))
    for h, p, lo, hi in res.get("horizons", []):
        tag = f"{h:g}x"
        row[f"pred_{tag}"], row[f"lo_{tag}"], row[f"hi_{tag}"] = p, lo, hi
    tr = res.get("turn")
    if tr is not None:
        row["turn"] = tr.verdict
        row["turn_x"] = 10 ** tr.t if np.isfinite(tr.t) else np.nan
        row["turn_dchi2"] = tr.dchi2
    return row


def crossing_candidate(label: str, prep: Prepared, level: float | None) -> bool:
    """Curves whose crossing of chance + margin is estimated: emergent ones (crossed inside the
    data), and rising, flat or unlabelled ones still below the level."""
    if level is None:
        return False
    below = float(np.max(prep.y)) < level
    return label == "emergent" or (below and (label in ("positive", "flat") or label.startswith("insufficient")))


def curve_seed(seed: int, key: dict) -> int:
    """The seed of one curve's resamples: ``seed`` and the curve's key, not its place in the table, so a
    curve's crossing interval is the same whichever other curves are analysed with it."""
    import zlib

    return int(seed) + zlib.crc32(repr(sorted((k, str(v)) for k, v in key.items())).encode())


def analyse_table(table: pd.DataFrame, cfg: dict, seed: int | None = None, progress=None
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every final-checkpoint curve of ``table`` → (curves table, emergence table); ``progress``: a
    bar over the curves, advanced as each is prepared and as its crossings are found
    (:mod:`pipeline.parallel`)."""
    st = settings(cfg)
    x = cfg["x"]
    seed = cfg["seed"] if seed is None else seed
    table = plain(table)
    final = final_rows(table)
    curves = group_curves(final, CURVE_KEY)
    done = bar(progress, 2 * len(curves))
    preps = [prepare(key["task"], key["metric"], pts, x_column(x), cfg) for key, pts in each(curves, done)]
    levels = [emergence_level(p, cfg) for p in preps]
    results = analyse_curves(preps, cfg, st, levels=[(lv, 1.0) if lv is not None else None for lv in levels],
                             seed=seed)
    routes = emergence.Routes(table, final, cfg)
    rows, erows = [], []
    for i, ((key, pts), prep, res, level) in enumerate(each(zip(curves, preps, results, levels), done)):
        row = curve_row(key, res, x)
        if crossing_candidate(res["label"], prep, level):
            found, primary = routes.crossings(key, pts, prep.chance, level, res, x, curve_seed(seed, key))
            erows += found
            row["cross_level"] = level
            if primary is not None:
                for k in emergence.CROSS_COLUMNS:
                    row[k] = primary[k]
                row["cross_method"] = primary["method"]
            else:
                row["cross_method"] = "none: " + "; ".join(f"{e['method']}: {e['detail']}" for e in found)
        rows.append(row)
    done.close()
    return _order_columns(pd.DataFrame(rows), cfg), pd.DataFrame(erows)


def contradictions(row) -> list[str]:
    """Where a row of the curves table (trends.csv) disagrees with its own evidence: an emergent
    curve must have sat at chance, taken off (not a straight line) and crossed chance + margin
    somewhere finite; a U must say where it turns; every forecast lies inside its interval."""
    label, ev = row.get("label"), str(row.get("evidence") or "")
    out = []
    if label == "emergent":
        if "at chance up to" not in ev or "not emergent" in ev:
            out.append("emergent without points at chance and a rise above chance + margin")
        if row.get("form") == "linear":
            out.append("emergent with a linear form")
        cc = row.get("cross_compute")
        if cc is not None and not pd.isna(cc) and not np.isfinite(float(cc)):
            out.append("emergent with a crossing of inf")
    if label in ("u_shaped", "inverted_u") and "turn at x=" not in ev:
        out.append(f"{label} without a turn")
    for key in [k for k in row.keys() if str(k).startswith("pred_")]:
        tag = key[len("pred_"):]
        p, lo, hi = row.get(key), row.get(f"lo_{tag}"), row.get(f"hi_{tag}")
        if all(v is not None and not pd.isna(v) for v in (p, lo, hi)) and not lo <= p <= hi:
            out.append(f"{key} {p:.6g} outside [{lo:.6g}, {hi:.6g}]")
    return out


def emergence_level(prep: Prepared, cfg: dict) -> float | None:
    """chance + margin for a bounded accuracy with a known chance level, else None."""
    if prep.chance is None or not prep.bounded:
        return None
    return prep.chance + cfg["emergence"]["margin"]


def _order_columns(df: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    cols = CURVE_KEY + ["x", "label", "evidence", "n_points", "x_min", "x_max", "form", "forecast_form",
                        "interval_forms", "extrapolation_rate", "inner_errors"]
    for h in cfg["horizons"]:
        tag = f"{float(h):g}x"
        cols += [f"pred_{tag}", f"lo_{tag}", f"hi_{tag}"]
    cols += ["cross_level"] + emergence.CROSS_COLUMNS + ["cross_method", "turn", "turn_x", "turn_dchi2"]
    for c in cols:
        if c not in df.columns:
            df[c] = np.nan
    return df[cols]


def analyse_checkpoints(table: pd.DataFrame, cfg: dict, progress=None) -> pd.DataFrame:
    """Label one model's curve over its checkpoints (x = compute) for every (suite, model, task,
    metric, shots) with enough numbered steps at or past ``checkpoints.min_step``; ``progress``: a
    bar over those curves."""
    cc = cfg["checkpoints"]
    st = settings({**cfg, "refine_rounds": cc.get("refine_rounds", cfg.get("refine_rounds", 3))})
    out = []
    keys = CURVE_KEY[:2] + ["model"] + CURVE_KEY[2:]
    curves = checkpoint_curves(table, cfg)
    done = bar(progress, len(curves))
    for key, pts in each(curves, done):
        prep = prepare(key["task"], key["metric"], pts, "compute_flops", {**cfg, "min_scales": cc["min_points"]})
        row = dict(key, x="compute", n_points=len(pts), step_min=int(pts["step"].min()),
                   step_max=int(pts["step"].max()), x_min=float(pts["compute_flops"].min()),
                   x_max=float(pts["compute_flops"].max()))
        if prep.curve is None:
            row.update(label=prep.reason, evidence=prep.note)
        else:
            an = label(prep.curve, st, cfg["emergence"]["margin"])
            row.update(label=an.label, evidence=an.evidence + (f"; {prep.note}" if prep.note else ""))
        out.append(row)
    done.close()
    cols = keys + ["x", "label", "evidence", "n_points", "step_min", "step_max", "x_min", "x_max"]
    return pd.DataFrame(out, columns=cols)


def checkpoint_curves(table: pd.DataFrame, cfg: dict) -> list[tuple[dict, pd.DataFrame]]:
    """(key, rows) of every one-model curve over numbered steps >= checkpoints.min_step with at
    least checkpoints.min_points steps."""
    cc = cfg["checkpoints"]
    table = plain(table)
    rows = table[table["step"].notna() & (table["step"] >= cc["min_step"]) & (table["compute_flops"] > 0)]
    keys = CURVE_KEY[:2] + ["model"] + CURVE_KEY[2:]
    return [(k, g) for k, g in group_curves(rows, keys) if g["step"].nunique() >= cc["min_points"]]


# ----------------------------------------------------------------------------- the report's section
def markdown(curves: pd.DataFrame, em: pd.DataFrame, ck: pd.DataFrame, metrics: dict | None, cfg: dict) -> str:
    """The report's trends section."""
    lines = ["## Trends: shape of every curve over scale", ""]
    lab = curves["label"].where(curves["label"].isin(LABELS), curves["label"].str.split(":").str[0])
    counts = lab.value_counts().reindex(list(LABELS) + ["insufficient"]).dropna().astype(int)
    lines.append("Labels (final checkpoints, x = " + cfg["x"] + "): " +
                 ", ".join(f"{k} {v}" for k, v in counts.items()) + ".")
    reasons = curves.loc[~curves["label"].isin(LABELS), "label"].value_counts()
    if len(reasons):
        lines.append("Not labelled: " + "; ".join(f"{v} × {k}" for k, v in reasons.items()) + ".")
    lines.append("")
    if metrics:
        lines += [f"Backtest: label agreement small vs all models {pct(metrics['label_agreement'])} "
                  f"({metrics['label_agreement_curves']} curves, neither noisy); 90% interval coverage "
                  f"{pct(metrics['interval_coverage'])} ({metrics['heldout_points']} held-out points); "
                  f"MAE {metrics['mae_accuracy']} points on {metrics['accuracy_points']} accuracy values.", ""]
        cr = metrics.get("crossing") or {}
        if cr.get("cases"):
            lines += [f"Emergence point: {cr['cases']} curves that cross chance + margin inside their data, forecast "
                      f"from the points before the crossing: 90% interval coverage {pct(cr['coverage'])}, median "
                      f"|error| {cr['median_abs_log10_error']} decades of compute (trends_backtest_crossing.csv; the "
                      "label confusion is in trends_backtest_confusion.csv).", ""]
    tab = curves[curves["label"].isin(LABELS)]
    h = [f"{float(v):g}x" for v in cfg["horizons"]]
    head = "| suite | family | task | metric | shots | label | evidence | n | " + " | ".join(h) + " | crossing / turn |"
    lines += [head, "|" + "---|" * (9 + len(h))]
    for _, r in tab.iterrows():
        fc = [f"{r[f'pred_{t}']:.3g} [{r[f'lo_{t}']:.3g}, {r[f'hi_{t}']:.3g}]" for t in h]
        extra = ""
        if isinstance(r.get("turn"), str):
            extra = f"turn: {r['turn']}" + (f" at {r['turn_x']:.3g}" if pd.notna(r["turn_x"]) else "")
        if pd.notna(r.get("cross_compute")):
            extra = (f"{r['cross_level']:.3g} at C={r['cross_compute']:.3g} "
                     f"[{r['cross_compute_lo']:.3g}, {r['cross_compute_hi']:.3g}] ({r['cross_method']})")
        shots = "" if pd.isna(r["num_fewshot"]) else int(r["num_fewshot"])
        lines.append(f"| {r['suite']} | {r['family']} | {r['task']} | {r['metric']} | {shots} | {r['label']} | "
                     f"{r['evidence']} | {r['n_points']} | " + " | ".join(fc) + f" | {extra} |")
    lines.append("")
    show = em
    if len(em):
        keep = em["label"].isin(LABELS) | em["suite"].isin(cfg["emergence"].get("report_suites") or [])
        show = em[keep & em["cross_compute"].notna()] if "cross_compute" in em else em.iloc[:0]
    if len(show):
        lines += ["### Emergence: where accuracy crosses chance + margin", "",
                  f"Labelled curves, and the suites {cfg['emergence'].get('report_suites') or []}; every curve and "
                  "every method (with the reason where one does not apply) is in reports/trends_emergence.csv. "
                  "inf: not within 1000x the family's largest compute.", "",
                  "| suite | family | task | metric | shots | label | method | level | compute [90%] | params [90%] "
                  "| detail |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for _, r in show.iterrows():
            if pd.notna(r.get("cross_compute")):
                cc = f"{r['cross_compute']:.3g} [{r['cross_compute_lo']:.3g}, {r['cross_compute_hi']:.3g}]"
                pp = f"{r['cross_params']:.3g} [{r['cross_params_lo']:.3g}, {r['cross_params_hi']:.3g}]"
            else:
                cc = pp = "—"
            shots = "" if pd.isna(r["num_fewshot"]) else int(r["num_fewshot"])
            lines.append(f"| {r['suite']} | {r['family']} | {r['task']} | {r['metric']} | {shots} | {r['label']} | "
                         f"{r['method']} | {r['level']:.3g} | {cc} | {pp} | {r['detail']} |")
        lines.append("")
    if len(ck):
        lab = ck["label"].where(ck["label"].isin(LABELS), "insufficient")
        lines.append("Across checkpoints (one model over training, x = compute): " +
                     ", ".join(f"{k} {v}" for k, v in lab.value_counts().sort_index().items()) +
                     " (reports/trends_checkpoints.csv).")
        lines.append("")
    return "\n".join(lines)


def pct(v):
    return "n/a" if v is None else f"{100 * v:.1f}%"
