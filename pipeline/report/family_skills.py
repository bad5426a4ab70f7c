"""Report section: families compared by the skill law (reports/family_skills.csv, written by the
forecast stage from pipeline/laws/skills.py): each family's shift per latent skill, the compute
multiplier it implies, and how well the same law predicted the family when only its smallest model
was in the training rows."""
from __future__ import annotations

import numpy as np

from pipeline.report.page import Page, display, fmt, missing

COLUMNS = ["family", "models", "skill", "anchor", "shift", "shift_lower", "shift_upper", "k", "k_lower", "k_upper",
           "lofo_n", "lofo_mae", "lofo_coverage", "baseline", "baseline_mae"]


UNITS = {"shift": "logits of the anchor", "shift_lower": "logits of the anchor", "shift_upper": "logits of the anchor",
         **{k: "× the reference's compute" for k in ("k", "k_lower", "k_upper")}, "lofo_n": "held-out predictions",
         "lofo_mae": "points", "lofo_coverage": "share of held-out values in the interval", "baseline_mae": "points"}


def statement(r) -> str:
    """'opt needs 1.3x the compute of pythia for skill 1 (anchored on winogrande:acc; 90% interval
    0.9 to 1.8); held out but for its smallest model: 2.03 points MAE over 35 predictions (sigmoid 2.17).'"""
    held = (f"held out but for its smallest model: {fmt(r['lofo_mae'])} points MAE over {fmt(r['lofo_n'])} "
            f"predictions ({r['baseline']} {fmt(r['baseline_mae'])})" if np.isfinite(r["lofo_mae"])
            else "not held out in a backtest")
    if not np.isfinite(r["k"]):
        return (f"{r['family']}: skill {fmt(r['skill'])} (anchored on {r['anchor']}) does not rise with compute at the "
                f"comparison point, so no compute multiplier; shift {fmt(r['shift'])}; {held}.")
    return (f"{r['family']} needs {fmt(r['k'])}× the compute of {r['reference']} for skill {fmt(r['skill'])} "
            f"(anchored on {r['anchor']}; {fmt(r['level'])} interval {fmt(r['k_lower'])} to {fmt(r['k_upper'])}); "
            f"{held}.")


def section_family_skills(page: Page, rep) -> None:
    fs = rep.inp.family_skills
    if fs is None or fs.empty:
        missing(page, rep, 3, "Families by skill (skill law)", "family-skills",
                "reports/family_skills.csv is missing or empty: run the forecast stage (forecast.family_skills).")
        return
    page.heading(3, "Families by skill (skill law)", "family-skills")
    page.para("Skill law (after Polo et al. 2024, 'Sloth'): every model has a few latent skills, each linear in log10 N, "
              "log10 D and their product with one shift per family (its efficiency), read out by every benchmark "
              "through a sigmoid with the benchmark's chance level as floor; all benchmarks and families are fitted at "
              "once, the number of skills and the prior on the shifts chosen by leave-one-family-out folds inside the "
              "training rows. A shift is in logits of the skill's anchor benchmark, against the reference family; k is "
              "the compute the family needs to reach the skill the reference has at the comparison point (both scaled "
              "at its tokens per parameter): k > 1 means less efficient. Intervals: bootstrap over models. Beside each "
              "family: the skill law's error on it when it was held out but for its smallest model "
              "(the comparison's backtest split), and the baseline's error on the same predictions.")
    for name, g in fs.groupby("comparison", sort=False):
        g = g.reset_index(drop=True)
        first = g.iloc[0]
        page.para(f"{name}: {fmt(first['n_skills'])} skill(s) ({first['form']}), reference {first['reference']} at "
                  f"{fmt(first['at_params'])} parameters and {fmt(first['at_tokens'])} tokens; backtest split "
                  f"{first['lofo_split'] or '-'}.")
        others = g[g["family"] != g["reference"]]
        held = others[np.isfinite(others["lofo_mae"].astype(float))]
        ref = g[(g["family"] == g["reference"]) & np.isfinite(g["lofo_mae"].astype(float))].head(1)
        page.bullets([statement(r) for _, r in held.iterrows()]
                     + [f"{r['family']} (the reference) held out but for its smallest model: {fmt(r['lofo_mae'])} points "
                        f"MAE over {fmt(r['lofo_n'])} predictions ({r['baseline']} {fmt(r['baseline_mae'])})."
                        for _, r in ref.iterrows()])
        with page.details(f"{name}: every family and skill"):
            page.table(display(g, COLUMNS), "family_skills.csv", f"{name}: shifts, compute multipliers and held-out errors",
                       units=UNITS)

