"""The caveats of one forecast, in words: the ``note`` of every forecast line.

Both front doors write it, from this one function (:func:`note`): the forecast stage
(``reports/forecast.csv``) and the family forecast (``forecast --family``: the console line and
its CSV; ``report --family``).  In order:

* why there is no number (the law could not be fitted), where there is none;
* **at chance**: the task sat at its chance level over the whole ladder (no rise to extrapolate:
  a take-off beyond the ladder cannot be forecast), or **no rise**: the two-step link found no
  rise of accuracy with the loss and was fitted as a line (:func:`pipeline.laws.link.fit_link`);
* **no task losses**: two_step (alone or as a candidate of auto) has no loss to go through,
  because the rows hold none of the task's (lm-eval ran without ``--log_samples``);
* the extrapolation (:func:`pipeline.forecasting.targets.extrapolation`): "interpolation" inside
  the ladder's compute (or, past its runs' N or D, which), else the multiple of the largest
  training run's compute, with the warning past what the calibration ladders support;
* **wide interval**: an accuracy interval spanning most of [chance, 1] (:data:`WIDE`), with why:
  the ladder's values lie below chance (the interval is then bounded by 0), or forecasts like it
  erred that much elsewhere; **below chance**: an interval reaching under the chance level by the
  measurement noise (:func:`below_chance`);
* why the ladder's own backtest is missing (family forecast).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline import scores
from pipeline.errors import CapcastError
from pipeline.laws import data
from pipeline.laws.data import Metric

Z = 2.0  # standard errors from flat: the link's own threshold of a rise (pipeline.laws.link)
MIN_NOISE = 0.01  # one accuracy point, the link's delta
NO_LOSSES = "no task losses: two_step cannot run (re-run lm_eval with --log_samples)"
LOSS_METHODS = ("two_step", "auto")  # the methods two_step is, or is a candidate of
WIDE = 0.9  # an interval spanning this fraction of [chance, 1] or more says why


def at_chance(rows: pd.DataFrame, target: str) -> str:
    """"at chance: ..." where the last checkpoint of every model of the ladder scores within noise
    of the task's chance level and shows no rise with compute (the slope of accuracy on log
    compute within ``Z`` standard errors of flat, the noise the larger of the residual scatter,
    the median stderr and one point), else ''."""
    metric = Metric.parse(target)
    if metric.kind != "accuracy":
        return ""
    try:
        units = data.values(rows, metric, "forecast")
        chance = metric.chance(rows)
    except CapcastError:
        return ""
    final = data.final_units(units.loc[units["compute_flops"] > 0])
    if len(final) < 3:
        return ""
    x = np.log10(final["compute_flops"].to_numpy(float))
    y, se = final["value"].to_numpy(float), final["stderr"].to_numpy(float)
    sxx = float(np.sum((x - x.mean()) ** 2))
    if sxx <= 0:
        return ""
    slope = float(np.sum((x - x.mean()) * (y - y.mean())) / sxx)
    resid = y - y.mean() - slope * (x - x.mean())
    se = se[np.isfinite(se)]
    noise = max(float(np.sqrt(resid @ resid / max(len(y) - 2, 1))), float(np.median(se)) if len(se) else 0.0,
                MIN_NOISE)
    flat = abs(slope) < Z * noise / np.sqrt(sxx)
    if not (flat and float(y.max()) - chance < Z * noise):
        return ""
    return (f"at chance: {metric.task} stays within noise of its chance level {chance:.3g} across the ladder "
            f"(best {float(y.max()):.3f}, noise {noise:.2g}), so a take-off beyond it cannot be forecast")


def no_rise(law) -> str:
    """"no rise: ..." where the law, or a candidate auto fitted, found no rise of accuracy with the
    loss (its link then a line: ``form_label()`` says "no rise"), else ''."""
    laws = [law] + [f for f in (getattr(law, "fits_", None) or {}).values() if not isinstance(f, Exception)]
    for one in laws:
        try:
            label = one.form_label()
        except (AttributeError, CapcastError):
            continue
        if "no rise" in str(label):
            return ("no rise: accuracy does not rise with the task loss on the ladder; two_step's link is "
                    "fitted as a line")
    return ""


def no_losses(rows: pd.DataFrame, target: str, method: str, loss: str | None) -> str:
    """:data:`NO_LOSSES` where two_step would go through the task's own loss (no ``loss`` named)
    and the rows hold none of it, else ''."""
    if method not in LOSS_METHODS or loss:
        return ""
    task = Metric.parse(target).task
    own = rows.loc[rows["task"] == task, "metric"].astype(str).unique()
    if any(scores.metric_kind(m) == "loss" for m in own):
        return ""
    others = scores.loss_metrics(rows)
    if others:  # a loss of another task (a corpus's perplexity) is there to be named
        return (f"no task losses of {task}: two_step cannot run unless --loss names one of the rows' losses "
                f"({', '.join(others[:4])}{', ...' if len(others) > 4 else ''})")
    return NO_LOSSES


def _chance_and_floor(rows: pd.DataFrame, target: str) -> tuple[float, float] | None:
    """(chance, the link's floor) of an accuracy ``target`` on the ladder ``rows`` (the floor from
    the rows the policy takes it from: ladder_features), or None for a loss or unreadable rows."""
    from pipeline.laws.conformal import floor_of

    metric = Metric.parse(target)
    if metric.kind != "accuracy":
        return None
    try:
        chance = metric.chance(rows)
        units = data.values(rows, metric, "forecast")
    except CapcastError:
        return None
    units = units.loc[units["compute_flops"] > 0]
    return chance, (floor_of(chance, units["value"], units["stderr"]) if len(units) else chance)


def wide_intervals(rows: pd.DataFrame, target: str, lower, upper) -> list[str]:
    """Per interval (``lower``, ``upper``) of an accuracy ``target`` forecast from ``rows``: "wide
    interval: ..." with why, where it spans :data:`WIDE` of [chance, 1] or more, else ''."""
    lo, hi = np.asarray(lower, float), np.asarray(upper, float)
    return _wide(lo, hi, _chance_and_floor(rows, target) if lo.size else None)


def below_chance(rows: pd.DataFrame, target: str, lower) -> list[str]:
    """Per lower bound of an accuracy ``target`` forecast from ``rows``: "below chance: ..." where
    it lies under the task's chance level on a ladder whose values do not (the measurement band,
    :func:`pipeline.laws.conformal.measurement_band`, reaches there), else ''."""
    lo = np.asarray(lower, float)
    return _below(lo, _chance_and_floor(rows, target) if lo.size else None)


def interval_words(rows: pd.DataFrame, target: str, lower, upper) -> list[str]:
    """Per interval: :func:`wide_intervals` and :func:`below_chance` joined, the ladder read once."""
    lo, hi = np.asarray(lower, float), np.asarray(upper, float)
    levels = _chance_and_floor(rows, target) if lo.size else None
    return [join(pair) for pair in zip(_wide(lo, hi, levels), _below(lo, levels))]


def _wide(lo: np.ndarray, hi: np.ndarray, levels) -> list[str]:
    if levels is None:
        return [""] * lo.size
    chance, floor = levels
    why = (f"the ladder's values lie below its chance level {chance:.3g}, so the interval is bounded by 0"
           if floor < chance else "forecasts like this one erred that much on other ladders, or the law's refits "
           "disagree that much")
    wide = np.isfinite(lo) & np.isfinite(hi) & (hi - lo >= WIDE * (1 - chance))
    return [f"wide interval: {a:.2f}-{b:.2f} spans most of [{chance:.3g}, 1]: {why}" if w else ""
            for a, b, w in zip(lo, hi, wide)]


def _below(lo: np.ndarray, levels) -> list[str]:
    if levels is None or levels[1] < levels[0]:  # a ladder below chance: bounded by 0, and says so when wide
        return [""] * lo.size
    chance = levels[0]
    return [f"below chance: the interval reaches {a:.3f}, under the chance level {chance:.3g}, by the benchmark's "
            "measurement noise (a measured value near chance falls below it as often as above)"
            if np.isfinite(a) and a < chance - 5e-4 else "" for a in lo]


def note(rows: pd.DataFrame, target: str, method: str, extrapolation: str = "", law=None, loss: str | None = None,
         failure: str = "", backtest: str = "", wide: str = "") -> str:
    """The ``note`` of one forecast of ``target`` (TASK:METRIC) by ``method`` from the family's
    ``rows``: the caveats of the module docstring, joined by "; ".  ``law``: the fitted law (None
    where it failed: ``failure`` says why); ``loss``: the loss two_step was told to use;
    ``extrapolation``: the row's words; ``backtest``: why the ladder's backtest is missing;
    ``wide``: the interval's words (:func:`interval_words`)."""
    return join([failure, caveats(rows, target, method, law, loss), wide, extrapolation,
                 f"backtest: {backtest}" if backtest else ""])


def caveats(rows: pd.DataFrame, target: str, method: str, law=None, loss: str | None = None) -> str:
    """The caveats proper of a forecast (a ``caveats`` cell: at chance or no rise, no task losses),
    without its extrapolation or failure: what the report prints in brackets beside the number
    (the forecast adds :func:`interval_words` once it has its interval)."""
    chance = at_chance(rows, target)
    return join([chance or (no_rise(law) if law is not None else ""), no_losses(rows, target, method, loss)])


def ladder(rows: pd.DataFrame, task: str, metric: str) -> list[str]:
    """The ladder's own caveat of ``task:metric`` ([] or ["at chance: ..."]), for answers with no law."""
    return [c for c in [at_chance(rows, f"{task}:{metric}")] if c]


def task_losses(rows: pd.DataFrame, task: str, loss: str | None = None) -> list[str]:
    """["no task losses: ..."] where two_step would have no loss: the one named (``loss``) absent
    from the rows, or (none named) no loss of ``task`` in them; else []."""
    if loss:
        ltask, _, lmetric = str(loss).rpartition(":")
        present = ((rows["task"] == ltask) & (rows["metric"] == lmetric)).any()
        return [] if present else [f"no task losses: the rows hold no {loss}, so two_step cannot run"]
    return [c for c in [no_losses(rows, f"{task}:acc", "two_step", None)] if c]


def join(parts) -> str:
    return "; ".join(p for p in parts if p)
