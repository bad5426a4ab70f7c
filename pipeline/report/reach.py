"""Report section "How big to reach it" (reports/reach.csv, written by the reach stage from params.yaml
``report.goals``; the work is pipeline/forecasting/reach.py): per goal the smallest compute and N of
the family's recipe whose forecast reaches it, its interval, its backtest on the family's own top
rung, and the caveats.  One sentence per goal, every number a cell of reach.csv."""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.report.page import Page, display, fmt, missing

COLUMNS = ["family", "task", "metric", "goal", "recipe", "method", "reached", "params", "params_lower", "params_upper",
           "compute_flops", "compute_lower", "compute_upper", "factor", "backtest_compute_true", "backtest_compute",
           "backtest_error_decades", "backtest_hit", "note", "caveats", "extrapolation"]
UNITS = {"goal": "accuracy, 0–1", **{c: "parameters" for c in ("params_lower", "params_upper")},
         **{c: "FLOPs" for c in ("compute_lower", "compute_upper", "backtest_compute_true", "backtest_compute")},
         "factor": "× the family's largest compute", "backtest_error_decades": "decades of compute, predicted − true",
         "backtest_hit": "true compute inside the interval", "extrapolation": "beyond the ladder, in words"}


def _text(v) -> str:
    return v if isinstance(v, str) else ""


def _end(v) -> str:
    return fmt(v) if np.isfinite(v) else "beyond 10^4× the largest model"


def sentence(r) -> str:
    """'pythia (D=3e+11 tokens): arc_easy:acc reaches 0.75 at N = 4.22e+10 parameters, C = 7.6e+22 FLOPs
    (3.56× the family's largest compute; 90% interval of N: 1.86e+10 to ...) by auto; backtest: ...'."""
    level = f"{100 * float(r['level']):.3g}%" if pd.notna(r.get("level")) else "interval"
    head = f"{r['family']} ({r['recipe']}): {r['task']}:{r['metric']} = {fmt(r['goal'])}"
    if r["reached"] is True or str(r["reached"]).lower() == "true":
        text = (f"{head} is reached at N = {fmt(r['params'])} parameters, C = {fmt(r['compute_flops'])} FLOPs "
                f"({fmt(r['factor'])}× the family's largest compute; {level} interval of N: {fmt(r['params_lower'])} "
                f"to {_end(r['params_upper'])}) by {r['method']}")
    else:
        text = f"{head}: {_text(r['note']) or 'no answer'} ({r['method']})"
    if pd.notna(r.get("backtest_error_decades")):
        inside = "inside" if str(r["backtest_hit"]).lower() == "true" else "outside"
        at = (f"was put at C = {fmt(r['backtest_compute'])} FLOPs against {fmt(r['backtest_compute_true'])} "
              f"({fmt(r['backtest_error_decades'])} decades, {inside} the interval)"
              if np.isfinite(r["backtest_compute"]) else
              f"was not reached within 10^4× (it was at {fmt(r['backtest_compute_true'])} FLOPs; {inside} the interval)")
        text += f"; on its own ladder, from the rungs below the top one, the top rung's score {fmt(r['backtest_goal'])} {at}"
    elif _text(r.get("backtest_note")):
        text += f"; no backtest on its own ladder ({r['backtest_note']})"
    extra = [_text(r["note"]) if r["reached"] in (True, "True", "true") else "", _text(r.get("extrapolation")),
             _text(r.get("caveats"))]
    return text + "".join(f"; {e}" for e in extra if e) + "."


def section_reach(page: Page, rep) -> None:
    rc = rep.inp.reach
    if rc is None:
        missing(page, rep, 2, "How big to reach it", "reach",
                "reports/reach.csv is missing: run the reach stage (dvc repro; goals in params.yaml report.goals).")
        return
    page.heading(2, "How big to reach it", "reach")
    if rc.empty:
        page.note("No goals are listed (params.yaml report.goals).")
        return
    page.para("The inverse question: the smallest model of each family's recipe whose forecast reaches the goal. "
              "The law (auto unless a goal names another) is fitted on all of the family's checkpoints and evaluated "
              "along the recipe (a fixed D, or D = R × N) from its smallest model to 10^4× its largest compute. The "
              "interval of N and C is read off the forecast's band: where its upper bound first reaches the goal is "
              "the lower end, where its lower bound first reaches it the upper end (beyond 10^4×: inf). The backtest "
              "asks the same question of the family's own ladder: the top rung held out, its final score as the "
              "goal, predicted from the lower rungs and scored in decades of compute. Every number is a cell of "
              "reach.csv.")
    page.bullets([sentence(r) for _, r in rc.iterrows()])
    page.table(display(rc, COLUMNS), "reach.csv", "How big to reach each goal, with the backtest on the family's own "
               "top rung (highlighted: with caveats)", flag="caveats", units=UNITS, wrap=True)
