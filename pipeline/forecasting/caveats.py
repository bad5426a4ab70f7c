"""What a forecast number cannot tell on its own: the caveats printed beside it, wherever it appears.

* **at chance** -- the family's largest models (three) score on average within the noise (two
  standard errors, at least 2 points) of the task's random-guess level: the ladder has not left chance, so nothing says where (or whether) it will rise;
* **no rise** -- accuracy does not rise with compute across the ladder's final checkpoints (the
  least-squares slope on log10 compute is not two standard errors above 0);
* **no task losses** -- the family's rows hold no loss of the task (lm_eval without
  ``--log_samples``), so the two-step law cannot run and auto goes without it.

Each is one short clause; :func:`join` puts them into the ``caveats`` cell of a forecast's row
(forecast.csv, reach.csv), which the console lines and the report print as they are.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline import scores

AT_CHANCE_FLOOR = 0.02  # within this of chance (accuracy, 0-1) counts as at chance where stderrs are absent
TOP_MODELS = 3  # the ladder's largest models whose mean says whether it left chance


def ladder(rows: pd.DataFrame, task: str, metric: str) -> list[str]:
    """'at chance ...' and/or 'no rise ...' of the family's ladder on ``task:metric`` ([] for a rising
    ladder, a metric other than an accuracy, or too few final checkpoints to say)."""
    if scores.metric_kind(metric) != "accuracy":
        return []
    own = rows[(rows["task"] == task) & (rows["metric"] == metric) & (rows["compute_flops"] > 0)]
    final = scores.final_checkpoints(own).sort_values("compute_flops", kind="mergesort")
    if final.empty:
        return []
    try:
        chance = scores.chance_level(task, metric, rows)
    except scores.ScoresError:
        chance = None
    out = []
    top = final.iloc[-TOP_MODELS:]  # the largest models, averaged: one model's noise should not decide
    value = float(top["value"].mean())
    se = float(np.sqrt((top["stderr"].astype(float) ** 2).sum()) / len(top)) if top["stderr"].notna().all() else 0.0
    if chance is not None and value - chance <= max(2 * se, AT_CHANCE_FLOOR):
        out.append(f"at chance: the {len(top)} largest models score {value:.3g} on average against chance "
                   f"{chance:.3g}, so the ladder does not show where it will rise")
    if len(final) >= 3:
        x, y = np.log10(final["compute_flops"].to_numpy(float)), final["value"].to_numpy(float)
        slope, se_slope = _slope(x, y)
        if np.isfinite(slope) and slope <= 2 * se_slope:
            out.append(f"no rise: accuracy does not rise with compute across the ladder ({slope * 100:.2g} ± "
                       f"{se_slope * 100:.2g} points per decade)")
    return out


def _slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of y on x and its standard error."""
    if np.ptp(x) <= 0:
        return float("nan"), float("nan")
    X = np.column_stack([np.ones_like(x), x])
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    dof = len(x) - 2
    resid = y - X @ beta
    s2 = float(resid @ resid / dof) if dof > 0 else 0.0
    cov = s2 * np.linalg.inv(X.T @ X)
    return float(beta[1]), float(np.sqrt(max(cov[1, 1], 0.0)))


def task_losses(rows: pd.DataFrame, task: str, loss: str | None = None) -> list[str]:
    """'no task losses ...' where the rows hold no loss the two-step law could go through: the one
    named (``loss``, TASK:METRIC), else any loss metric of ``task``."""
    if loss:
        ltask, _, lmetric = str(loss).rpartition(":")
        if ((rows["task"] == ltask) & (rows["metric"] == lmetric)).any():
            return []
        return [f"no task losses: the rows hold no {loss}, so two_step cannot run"]
    kinds = rows.loc[rows["task"] == task, "metric"].astype(str).map(scores.metric_kind)
    if (kinds == "loss").any():
        return []
    return [f"no task losses: no loss of {task} in the rows, so two_step cannot run and auto goes without it "
            "(re-run lm_eval with --log_samples and import again)"]


def join(parts) -> str:
    """The caveats as one cell ('; '-separated), or '' where there are none."""
    return "; ".join(p for p in parts if p)
