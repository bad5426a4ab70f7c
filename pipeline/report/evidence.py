"""The evidence beside each forecast: held-out predictions of the target's own family, every method's record
on them, the caveats and the flags.

**The method shown is the configured default** (``report.default_method``: auto; else the first
forecast method), never one picked on the held-out values it is then scored on: picking the best
of several methods on one family's few held-out models and printing its error is the winner's
curse (picked with one split left out and scored on it, the printed error roughly doubled).
auto itself was settled across some 780 other ladders (docs/ladders.md).

The evidence for a forecast of family F in suite S on a task is every backtest prediction
(reports/backtest_predictions.csv) of a held-out model *of family F* on that task and metric,
pooled over every split (and fold) that holds F out: first those in suite S (same harness and
prompts); where no split holds F out in S, those in other suites, with that caveat.  Other
families' held-out models never count.  Every method with such predictions gets its n, MAE
(accuracy points), coverage, median interval width and interval score (reports/method_evidence.csv);
the shown method's are printed beside the forecast with the reason in words, and the flags say
where that record, the interval or the target's place is a warning.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline import scores
from pipeline.report.inputs import ReportConfig, ReportInput

UNIT = ["split", "fold", "model", "step"]  # one held-out prediction of one task
STATS = ["n", "mae", "coverage", "median_width", "interval_score"]
EVIDENCE_COLUMNS = ["target", "family", "suite", "task", "metric", "method", "evidence_suites", "splits", *STATS,
                    "shown"]
GLANCE_COLUMNS = ["target", "task", "metric", "predicted", "lower", "upper", "level", "method", *STATS,
                  "extrapolation", "evidence", "flags", "note"]
BOUND_TOL = 5e-4  # an interval end within this of 0 or 1 prints as 0 or 1 at 3 significant digits
BASELINES = ("line_final", "line_frontier")  # the straight lines a forecaster must beat (docs/ladders.md)
NOT_FORECASTS = ("link",)  # backtest diagnostics that read the held-out model's own loss: no evidence
WIDE = 0.9  # an interval spanning this share of [chance, 1] says little
MIN_PAIRED = 3  # shared held-out predictions needed to say a method missed its backtest


def points(metric: str) -> float:
    """Errors of accuracies are reported in points (x100), of other metrics in their own units."""
    return 100.0 if scores.metric_kind(metric) == "accuracy" else 1.0


# ------------------------------------------------------------------------------ suites of predictions
def prediction_suites(inp: ReportInput) -> pd.DataFrame:
    """(row, suite) pairs: backtest_predictions.csv rows and the suites they belong to.

    The backtest writes a ``suite`` column; older prediction files lack it, and a row then belongs
    to every suite with a scores row of the same model, task and metric (and step, where both have
    one) whose value equals the prediction's actual as written (6 significant digits).
    """
    pr = inp.predictions
    if "suite" in pr.columns:
        return pd.DataFrame({"row": range(len(pr)), "suite": pr["suite"].to_numpy()})
    sc = inp.scores[["suite", "model", "step", "task", "metric", "value"]]
    keys = ["model", "task", "metric"]
    left = pr[keys + ["step", "actual"]].assign(row=range(len(pr)))
    left["step"] = pd.to_numeric(left["step"], errors="coerce")
    m = left.merge(sc.assign(step=sc["step"].astype("float64")), on=keys, how="inner", suffixes=("", "_s"))
    same_step = m["step"].isna() | m["step_s"].isna() | (m["step"] == m["step_s"])
    rounded = np.array([float(f"{v:.6g}") for v in m["value"].to_numpy(float)])
    m = m[same_step & (np.isclose(m["actual"], rounded, rtol=1e-12, atol=0) | (m["actual"] == m["value"]))]
    return m[["row", "suite"]].drop_duplicates().reset_index(drop=True)


def in_suite(inp: ReportInput, suite: str) -> pd.Series:
    """Whether each backtest prediction belongs to ``suite``."""
    if inp.pred_suites is None:
        inp.pred_suites = prediction_suites(inp)
    rows = set(inp.pred_suites.loc[inp.pred_suites["suite"] == suite, "row"])
    return pd.Series([i in rows for i in range(len(inp.predictions))], index=inp.predictions.index)


def _suites_of(inp: ReportInput, rows: pd.DataFrame) -> list[str]:
    ps = inp.pred_suites
    pos = inp.predictions.index.get_indexer(rows.index)
    return sorted(set(ps.loc[ps["row"].isin(pos), "suite"].astype(str)))


# ------------------------------------------------------------------------------------ evidence
def family_heldout(inp: ReportInput, family: str, suite: str, task: str, metric: str,
                   methods: list[str]) -> tuple[pd.DataFrame, str, str]:
    """Held-out predictions of ``family`` on (task, metric) by ``methods``: (rows, where, caveat).

    ``where`` names the suites the rows come from; ``caveat`` is empty when they come from
    ``suite`` itself, else says that no backtest holds the family out there.
    """
    pr = inp.predictions
    if pr is None or "family" not in pr.columns:
        return pr.iloc[:0] if pr is not None else pd.DataFrame(columns=UNIT), "", "no backtest predictions"
    rows = pr[(pr["family"] == family) & (pr["task"] == task) & (pr["metric"] == metric) & pr["method"].isin(methods)
              & np.isfinite(pr["predicted"].astype(float)) & np.isfinite(pr["actual"].astype(float))]
    here = rows[in_suite(inp, suite).loc[rows.index]]
    if len(here):
        return here, suite, ""
    if len(rows):
        where = ", ".join(_suites_of(inp, rows))
        return rows, where, f"no backtest holds out {family} in {suite}; evidence from {family} held out in {where}"
    return rows, "", f"no backtest holds out {family} in this suite or another"



def method_stats(rows: pd.DataFrame, metric: str, level: float = 0.9) -> pd.DataFrame:
    """Per method: n, MAE, coverage, median interval width and interval score over its rows (errors,
    widths and scores in points).  The interval score (Gneiting & Raftery 2007) is the width plus
    2/alpha times how far the actual falls outside: lower is better, and too narrow an interval pays."""
    scale, alpha = points(metric), 1.0 - float(level)
    y, lo, hi = (rows[c].astype(float) for c in ("actual", "lower", "upper"))
    rows = rows.assign(_err=(rows["predicted"] - y).abs() * scale, _in=(y >= lo) & (y <= hi),
                       _width=(hi - lo) * scale,
                       _score=((hi - lo) + 2 / alpha * ((lo - y).clip(lower=0) + (y - hi).clip(lower=0))) * scale)
    out = []
    for m in dict.fromkeys(rows["method"]):
        r = rows[rows["method"] == m]
        out.append({"method": m, "splits": " ".join(dict.fromkeys(r["split"])), "n": int(len(r)),
                    "mae": float(r["_err"].mean()), "coverage": float(r["_in"].mean()),
                    "median_width": float(r["_width"].median()), "interval_score": float(r["_score"].mean())})
    return pd.DataFrame(out, columns=["method", "splits", *STATS])


def missed_backtest(rows: pd.DataFrame, method: str, metric: str) -> str:
    """'missed its backtest: ...' where ``method``'s MAE exceeds the better straight line's
    (:data:`BASELINES`) on the held-out predictions both made by more than the noise: twice the
    standard error of the paired difference, and at least the actuals' own mean standard error."""
    scale = points(metric)
    rows = rows.assign(_err=(rows["predicted"] - rows["actual"]).abs() * scale,
                       _unit=list(zip(*(rows[c].fillna(-1) if c == "step" else rows[c] for c in UNIT if c in rows))))
    err = {m: g.groupby("_unit")["_err"].mean() for m, g in rows.groupby("method")}
    if method not in err or method in BASELINES:
        return ""
    best = None
    for b in (b for b in BASELINES if b in err):
        shared = err[method].index.intersection(err[b].index)
        if len(shared) >= MIN_PAIRED and (best is None or err[b].loc[shared].mean() < best[2]):
            best = (b, shared, float(err[b].loc[shared].mean()))
    if best is None:
        return ""
    b, shared, base = best
    d = (err[method].loc[shared] - err[b].loc[shared]).to_numpy(float)
    se = rows.loc[rows["method"] == b, "stderr"].astype(float) * scale if "stderr" in rows else pd.Series(dtype=float)
    noise = max(2 * float(d.std(ddof=1)) / np.sqrt(len(d)), float(se.mean()) if se.notna().any() else 0.0)
    if d.mean() <= noise:
        return ""
    return (f"missed its backtest: MAE {base + d.mean():.3g} points against {b}'s {base:.3g} on the same {len(d)} "
            f"held-out predictions (more than the noise, {noise:.2g})")


def shown_method(g: pd.DataFrame, cfg: ReportConfig) -> tuple[str, str]:
    """(the method shown for one target and task, why): the configured default where it has a forecast,
    else the first method with one."""
    ok = g[g["predicted"].notna()]
    methods = list(dict.fromkeys(ok["method"]))
    default = cfg.default_method
    if default in methods:
        return default, _why(default, cfg, "the configured default (report.default_method)")
    first = methods[0]
    if default:
        failed = g.loc[g["method"] == default, "note"] if "note" in g.columns else pd.Series(dtype=object)
        why = f" ({failed.iloc[0]})" if len(failed) and isinstance(failed.iloc[0], str) and failed.iloc[0] else ""
        return first, f"{first}: the first forecast method, since the default {default} has no forecast here{why}"
    return first, _why(first, cfg, "the first forecast method")


def _why(method: str, cfg: ReportConfig, fallback: str) -> str:
    if method == "auto":
        taught = f"{cfg.calibration_ladders} ladders" if cfg.calibration_ladders else "other ladders"
        return f"auto: the candidates weighted by what {taught} taught (docs/ladders.md)"
    return f"{method}: {fallback}"


def choose_methods(inp: ReportInput, cfg: ReportConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(shown, evidence): per target and task the forecast row of the method shown (:func:`shown_method`)
    with its ``n``, ``mae``, ``coverage``, ``median_width``, ``interval_score`` on the family's held-out
    predictions, ``rule`` (the reason in words), ``caveat`` (where the evidence comes from another suite)
    and ``missed``; and per (target, task, method) with held-out predictions, those numbers
    (reports/method_evidence.csv, the shown method starred).  Nothing is chosen on them."""
    fc, pr = inp.forecast, inp.predictions
    methods = [m for m in dict.fromkeys(pr["method"]) if m not in NOT_FORECASTS] \
        if pr is not None and "method" in pr.columns else []
    shown, evidence = [], []
    for (target, task), g in fc.groupby(["target", "task"], sort=False):
        if g["predicted"].isna().all():
            continue
        first = g.iloc[0]
        method, rule = shown_method(g, cfg)
        level = float(cfg.backtest_level if cfg.backtest_level is not None else first.get("level", 0.9))
        rows, where, caveat = family_heldout(inp, first["family"], first["suite"], task, first["metric"], methods)
        stats = method_stats(rows, first["metric"], level) if len(rows) else pd.DataFrame(columns=["method", *STATS])
        where = [where] * len(stats)
        if method not in set(stats["method"]) and not caveat:  # the shown method held out in another suite only
            own, elsewhere, caveat = family_heldout(inp, first["family"], first["suite"], task, first["metric"], [method])
            if len(own):
                rows = pd.concat([rows, own])
                stats = pd.concat([stats, method_stats(own, first["metric"], level)], ignore_index=True)
                where += [elsewhere]
                caveat = (f"no backtest holds out {first['family']} in {first['suite']} with {method}; its record is "
                          f"from {first['family']} held out in {elsewhere}")
        extra = {"n": 0, "missed": ""}
        if method in set(stats["method"]):
            s = stats.set_index("method").loc[method]
            extra = {**{k: s[k] for k in STATS}, "n": int(s["n"]), "missed": missed_backtest(rows, method, first["metric"])}
            rule += (f"; on this family's held-out models it erred {s['mae']:.3g} points (n={int(s['n'])}; every "
                     "method's record in method_evidence.csv)")
        else:
            rule += "; no backtest has scored it on this family's held-out models"
        if len(stats):
            evidence.append(stats.assign(target=target, family=first["family"], suite=first["suite"], task=task,
                                         metric=first["metric"], evidence_suites=where,
                                         shown=np.where(stats["method"] == method, "★", None)))
        rule = f"{rule}; {caveat}" if caveat else rule
        shown.append(g[g["method"] == method].iloc[:1].assign(rule=rule, caveat=caveat, **extra))
    ch = pd.concat(shown, ignore_index=True) if shown else fc.iloc[:0].assign(rule="", caveat="", n=0, missed="")
    for c in STATS[1:]:
        if c not in ch.columns:
            ch[c] = np.nan
    ev = pd.concat(evidence, ignore_index=True)[EVIDENCE_COLUMNS] if evidence else pd.DataFrame(columns=EVIDENCE_COLUMNS)
    return ch, ev


# ------------------------------------------------------------------------------------ at a glance
def largest_compute(table: pd.DataFrame, suite: str, family: str) -> float:
    """The family's largest training compute in the suite (NaN when the table has none)."""
    c = table.loc[(table["suite"] == suite) & (table["family"] == family), "compute_flops"]
    c = c[c > 0]
    return float(c.max()) if len(c) else float("nan")


def _text(v) -> str:
    return v if isinstance(v, str) else ""


def chance_of(inp: ReportInput, task: str, metric: str) -> float:
    """The task's random-guess level (0 where neither the table nor the built-in list has one)."""
    if scores.metric_kind(metric) != "accuracy":
        return 0.0
    try:
        return float(scores.chance_level(task, metric, inp.scores))
    except scores.ScoresError:
        return 0.0


INSIDE_BUT = "inside the training runs' compute, but"  # forecast.csv's words for a target beyond the runs' N or D


def _outside_the_runs(row) -> bool:
    """A target inside the ladder's compute but beyond its runs' N or D (the forecast's words say
    which: pipeline.forecasting.targets.outside_the_runs): not an interpolation."""
    return _text(row.get("extrapolation_text")).startswith(INSIDE_BUT)


def note(row, ratio: float) -> str:
    """The caveats of a forecast (at_a_glance.csv ``note``): the forecast's own (forecast.csv ``caveats``:
    at chance, no rise, no task losses) and where the target lies: interpolation, or extrapolation x."""
    parts = [_text(row.get("caveats"))]
    if _outside_the_runs(row):
        parts.append(_text(row.get("extrapolation_text")))
    elif np.isfinite(ratio):
        parts.append("interpolation: inside the ladder's compute" if ratio <= 1 else
                     f"extrapolation: {ratio:.3g}× the family's largest compute")
    return "; ".join(p for p in parts if p)


def flags(row, ratio: float, cfg: ReportConfig, chance: float = 0.0, level: float | None = None) -> str | None:
    """Where the forecast or its evidence is a warning (None where nothing is)."""
    out = []
    if row["upper"] >= 1 - BOUND_TOL:
        out.append("interval reaches 1")
    if row["lower"] <= BOUND_TOL:
        out.append("interval reaches 0")
    beyond = "beyond what the calibration ladders support" in _text(row.get("extrapolation_text"))
    far = np.isfinite(ratio) and ratio > cfg.max_extrapolation
    share = (row["upper"] - row["lower"]) / max(1.0 - chance, 1e-9)
    if share >= WIDE:
        why = ("the ladder has not risen from chance, so nothing places the rise"
               if any(w in _text(row.get("caveats")) for w in ("at chance", "no rise")) else
               "the target lies beyond what the calibration ladders support" if beyond else
               "the target is far beyond the ladder" if far else "the method's errors at this distance are this wide")
        out.append(f"interval spans {100 * share:.0f}% of [chance, 1]: {why}")
    if far:
        out.append(f"{ratio:.3g}× the largest {row['family']} model's compute")
    if _outside_the_runs(row):
        out.append(_text(row.get("extrapolation_text")))
    elif np.isfinite(ratio) and ratio <= 1:
        out.append("interpolation: the target lies inside the ladder")
    out += [c for c in _text(row.get("caveats")).split("; ") if c]  # at chance, no rise, no task losses
    if beyond:
        out.append("extrapolation beyond what the calibration ladders support: the interval extrapolates their errors")
    if row["caveat"]:
        mine = f" with {row['method']};" in row["caveat"]
        out.append(f"no same-family backtest of {row['method']} in this suite" if mine else
                   "no same-family backtest in this suite")
    elif row["n"] == 0:
        out.append(f"no held-out record of {row['method']} on this family")
    elif row["n"] < cfg.min_evidence:
        out.append(f"thin evidence: {_count(int(row['n']), 'held-out prediction')}")
    lvl = float(level if level is not None else row.get("level", 0.9))
    if row["n"] > 0 and np.isfinite(row["coverage"]):
        floor = lvl - 2 * np.sqrt(lvl * (1 - lvl) / row["n"])
        if row["coverage"] < floor:
            out.append(f"coverage {row['coverage']:.2f} on {int(row['n'])} held-out predictions, below the stated "
                       f"{lvl:.2g} by more than its binomial noise (< {floor:.2f})")
    if _text(row.get("missed")):
        out.append(row["missed"])
    return "; ".join(out) or None  # None: an empty cell in the CSV, printed as DASH


def _count(k: int, word: str) -> str:
    return f"{k} {word}" + ("" if k == 1 else "es" if word.endswith("s") else "s")


def glance_table(inp: ReportInput, chosen: pd.DataFrame, cfg: ReportConfig) -> pd.DataFrame:
    """Every target x task in one table (reports/at_a_glance.csv): forecast, interval, the method shown and its
    same-family backtest record, how far the target is beyond the family's data, the reason, flags and caveats."""
    if chosen.empty:
        return pd.DataFrame(columns=GLANCE_COLUMNS)
    big = {(s, f): largest_compute(inp.scores, s, f) for s, f in set(zip(chosen["suite"], chosen["family"]))}
    ratio = np.array([r["compute_flops"] / big[(r["suite"], r["family"])] for _, r in chosen.iterrows()])
    rows = chosen.assign(extrapolation_text=chosen["extrapolation"] if "extrapolation" in chosen.columns else "")
    out = chosen.assign(
        extrapolation=ratio, evidence=chosen["rule"],
        flags=[flags(r, x, cfg, chance_of(inp, r["task"], r["metric"]), cfg.backtest_level)
               for (_, r), x in zip(rows.iterrows(), ratio)],
        note=[note(r, x) or None for (_, r), x in zip(rows.iterrows(), ratio)])
    if "level" not in out.columns:
        out["level"] = np.nan
    return out[GLANCE_COLUMNS].reset_index(drop=True)
