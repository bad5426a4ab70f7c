"""The report's sections, in page order (:data:`SECTIONS`); each is ``section(page, rep)``.

A section reads only ``rep`` (the inputs, the display knobs and the method choice made once in
build), writes any table it computes as a CSV under ``rep.out`` and prints nothing that is not a
cell of a CSV it names.  A section whose input is absent says so in one note.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import scores
from pipeline.report import evidence as ev
from pipeline.report import figures
from pipeline.report.family_skills import section_family_skills
from pipeline.report.figures import has_stderr, shots_mask
from pipeline.report.inputs import ReportConfig, ReportInput
from pipeline.report.page import Page, display, fmt, missing, slug
from pipeline.report.reach import section_reach

# trend labels the report flags (pipeline/trends/curves.py LABELS: positive, emergent, inverse, u_shaped, inverted_u, flat, noisy)
FLAGGED = ("emergent", "inverse", "u_shaped", "inverted_u")
TREND_KEY = ["suite", "family", "task", "metric", "num_fewshot"]


@dataclass
class Report:
    inp: ReportInput
    cfg: ReportConfig
    out: Path
    chosen: pd.DataFrame  # per target x task: the shown method's forecast row (evidence.choose_methods)
    evidence: pd.DataFrame  # per target x task x method: the same-family backtest numbers behind it

    @property
    def plots(self) -> Path:
        return self.out / "plots"

    @cached_property
    def glance(self) -> pd.DataFrame:
        """Every target x task at a glance (:func:`pipeline.report.evidence.glance_table`): the answer
        and the table print the same one."""
        return ev.glance_table(self.inp, self.chosen, self.cfg)


def value_unit(metrics) -> str:
    """The unit of predicted values (and interval ends) of these metrics: accuracies as fractions."""
    kinds = {scores.metric_kind(str(m)) for m in metrics if isinstance(m, str) and m}
    return "accuracy, 0–1" if kinds <= {"accuracy"} else "the metric's units; accuracy 0–1"


def error_unit(metrics) -> str:
    """The unit of errors of predictions of these metrics: accuracy points (x100)."""
    kinds = {scores.metric_kind(str(m)) for m in metrics if isinstance(m, str) and m}
    return "points" if kinds <= {"accuracy"} else "accuracy points, else the metric's units"


def coverage_unit(level=None) -> str:
    pct = f" {100 * float(level):.3g}%" if level is not None and np.isfinite(float(level)) else ""
    return f"share of held-out values in the{pct} interval"


def _backtest_level(rep: Report):
    """The level of the backtests' intervals (their coverage's): configured, else the forecasts'."""
    if rep.cfg.backtest_level is not None:
        return rep.cfg.backtest_level
    fc = rep.inp.forecast
    return fc["level"].iloc[0] if fc is not None and "level" in fc.columns and len(fc) else None


def _bars(rows: pd.DataFrame) -> str:
    return "±1 stderr bars" if has_stderr(rows) else "no error bars (this suite publishes no standard errors)"


# ------------------------------------------------------------------------------------ answers
def answer(rows: pd.DataFrame) -> str:
    """One target's forecasts in one sentence, from its at_a_glance.csv rows: 'T: arc_easy 0.72 (90%:
    0.68–0.75) by two_step, which erred 2.0 points on this family's held-out models (n=14); ...'."""
    parts, where = [], "on this family's held-out models"
    for _, r in rows.iterrows():
        level = f"{100 * float(r['level']):.3g}%" if pd.notna(r["level"]) else "interval"
        head = f"{r['task']} {fmt(r['predicted'])} ({level}: {fmt(r['lower'])}–{fmt(r['upper'])}) by {r['method']}"
        if pd.notna(r["mae"]) and r["n"] > 0:
            err = "points" if error_unit([r["metric"]]) == "points" else "(metric units)"
            part = f"{head}, which erred {fmt(r['mae'])} {err} {where} (n={fmt(r['n'])})"
        else:
            part = f"{head}, which no backtest has scored {where}"
        note = r.get("note")
        parts.append(part + (f" [{note}]" if isinstance(note, str) and note else ""))
        where = "on them"  # said once per sentence
    return f"{rows['target'].iloc[0]}: " + "; ".join(parts) + "."


def section_answers(page: Page, rep: Report) -> None:
    """The answer per target, before the evidence: forecast, interval, method and its held-out error."""
    if rep.inp.forecast is None or rep.chosen.empty:
        return
    glance = rep.glance
    page.heading(2, "The answer", "answer")
    page.bullets([answer(g) for _, g in glance.groupby("target", sort=False)])
    page.para("Per target and task: the forecast, its prediction interval, the method (the configured default, "
              "never one picked on the numbers printed beside it) and that method's mean absolute error on the "
              "family's held-out models (accuracy points = accuracy x 100); in brackets the caveats (at chance, no "
              "rise, no task losses, interpolation or extrapolation ×). The numbers are cells of at_a_glance.csv; "
              "the table below has the evidence and flags.")


# ------------------------------------------------------------------------------------ at a glance
def section_glance(page: Page, rep: Report) -> None:
    page.heading(2, "At a glance", "glance")
    if rep.inp.forecast is None:
        page.note("reports/forecast.csv is missing: run the forecast stage (dvc repro).")
        return
    glance = rep.glance
    scores.write_csv(glance, rep.out / "at_a_glance.csv")
    scores.write_csv(rep.evidence, rep.out / "method_evidence.csv")
    level = fmt(glance["level"].iloc[0]) if len(glance) else "0.9"
    page.para(f"Every target and task: the forecast with its {level} prediction interval by the method shown, the "
              "configured default (report.default_method). Nothing is chosen on the held-out numbers beside it: "
              "picking the best of several methods on one family's few held-out models and printing its error is "
              "the winner's curse. n, mae (accuracy points), coverage (share of held-out values inside the "
              "interval), median_width (points) and interval_score (points: the width plus 2/alpha times any miss; "
              "lower is better) are the shown method's over its n held-out predictions of the target's family "
              "(every backtest split that holds the family out, pooled; the target's suite first); every other "
              "method's are below and in method_evidence.csv. extrapolation: the target's compute over the "
              "family's largest model's. Flagged (highlighted): an interval that reaches 0 or 1 or spans "
              f"{fmt(100 * ev.WIDE)}% of [chance, 1] (with why), extrapolation beyond "
              f"{fmt(rep.cfg.max_extrapolation)}× the family's largest compute or beyond what the calibration ladders "
              "support, a target inside the ladder (interpolation) or inside its compute but past its runs' N or D, "
              "no same-family backtest in the target's suite, "
              f"fewer than {rep.cfg.min_evidence} held-out predictions, coverage below the stated level by more than "
              "its binomial noise (below level - 2 sqrt(level (1 - level) / n)), and a method that missed its own "
              "backtest (its MAE above the better straight line's, line_final or line_frontier, on the same "
              "held-out predictions by more than the noise), and the forecast's caveats (at chance, no rise, no task "
              "losses); at_a_glance.csv's note has every caveat of the line.", cls="lead")
    shown = ["target", "task", "predicted", "lower", "upper", "method", "mae", "coverage", "n", "extrapolation",
             "flags", "evidence"]  # key columns first, long text last; the CSV also has metric, level, median_width
    # and interval_score (every method's in the table below) and note (its caveats are in flags and extrapolation)
    value = value_unit(glance["metric"])
    err = error_unit(glance["metric"])
    units = {"predicted": value, "lower": value, "upper": value, "mae": err,
             "coverage": coverage_unit(_backtest_level(rep)), "n": "held-out predictions",
             "extrapolation": "× the family's largest compute"}
    page.table(display(glance, shown), "at_a_glance.csv", "Forecasts by the method shown, with its "
               "same-family backtest record", flag="flags", units=units, wrap=True)
    if len(rep.evidence):
        with page.details(f"Every method's record on each family's held-out models ({len(rep.evidence)} rows)"):
            page.table(display(rep.evidence, ["target", "task", "method", "n", "mae", "coverage", "median_width",
                                              "interval_score", "shown", "evidence_suites", "splits"]),
                       "method_evidence.csv", "Held-out predictions of the target's family per task and method "
                       "(★ the method shown; evidence only, nothing is chosen on it)", group="target",
                       units={"n": "held-out predictions", "mae": err, "median_width": err, "interval_score": err,
                              "coverage": coverage_unit(_backtest_level(rep))})


# ------------------------------------------------------------------------------------ targets
def _heldout_points(rep: Report, target: str) -> tuple[pd.DataFrame | None, str]:
    """Held-out models of the target's family in its suite, with the shown method's predictions, from
    the split that holds most of them out (one split, so each model is drawn once); (rows, split)."""
    ch = rep.chosen[(rep.chosen["target"] == target) & (rep.chosen["caveat"] == "")]
    parts = []
    for _, c in ch.iterrows():
        rows, _, _ = ev.family_heldout(rep.inp, c["family"], c["suite"], c["task"], c["metric"], [c["method"]])
        parts.append(rows)
    held = pd.concat(parts) if parts else pd.DataFrame()
    if held.empty:
        return None, ""
    split = held["split"].value_counts(sort=True).index[0]
    return held[held["split"] == split], split


def section_targets(page: Page, rep: Report) -> None:
    page.heading(2, "Forecasts at the target sizes", "targets")
    fc = rep.inp.forecast
    if fc is None:
        page.note("reports/forecast.csv is missing: run the forecast stage (dvc repro).")
        return
    level = fmt(fc["level"].iloc[0]) if "level" in fc.columns else "0.9"
    page.para(f"Every law is fitted on all checkpoints of the target's family in its suite (methods that need other "
              f"families see the whole suite) and extrapolated to the target's N, D and C = 6ND; lower and upper "
              f"bound a {level} prediction interval (auto and calibrated methods: conformal intervals learned on other "
              f"ladders' errors; other methods: bootstrap over training models plus benchmark noise). The method "
              f"shown per task is the one of 'At a glance'; every method's forecast and its backtest record are "
              f"under 'All methods'.")
    overview = fc.drop_duplicates("target")
    page.table(display(overview, ["target", "family", "suite", "params", "params_non_embedding", "tokens",
                                  "compute_flops"]),
               "forecast.csv", "Targets: compute_flops = 6 x params x tokens; params_non_embedding extrapolated from "
               "the family's published counts where it has them")
    for target in overview["target"]:
        page.heading(3, target, "target-" + slug(target))
        sub = fc[fc["target"] == target]
        first = sub.iloc[0]
        if sub["predicted"].isna().all():  # nothing to draw: every method failed
            page.note(f"No method forecast {target}; why, per task and method, under 'All methods' below.")
        else:
            _target_figure(page, rep, target, first)
        _two_step_figures(page, rep, target)
        with page.details(f"All methods for {target}"):
            value = value_unit(sub["metric"])
            page.table(display(sub, ["task", "method", "predicted", "lower", "upper", "caveats"]), "forecast.csv",
                       units={"predicted": value, "lower": value, "upper": value})
            evd = rep.evidence[rep.evidence["target"] == target]
            if len(evd):
                err = error_unit(evd["metric"])
                page.table(display(evd, ["task", "method", "evidence_suites", "splits", "n", "mae", "coverage",
                                         "median_width", "interval_score", "shown"]), "method_evidence.csv",
                           f"Held-out {first['family']} predictions per task and method (★ the method shown; "
                           "evidence only, nothing is chosen on it)",
                           units={"n": "held-out predictions", "mae": err, "median_width": err, "interval_score": err,
                                  "coverage": coverage_unit(_backtest_level(rep))})
            for _, r in sub[sub["predicted"].isna()].iterrows():
                page.note(f"{r['task']} / {r['method']}: not forecast ({r.get('note', '')})")


def _target_figure(page: Page, rep: Report, target: str, first) -> None:
    """The target's forecast curves, one panel per task (:func:`pipeline.report.figures.plot_target`);
    ``first``: one of its forecast rows (its family and suite)."""
    chosen = rep.chosen[rep.chosen["target"] == target]
    fam = rep.inp.scores[(rep.inp.scores["suite"] == first["suite"]) & (rep.inp.scores["family"] == first["family"])]
    held, split = _heldout_points(rep, target)
    page.figure(rep.plots / f"target-{slug(target)}.png", figures.plot_target, (rep.inp, target, chosen, held),
                f"forecast curves for {target}",
                f"Per task: the family's data (final checkpoints, {_bars(fam)}; faint dots: intermediate "
                "checkpoints), each method's fitted curve (thick: the method shown, with its interval band beyond the "
                "family's largest run) and "
                "the forecasts at the target compute (dashed line; diamonds with intervals)"
                + (f"; held-out {first['family']} models of backtest split {split} (stars) with the shown "
                   f"method's predictions from that split (open squares)." if split else
                   f"; no backtest holds out {first['family']} in {first['suite']}, so no held-out points "
                   "are drawn."))


def _two_step_figures(page: Page, rep: Report, target: str) -> None:
    """The target's two-step forecasts: step-1 loss fit and step-2 links (two_step_diagnostics.csv)."""
    diag = rep.inp.two_step
    mine = diag[diag["target"] == target] if diag is not None and len(diag) else None
    if mine is None or mine.empty:
        return
    tasks = ", ".join(dict.fromkeys(mine["task"]))
    page.figure(rep.plots / f"two_step-{slug(target)}.png", figures.plot_two_step, (mine.reset_index(drop=True),),
                f"two-step fits for {target}",
                f"How the two-step forecasts of {target} were made ({tasks}). Step 1: the loss against N, each "
                "checkpoint coloured by its tokens D (faint grey: checkpoints the law leaves out, a run's first "
                "tokens), the fitted loss law along the target's recipe and the target's predicted loss (star); "
                "one panel, since every task's forecast goes through the same loss fit. Step 2, per task: the "
                "accuracy against that loss (lower loss to the right), coloured by N, the fitted link and the "
                "target (star: its predicted loss and the forecast). Points and curves: two_step_diagnostics.csv.")


# ------------------------------------------------------------------------------------ backtests
def best_marks(df: pd.DataFrame, by: list[str], value: str = "mae") -> np.ndarray:
    """'★' on the row with the lowest ``value`` within each ``by`` group (first on ties), among the
    rows scored on the group's most predictions (``n``): a method that failed on some is not best
    on fewer."""
    marks = np.array([""] * len(df), dtype=object)
    ok = df[value].notna()
    if "n" in df.columns:
        n = pd.to_numeric(df["n"], errors="coerce")
        ok &= n.eq(n.where(ok).groupby([df[b] for b in by], dropna=False, sort=False).transform("max"))
    if ok.any():
        idx = df[ok].reset_index(drop=True).groupby(by, dropna=False, sort=False)[value].idxmin()
        pos = np.flatnonzero(ok.to_numpy())[idx.to_numpy()]
        marks[pos] = "★"
    return marks


def section_methods(page: Page, rep: Report) -> None:
    page.heading(2, "Method comparison (backtests)", "methods")
    bt, pr = rep.inp.backtest, rep.inp.predictions
    if bt is None:
        page.note("reports/backtest.csv is missing: run the backtest stage (dvc repro).")
        return
    declared = "params.yaml backtest.splits" if rep.cfg.pipeline_outputs else "listed below"
    metrics = (" MAE and coverage per split and method are also the DVC metrics (reports/metrics/)."
               if rep.cfg.pipeline_outputs else "")
    page.para("Each split fits every method on smaller (or earlier, or other-family) models and predicts held-out "
              f"ones declared in advance ({declared}). MAE and max error are in accuracy points "
              "(x100) over all held-out models of the split, whatever their family; coverage is the share of "
              "held-out values inside the prediction interval; spearman ranks predicted against actual; noise is the "
              "held-out values' own noise floor. ★ marks the lowest MAE per split (summary) or per split and task "
              f"(details).{metrics}")
    page.bullets([f"{name}: {desc}" for name, desc in rep.cfg.split_descriptions.items() if name in set(bt["split"])])
    allrows = bt[bt["task"] == "ALL"].reset_index(drop=True)
    cells = display(allrows, ["split", "task", "method", "n", "mae", "max_error", "coverage", "spearman", "noise"])
    cells["best"] = best_marks(allrows, ["split"])
    err = error_unit(bt["metric"]) if "metric" in bt.columns else "points"
    units = {"n": "held-out predictions", "mae": err, "max_error": err, "noise": err,
             "coverage": coverage_unit(_backtest_level(rep)), "spearman": "rank correlation, -1 to 1"}
    page.table(cells, "backtest.csv", "All tasks of each split (task = ALL)", units=units)
    page.figure(rep.plots / "backtest_mae.png", figures.plot_backtest_mae, (bt,), "backtest MAE per split and method",
                "Backtest MAE per split and method: bars over all tasks, points one per task.")
    per = bt[bt["task"] != "ALL"].reset_index(drop=True)
    for split in dict.fromkeys(per["split"]):
        sub = per[per["split"] == split].sort_values(["task", "method"], kind="mergesort").reset_index(drop=True)
        with page.details(f"{split}: per task"):
            cells = display(sub, ["split", "task", "metric", "method", "n", "mae", "max_error", "coverage", "spearman"])
            cells["best"] = best_marks(sub, ["task", "metric"])
            page.table(cells, "backtest.csv", f"{split}: per task", units=units)
    if pr is None:
        return
    for split in rep.cfg.heldout_splits:
        if split in set(pr["split"]):
            page.figure(rep.plots / f"heldout-{slug(split)}.png", figures.plot_heldout, (rep.inp, split),
                        f"held-out predictions of {split}",
                        f"Backtest {split}, per task: held-out actuals (stars, by family) and every method's "
                        f"prediction with its interval (dots with bars, offset by method).")


# ------------------------------------------------------------------------------------ families
def offset_sentence(r) -> str:
    """'opt reaches pythia's capability at 0.494x the compute (90% interval 0.255-0.957; ...)'."""
    return (f"{r['family']} reaches {r['reference']}'s capability at {fmt(r['k'])}× the compute "
            f"({fmt(r['level'])} interval {fmt(r['k_lower'])} to {fmt(r['k_upper'])}; suite {r['suite']}, "
            f"{fmt(r['models'])} models).")


def section_families(page: Page, rep: Report) -> None:
    off, cap, table = rep.inp.offsets, rep.inp.capability, rep.inp.scores
    if off is None or off.empty or cap is None:
        missing(page, rep, 2, "Family comparison", "families",
                "reports/family_offsets.csv is missing or empty: run the forecast stage (forecast.family_comparison).")
        return
    page.heading(2, "Family comparison", "families")
    page.para("Observational view (after Ruan et al. 2024): each model's capability is the first principal component "
              "of its suite's benchmark accuracies (tasks standardised; final checkpoints; models with every task), "
              "regressed on log10 training compute with one slope shared by the families and one intercept per "
              "family. Family X then reaches the reference family's capability at k = 10^((b_ref - b_X) / slope) "
              "times the compute: k < 1 means X is more compute-efficient. Intervals: delta method on the OLS "
              "covariance, t quantile, at the forecast level. Implemented in pipeline/forecast.py "
              "(capability_scores, shared_slope_fit), on the suites where several families share one harness.")
    page.bullets([offset_sentence(r) for _, r in off.iterrows() if r["family"] != r["reference"]])
    page.table(display(off, ["suite", "family", "reference", "models", "min_compute_flops", "max_compute_flops",
                             "slope", "own_slope", "intercept", "log10_k", "k", "level", "k_lower", "k_upper", "r2"]),
               "family_offsets.csv",
               "Shared-slope fit per suite: own_slope: the family fitted alone (a check on sharing one slope); "
               "models: those in the compute range all families cover",
               units={"slope": "capability per decade of compute", "own_slope": "capability per decade of compute",
                      "intercept": "capability", "log10_k": "decades of compute", "level": "interval level, 0–1",
                      **{k: "× the reference family's compute" for k in ("k", "k_lower", "k_upper")}})
    for suite, g in off.groupby("suite", sort=False):
        page.para(f"{suite}: tasks in the capability score: {g['tasks'].iloc[0]}.")
    page.figure(rep.plots / "family_capability.png", figures.plot_family_capability, (cap, off),
                "capability vs compute per family",
                "Capability score against training compute (log scale): points are models, lines the shared-slope fit.")
    for c in rep.cfg.family_curves:
        metric, shots = c.get("metric", "acc"), c.get("num_fewshot", 0)
        rows = table[(table["suite"] == c["suite"]) & table["family"].isin(list(c["families"]))
                     & (table["metric"] == metric) & shots_mask(table, shots)]
        page.figure(rep.plots / f"family_curves_{slug(c['suite'])}.png", figures.plot_family_curves,
                    (table, c["suite"], list(c["families"]), metric, shots),
                    f"scaling curves of {', '.join(c['families'])} on {c['suite']}",
                    f"Scaling curves of {', '.join(c['families'])} on the same axes ({c['suite']}, one harness): "
                    f"{metric} per task against training compute, {_bars(rows)}, chance dotted.")


# ------------------------------------------------------------------------------------ trends
def trend_label_counts(trends: pd.DataFrame) -> pd.DataFrame:
    """Curves per label (reports/trends_labels.csv)."""
    c = trends["label"].fillna("").value_counts()
    return pd.DataFrame({"label": c.index.astype(str), "curves": c.to_numpy().astype(int)})


def section_trends(page: Page, rep: Report) -> None:
    tr = rep.inp.trends
    if tr is None:
        missing(page, rep, 2, "Emergence and inverse scaling", "trends",
                "reports/trends.csv is missing: run the trends stage (dvc repro).")
        return
    page.heading(2, "Emergence and inverse scaling", "trends")
    counts = trend_label_counts(tr)
    scores.write_csv(counts, rep.out / "trends_labels.csv")
    horizons = [c[len("pred_"):] for c in tr.columns if c.startswith("pred_")]
    page.para("Every (suite, family, task, metric, shots) curve over the family's final checkpoints gets one shape "
              "label from the trends stage (pipeline/trends.py): positive, emergent (at chance at the smallest scales, "
              "then a significant rise), inverse (worse with scale), u_shaped, inverted_u, flat or noisy; curves "
              "with fewer than 4 scales or without standard errors are not labelled. Forecasts are at "
              + ", ".join(horizons) + " the curve's largest scale, with their interval.")
    page.table(display(counts, ["label", "curves"]), "trends_labels.csv", "Curves per label (counted from trends.csv)")
    flagged = tr[tr["label"].isin(FLAGGED)].reset_index(drop=True)
    if flagged.empty:
        page.para("No curve is flagged emergent, inverse or U-shaped.")
    else:
        page.table(display(flagged, TREND_KEY + ["label", "n_points", "form", "evidence"]), "trends.csv",
                   "Flagged curves: label and evidence", group="suite", units={"n_points": "scales"})
        fc_cols = TREND_KEY + ["label"] + [f"{k}_{h}" for h in horizons for k in ("pred", "lo", "hi")]
        value = value_unit(flagged["metric"])
        page.table(display(flagged, fc_cols), "trends.csv",
                   "Forecasts of the flagged curves (pred with lo-hi interval at each horizon)", group="suite",
                   units={c: value for c in fc_cols[len(TREND_KEY) + 1:]})
        extra = flagged[flagged["cross_compute"].notna() | flagged["turn"].notna()] \
            if {"cross_compute", "turn"} <= set(flagged.columns) else flagged.iloc[:0]
        if len(extra):
            page.table(display(extra, TREND_KEY + ["label", "cross_level", "cross_compute", "cross_compute_lo",
                                                   "cross_compute_hi", "cross_method", "turn", "turn_x"]),
                       "trends.csv", "Where flagged curves cross chance + margin (compute, FLOPs), or turn",
                       group="suite", units={"cross_level": value_unit(extra["metric"])})
        maxp = rep.cfg.max_trend_plots
        page.figure(rep.plots / "trends_flagged.png", figures.plot_trend_curves, (rep.inp, flagged, maxp),
                    "flagged curves", "One panel per flagged curve: data (±1 stderr where the suite publishes it), "
                    "chance level (dotted) and forecasts with intervals.")
        if len(flagged) > maxp:
            page.note(f"Only the first {maxp} flagged curves are drawn (report.max_trend_plots).")
    _trend_details(page, rep, horizons)


def _trend_details(page: Page, rep: Report, horizons: list[str]) -> None:
    tr, em = rep.inp.trends, rep.inp.emergence
    if em is not None and len(em) and "cross_compute" in em.columns:
        show = em[(em["label"].isin(FLAGGED + ("positive", "flat", "noisy")) | em["suite"].isin(rep.cfg.report_suites))
                  & em["cross_compute"].notna()].reset_index(drop=True)
        if len(show):
            with page.details(f"Emergence: where accuracy crosses chance + margin ({len(show)} rows)"):
                page.table(display(show, TREND_KEY + ["label", "method", "level", "cross_compute", "cross_compute_lo",
                                                      "cross_compute_hi", "cross_params", "detail"]),
                           "trends_emergence.csv", "Crossing of chance + margin by each route (inf: beyond 1000x "
                           "the family's largest compute)", group="suite", units={"level": value_unit(show["metric"])})
    labelled = tr[tr["label"].isin(("positive", "flat", "noisy"))].reset_index(drop=True)
    if len(labelled):
        with page.details(f"Other labelled curves ({len(labelled)})"):
            cols = TREND_KEY + ["label", "n_points", "form"]
            if horizons:
                h = horizons[min(1, len(horizons) - 1)]
                cols += [f"pred_{h}", f"lo_{h}", f"hi_{h}"]
            page.table(display(labelled, cols), "trends.csv", "Other labelled curves", group="suite",
                       units={"n_points": "scales", **{c: value_unit(labelled["metric"]) for c in cols[len(TREND_KEY) + 3:]}})
    tm = rep.inp.trends_summary
    if tm is not None and len(tm):
        where = " (trends.backtest in params.yaml)" if rep.cfg.pipeline_outputs else ""
        page.para(f"Backtest of the labels and forecasts{where}: each family's curves are "
                  "labelled and forecast from its small models only and compared with all models (label agreement) "
                  "and with the held-out values (interval coverage; MAE in accuracy points). Per point in "
                  "reports/trends_backtest.csv; the trends stage's own summary is reports/trends.md.")
        cols = ["split", "label_agreement", "label_agreement_curves", "curves", "coverage", "heldout_points", "mae",
                "max_error", "accuracy_points"]
        page.table(display(tm, cols), "trends_backtest_summary.csv", "Trends backtest (split ALL = every split together)",
                   units={"label_agreement": "share of curves", "coverage": coverage_unit(), "mae": "points",
                          "max_error": "points"})
    _trend_backtests(page, rep)


def _trend_backtests(page: Page, rep: Report) -> None:
    """The crossing-point backtest and the label confusion table, where the trends stage wrote them."""
    cs, cx, cf = rep.inp.crossing_summary, rep.inp.crossing, rep.inp.confusion
    if cs is not None and len(cs):
        page.heading(3, "Backtest of the emergence point", "trends-crossing")
        page.para("Every curve that crosses chance + margin inside its data (a family over its models, or one model "
                  "over its checkpoints) after at least a few points on one side is cut just before the crossing; "
                  "each route forecasts the crossing from what is left (the loss and PC routes without the family's "
                  "models at and above it, in any suite), and the forecast is scored in decades of compute against "
                  "where the curve crossed. 'primary' is the route the trends table reports first; coverage counts "
                  "the forecasts whose 90% interval holds the observed crossing.")
        page.table(display(cs, ["cases", "method", "n", "forecast", "finite", "coverage", "median_abs_log10_error"]),
                   "trends_backtest_crossing.csv", "Crossing-point backtest: error in decades of compute",
                   units={"coverage": "share of crossings in the 90% interval"})
        if cx is not None and len(cx):
            prim = cx[cx["primary"].astype(str).str.lower() == "true"].reset_index(drop=True)
            with page.details(f"Every case, its first route ({len(prim)} rows; every route in "
                              "trends_backtest_emergence.csv)"):
                page.table(display(prim, ["kind", "suite", "family", "model", "task", "metric", "num_fewshot", "side",
                                          "points_before", "observed_compute", "method", "pred_compute", "lo_compute",
                                          "hi_compute", "log10_error", "hit"]),
                           "trends_backtest_emergence.csv", "Crossing forecasts from the points before the crossing",
                           group="suite")
    if cf is not None and len(cf):
        page.heading(3, "Labels from small models against all models", "trends-confusion")
        page.para("Rows: the label from the small models of each backtest split; columns: the label from all models; "
                  "agreement = the share of the row on the diagonal. Curves the small models cannot label are "
                  "'insufficient'.")
        labels = [c for c in cf.columns if c not in ("split", "label_small", "curves", "agreement")]
        allrows = cf[(cf["split"] == "ALL") & (cf["curves"] > 0)].reset_index(drop=True)
        page.table(display(allrows, ["label_small"] + labels + ["curves", "agreement"]),
                   "trends_backtest_confusion.csv", "Label confusion, every split together (rows with curves)",
                   units={"agreement": "share of the row"})


# ------------------------------------------------------------------------------------ data
def data_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Rows, models, tasks and checkpoints (model and step pairs, as the forecast counts them; 0
    where the rows give no step) per (suite, family)."""
    table = table.assign(checkpoint=table["model"].astype(str) + "@" + table["step"].astype(str))
    return (table.groupby(["suite", "family"])
            .agg(rows=("value", "size"), models=("model", "nunique"), tasks=("task", "nunique"),
                 checkpoints=("checkpoint", "nunique"))
            .reset_index())


def overview_of(rep: Report) -> dict | None:
    """The data overview figure's suite, tasks, metric and shots: configured, else the first forecast target's."""
    if rep.cfg.overview:
        return rep.cfg.overview
    fc = rep.inp.forecast
    if fc is None or fc.empty:
        return None
    first = fc.iloc[0]
    return {"suite": first["suite"], "plot_tasks": list(dict.fromkeys(fc.loc[fc["suite"] == first["suite"], "task"])),
            "plot_metric": first["metric"], "num_fewshot": first["num_fewshot"]}


def section_data(page: Page, rep: Report) -> None:
    page.heading(2, "Data", "data")
    table = rep.inp.scores
    summary = data_summary(table)
    scores.write_csv(summary, rep.out / "data_summary.csv")
    page.para(f"The scores table: {len(table)} rows, {table['model'].nunique()} models, "
              f"{table['task'].nunique()} tasks. Numbers are comparable only within a suite.")
    page.table(display(summary, ["suite", "family", "rows", "models", "tasks", "checkpoints"]), "data_summary.csv",
               "Rows, models, tasks and checkpoints per suite and family", group="suite")
    ov = overview_of(rep)
    if ov is None:
        return
    rows = table[(table["suite"] == ov["suite"]) & (table["metric"] == ov["plot_metric"])]
    page.figure(rep.plots / "accuracy_vs_compute.png", figures.plot_accuracy_vs_compute, (table, ov),
                "accuracy vs compute", f"{ov['suite']}: {ov['plot_metric']} at the final checkpoint per task and "
                f"family, {_bars(rows)}, chance dotted.")


# The page, top to bottom.  A new section (e.g. a family comparison of skills) is a function
# ``section_x(page, rep)`` inserted here; it reads its CSV from ``rep.inp`` (add a field there and a
# line in inputs.load_inputs) and says so in one note when that CSV is absent.
SECTIONS = [section_answers, section_glance, section_targets, section_reach, section_methods, section_families, section_family_skills, section_trends,
            section_data]
