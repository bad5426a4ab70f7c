"""Which method the report shows for a (target, task), from held-out predictions of the target's own family.

The evidence for a forecast of family F in suite S on a task is every backtest prediction
(reports/backtest_predictions.csv) of a held-out model *of family F* on that task and metric,
pooled over every split (and fold) that holds F out: first those in suite S (same harness and
prompts); where no split holds F out in S, those in other suites, with that caveat; where none
holds F out anywhere, the default method, with that caveat.  Other families' held-out models
never count: a method that did well on Pythia says little about Cerebras-GPT.

Methods are compared pairwise on the held-out predictions both made (same split, fold, model,
checkpoint), so a method tested on more or easier splits gains nothing from it: a method wins a
pair when its MAE over the shared predictions is lower.  The chosen method has the most wins minus
losses; ties go to the lower MAE over its own predictions, then to the forecast's method order.
The MAE (accuracy points) and coverage shown beside a forecast are the chosen method's over all
its held-out predictions of the family (n of them).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline import scores
from pipeline.report.inputs import ReportConfig, ReportInput

UNIT = ["split", "fold", "model", "step"]  # one held-out prediction of one task
EVIDENCE_COLUMNS = ["target", "family", "suite", "task", "metric", "method", "evidence_suites", "splits", "n", "mae",
                    "coverage", "wins", "losses", "chosen"]
GLANCE_COLUMNS = ["target", "task", "metric", "predicted", "lower", "upper", "level", "method", "n", "mae", "coverage",
                  "extrapolation", "evidence", "flags"]
BOUND_TOL = 5e-4  # an interval end within this of 0 or 1 prints as 0 or 1 at 3 significant digits


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


def method_stats(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per method: n, MAE (points), coverage over its rows, and pairwise wins/losses on shared predictions."""
    scale = points(metric)
    rows = rows.assign(_err=(rows["predicted"] - rows["actual"]).abs() * scale,
                       _in=(rows["actual"] >= rows["lower"]) & (rows["actual"] <= rows["upper"]),
                       _unit=list(zip(*(rows[c].fillna(-1) if c == "step" else rows[c] for c in UNIT if c in rows))))
    methods = list(dict.fromkeys(rows["method"]))
    err = {m: rows[rows["method"] == m].groupby("_unit")["_err"].mean() for m in methods}
    out = []
    for m in methods:
        r = rows[rows["method"] == m]
        wins = losses = 0
        for o in methods:
            shared = err[m].index.intersection(err[o].index)
            if o == m or shared.empty:
                continue
            a, b = err[m].loc[shared].mean(), err[o].loc[shared].mean()
            wins += bool(a < b)
            losses += bool(a > b)
        out.append({"method": m, "splits": " ".join(dict.fromkeys(r["split"])), "n": int(len(r)),
                    "mae": float(r["_err"].mean()), "coverage": float(r["_in"].mean()), "wins": wins, "losses": losses})
    return pd.DataFrame(out, columns=["method", "splits", "n", "mae", "coverage", "wins", "losses"])


def pick(stats: pd.DataFrame, order: list[str]) -> str:
    """Most wins minus losses; then the lower MAE; then the earlier method in ``order``."""
    key = stats.assign(_s=stats["losses"] - stats["wins"], _o=stats["method"].map(order.index))
    return key.sort_values(["_s", "mae", "_o"], kind="mergesort")["method"].iloc[0]


def choose_methods(inp: ReportInput, cfg: ReportConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(chosen, evidence): per target and task the forecast row of the chosen method, with ``n``, ``mae``,
    ``coverage`` of its same-family held-out predictions and the ``rule`` text; and per (target, task,
    method) with evidence, the numbers the choice was made from (reports/method_evidence.csv)."""
    fc = inp.forecast[inp.forecast["predicted"].notna()]
    chosen, evidence = [], []
    for (target, task), g in fc.groupby(["target", "task"], sort=False):
        first = g.iloc[0]
        methods = list(dict.fromkeys(g["method"]))
        rows, where, caveat = family_heldout(inp, first["family"], first["suite"], task, first["metric"], methods)
        stats = method_stats(rows, first["metric"]) if len(rows) else None
        if stats is not None and len(stats):
            best = pick(stats, methods)
            s = stats.set_index("method").loc[best]
            rule = (f"best of {len(stats)} on held-out {first['family']} ({_count(s['wins'], 'win')}, "
                    f"{_count(s['losses'], 'loss')})" if len(stats) > 1
                    else f"the only method backtested on held-out {first['family']}")
            extra = {"n": int(s["n"]), "mae": s["mae"], "coverage": s["coverage"]}
            evidence.append(stats.assign(target=target, family=first["family"], suite=first["suite"], task=task,
                                         metric=first["metric"], evidence_suites=where,
                                         chosen=np.where(stats["method"] == best, "★", None)))
        else:
            default = cfg.default_method if cfg.default_method in methods else methods[0]
            best, rule, extra = default, "default method (no same-family backtest)", {"n": 0}
        rule = f"{rule}; {caveat}" if caveat else rule
        chosen.append(g[g["method"] == best].iloc[:1].assign(rule=rule, caveat=caveat, **extra))
    ch = pd.concat(chosen, ignore_index=True) if chosen else fc.iloc[:0].assign(rule="", caveat="", n=0)
    for c in ("mae", "coverage"):
        if c not in ch.columns:
            ch[c] = np.nan
    ev = pd.concat(evidence, ignore_index=True)[EVIDENCE_COLUMNS] if evidence else pd.DataFrame(columns=EVIDENCE_COLUMNS)
    return ch, ev


def _count(k: int, word: str) -> str:
    return f"{k} {word}" + ("" if k == 1 else "es" if word.endswith("s") else "s")


# ------------------------------------------------------------------------------------ at a glance
def largest_compute(table: pd.DataFrame, suite: str, family: str) -> float:
    """The family's largest training compute in the suite (NaN when the table has none)."""
    c = table.loc[(table["suite"] == suite) & (table["family"] == family), "compute_flops"]
    c = c[c > 0]
    return float(c.max()) if len(c) else float("nan")


def flags(row, ratio: float, cfg: ReportConfig) -> str | None:
    out = []
    if row["upper"] >= 1 - BOUND_TOL:
        out.append("interval reaches 1")
    if row["lower"] <= BOUND_TOL:
        out.append("interval reaches 0")
    if np.isfinite(ratio) and ratio > cfg.max_extrapolation:
        out.append(f"{ratio:.3g}× the largest {row['family']} model's compute")
    if row["caveat"]:
        out.append("no same-family backtest in this suite")
    elif 0 < row["n"] < cfg.min_evidence:
        out.append(f"thin evidence: {_count(int(row['n']), 'held-out prediction')}")
    return "; ".join(out) or None  # None: an empty cell in the CSV, printed as DASH


def glance_table(inp: ReportInput, chosen: pd.DataFrame, cfg: ReportConfig) -> pd.DataFrame:
    """Every target x task in one table (reports/at_a_glance.csv): forecast, interval, method, the method's
    same-family backtest MAE and coverage, how far the target is beyond the family's data, and flags."""
    if chosen.empty:
        return pd.DataFrame(columns=GLANCE_COLUMNS)
    big = {(s, f): largest_compute(inp.scores, s, f) for s, f in set(zip(chosen["suite"], chosen["family"]))}
    ratio = np.array([r["compute_flops"] / big[(r["suite"], r["family"])] for _, r in chosen.iterrows()])
    out = chosen.assign(extrapolation=ratio, evidence=chosen["rule"],
                        flags=[flags(r, x, cfg) for (_, r), x in zip(chosen.iterrows(), ratio)])
    if "level" not in out.columns:
        out["level"] = np.nan
    return out[GLANCE_COLUMNS].reset_index(drop=True)
