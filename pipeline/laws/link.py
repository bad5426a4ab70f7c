"""The link from a loss to an accuracy (step 2 of the two-step law), in four candidate forms.

Bhagia et al. 2024 ("Establishing Task Scaling Laws via Compute-Efficient Model Ladders",
step 2) fit accuracy as a sigmoid of the task loss on all checkpoints of the ladder.  How that
curve behaves *beyond* the ladder decides a forecast, and the forms below differ exactly there:

* ``log_logistic`` — y = floor + (ceiling - floor) * sigmoid(-k (log L - x0)), ceiling free in
  (floor, 1]: a sigmoid in log L (a Hill curve in L).  A loss is positive and scales as a power
  law, so log L is its natural axis.  Its free ceiling can settle near the best *training*
  accuracy, and the forecast then stops rising where the ladder stops.
* ``hill`` — the log-logistic with its ceiling pinned at 1: a Hill curve in L from chance to 1
  (in log L the point L = 0 of Bhagia et al.'s anchor is infinitely far, so this is that
  anchor's limit); where the training accuracies are flat the free ceiling has nothing to
  settle on but their maximum, and this form does not.
* ``logistic`` — the same sigmoid in L.
* ``bhagia`` — their reference code: the sigmoid in L, fitted by least squares with one
  synthetic point (L = 0, Acc = 1) appended, which pins the ceiling near 1
  (anchors.md section 2.4).
* ``log_linear`` — a line in log L, clipped to [floor, 1]: the tangent of the sigmoid forms far
  below their ceiling.  Not a candidate of its own: it is what a free-ceiling form becomes where
  its ceiling is not identified (below).
* ``gadre`` — Gadre et al. 2024 ("Language models scale reliably with over-training and on
  downstream tasks"): Err(L) = eps - k exp(-gamma L) with eps the chance error, i.e.
  Acc = chance + k exp(-gamma L): no ceiling, accuracy keeps rising as the loss falls.

**A shape the data do not identify.**  A sigmoid extrapolates its rise and its ceiling; where the
ladder shows neither, those are whatever the optimiser settled on, and a forecast made of them is
a guess.  Two cases are caught on the training points and the link is then refitted as
``log_linear`` on the same points, which carries the ladder's own slope on
(``unidentified="keep"`` keeps the fitted form):

* **no rise** (any form): the least-squares slope of accuracy on log L is within two standard
  errors of flat (noise: the larger of the residual scatter, the median stderr and ``delta``).
  A task at chance over the whole ladder: a sigmoid would place its take-off anywhere beyond it.
* **ceiling not identified** (``log_logistic``, ``logistic``): the free ceiling settles on the best
  training accuracy (Winogrande or ARC-Challenge of small models): ``ceiling - fitted value at the
  lowest training loss`` is less than two noise units (the median stderr of the lowest-loss
  points, at least ``delta``), so the fit has seen no approach to an asymptote, only the lack of
  a rise, and every forecast would stop where the ladder stops.

In every form the floor (loss -> infinity) is the task's chance level, unless the training
accuracies sit significantly below it ("auto", see :func:`pipeline.laws.base.floor_is_free`).
The sigmoid forms use Huber loss with delta = 0.01 (one accuracy point) so single noisy
checkpoints do not pull the curve; ``bhagia`` uses least squares as the reference does.
Which form a law uses is chosen by nested extrapolation (:mod:`pipeline.laws.nested`) unless
fixed by the ``form`` option.

:class:`Link` fits and applies step 2 alone (given observed losses), the "step 2 from the true
task loss" diagnostic of Bhagia et al.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from pipeline import scores
from pipeline.errors import FitError
from pipeline.laws import data
from pipeline.laws.base import Law, floor_is_free
from pipeline.laws.curves import BoundedLinear, ChanceExponential, Curve, Sigmoid
from pipeline.laws.data import Metric
from pipeline.laws.loss import as_loss

LINK_FORMS = ("log_logistic", "hill", "bhagia", "gadre", "logistic", "log_linear")
FREE_CEILING_FORMS = ("log_logistic", "logistic")
EDGE_POINTS = 5  # the lowest-loss training points whose noise judges the ceiling
IDENTIFIED_Z = 2.0  # a rise, or a ceiling above the data, less than this many noise units is not identified
AUTO_LINK_FORMS = ("log_logistic", "hill", "bhagia", "gadre")  # the candidates of form="auto"


def check_form(form: str, allowed=LINK_FORMS) -> str:
    if form != "auto" and form not in allowed:
        raise FitError(f"link form must be 'auto' or one of {', '.join(allowed)}, not {form!r}")
    return form


def link_x(loss_values, form: str) -> np.ndarray:
    """The link's input: log L for the log-logistic and Hill forms, L itself for the others."""
    v = np.asarray(loss_values, float)
    return np.log(v) if form in ("log_logistic", "hill", "log_linear") else v


@dataclass
class LinkFit:
    """A fitted link: its curve, parameters and training points (the synthetic anchor last)."""

    form: str
    curve: Curve
    theta: np.ndarray
    x: np.ndarray  # (n + anchors, 1)
    y: np.ndarray
    anchors: int  # synthetic points appended (bhagia: 1), weight 1 in every refit
    why: str = ""  # why the form differs from the one asked for, in short ('' when it does not)
    note: str = ""  # the same with its numbers

    def refit(self, theta, W) -> np.ndarray:
        W = np.asarray(W, float)
        if self.anchors:
            W = np.hstack([W, np.ones((len(W), self.anchors))])
        return self.curve.refit(self.x, self.y, theta, W)

    def predict(self, state, loss_values) -> np.ndarray:
        return self.curve.predict(state, link_x(loss_values, self.form)[..., None])

    @property
    def params(self) -> dict:
        return self.curve.readable(self.theta)


def fit_link(pairs: pd.DataFrame, target: Metric, loss: Metric, form: str, floor: str, delta: float,
             law: str, chance: float, unidentified: str = "line") -> LinkFit:
    """Fit Acc(L) in ``form`` on units with both the target value and the observed loss (``value_loss``);
    a link whose rise or ceiling the points do not identify becomes ``log_linear`` unless
    ``unidentified="keep"``."""
    L = as_loss(loss, pairs["value_loss"])
    y, se = pairs["value"].to_numpy(float), pairs["stderr"].to_numpy(float)
    free = floor_is_free(floor, y, se, chance)
    fit = _fit_form(L, y, target, loss, form, free, delta, law, chance)
    if unidentified == "line" and form != "log_linear":
        why, note = _not_identified(fit, form, L, y, se, delta)
        if why:
            line = _fit_form(L, y, target, loss, "log_linear", free, delta, law, chance)
            line.why, line.note = why, f"{form} {note}: log_linear"
            return line
    return fit


def _not_identified(fit: LinkFit, form: str, L, y, se, delta) -> tuple[str, str]:
    """('', '') when the points identify the link's shape, else (short reason, the numbers)."""
    noise_floor = float(delta or 0.0)
    t, slope = _trend_t(L, y, se, noise_floor)
    if t < IDENTIFIED_Z:
        return "no rise", (f"rise not identified (accuracy against log L: slope {slope:.3f}, "
                           f"{t:.1f} standard errors from flat, fewer than {IDENTIFIED_Z:g})")
    if form in FREE_CEILING_FORMS:
        gap, noise = _ceiling_gap(fit, L, se, noise_floor)
        if gap < IDENTIFIED_Z * noise:
            return "ceiling not identified", (f"ceiling not identified (ceiling {gap:.3f} above the fit at the "
                                              f"lowest training loss, less than {IDENTIFIED_Z:g} x noise {noise:.3f})")
    return "", ""


def _trend_t(L, y, se, noise_floor: float) -> tuple[float, float]:
    """(|slope| / its standard error, slope) of the least-squares line of accuracy on log L, the
    noise being the larger of the residual scatter, the median stderr and ``noise_floor``."""
    x = np.log(np.asarray(L, float))
    sxx = float(np.sum((x - x.mean()) ** 2))
    if len(y) < 3 or sxx <= 0:
        return np.inf, 0.0  # too few points to judge: leave the form alone
    slope = float(np.sum((x - x.mean()) * (y - y.mean())) / sxx)
    resid = y - y.mean() - slope * (x - x.mean())
    stderr = se[np.isfinite(se)]
    noise = max(float(np.sqrt(resid @ resid / (len(y) - 2))), float(np.median(stderr)) if len(stderr) else 0.0,
                noise_floor)
    return abs(slope) / (noise / np.sqrt(sxx)), slope


def _fit_form(L, y, target, loss, form, free, delta, law, chance) -> LinkFit:
    x = link_x(L, form)
    anchors = 0
    if form == "gadre":
        curve = ChanceExponential(x, chance, free_floor=free, delta=delta)
    elif form == "log_linear":
        curve = BoundedLinear(x, 0.0 if free else chance, 1.0, delta=delta, free_floor=free)
    else:
        curve = Sigmoid(x, chance, direction=-1, free_floor=free, delta=None if form == "bhagia" else delta,
                        ceiling_one=form == "hill")
    data.need(len(y), curve.n_params + 1, f"{law} link", f"points with both {target} and {loss}")
    if form == "bhagia":
        x, y, anchors = np.append(x, 0.0), np.append(y, 1.0), 1
    theta, _, ok = curve.fit(x[:, None], y)
    if not ok:
        raise FitError(f"{law}: the {form} link of {target} on {loss} did not converge ({len(L)} points); "
                       f"check those rows or try floor: free")
    return LinkFit(form, curve, theta, x[:, None], y, anchors)


def _ceiling_gap(fit: LinkFit, L, se, delta) -> tuple[float, float]:
    """(ceiling minus the fitted accuracy at the lowest training loss, the noise of the lowest-loss
    points: their median stderr, at least ``delta``)."""
    edge = np.argsort(np.asarray(L, float), kind="stable")[:EDGE_POINTS]
    at_edge = float(fit.curve.predict(fit.theta, fit.x[edge[:1]])[0, 0])
    stderr = se[edge][np.isfinite(se[edge])]
    noise = max(float(np.median(stderr)) if len(stderr) else 0.0, float(delta or 0.0))
    return fit.params["ceiling"] - at_edge, noise


def resolve_loss(loss, target: Metric, rows: pd.DataFrame, law: str) -> Metric:
    """The loss metric: as given, or the target task's own loss in ``rows``: its bits per byte
    where it has several (the ranked-classification task loss of Bhagia et al. 2024), else its
    only loss metric."""
    if loss:
        return Metric.parse(loss, "--loss")
    own = sorted({m for t, m in zip(rows["task"], rows["metric"])
                  if t == target.task and scores.metric_kind(m) == "loss"})
    if "bpb" in own:
        return Metric(target.task, "bpb")
    if len(own) == 1:
        return Metric(target.task, own[0])
    losses = sorted({f"{t}:{m}" for t, m in zip(rows["task"], rows["metric"]) if scores.metric_kind(m) == "loss"})
    raise FitError(f"{law}: name the loss with --loss TASK:METRIC (losses in the training rows: "
                   f"{', '.join(losses[:8]) or 'none'})")


def require_accuracy(target: Metric, law: str) -> None:
    if target.kind != "accuracy":
        raise FitError(f"{law}: target {target} is not an accuracy in [0, 1] (its link needs one); "
                       f"use --method loglinear or observational")


class Link(Law):
    """Step 2 alone: accuracy from the *observed* loss of each unit (needs its loss rows)."""

    method = "link"

    def __init__(self, target, loss=None, form: Literal["auto", "log_logistic", "hill", "bhagia", "gadre", "logistic", "log_linear"] = "log_logistic", floor: Literal["auto", "chance", "free"] = "auto",
                 chance: float | None = None, unidentified: Literal["line", "keep"] = "line",
                 huber_delta: float = 0.01, skip_fraction: float = 0.1, rows: Literal["all", "final", "frontier"] = "all",
                 n_bootstrap: int = 200, level: float = 0.9, random_state: int = 0):
        super().__init__(target, n_bootstrap, level, random_state)
        self.rows = rows
        self.loss, self.form, self.floor, self.chance = loss, form, floor, chance
        self.unidentified = unidentified
        self.huber_delta, self.skip_fraction = huber_delta, skip_fraction

    def _candidates(self):
        return [{"form": f} for f in AUTO_LINK_FORMS] if check_form(self.form) == "auto" else []

    def _fit(self, rows):
        target = self.target_
        require_accuracy(target, self.method)
        self.loss_ = resolve_loss(self.loss, target, rows, self.method)
        pairs = data.skip_early(data.join(data.values(rows, target, self.method),
                                          data.values(rows, self.loss_, self.method), "_loss"), self.skip_fraction)
        fitted = fit_link(pairs, target, self.loss_, self._opt("form"), self.floor, self.huber_delta, self.method,
                          self._chance(rows), self.unidentified)
        self.link_, self.params_, self.link_note_ = fitted, fitted.params, fitted.note
        self.state_ = fitted.theta[None]
        self._pairs = pairs
        return pairs

    def _refit(self, weights):
        return self.link_.refit(self.state_, weights(self._pairs))

    def _predict_state(self, state, units):
        if "value_loss" not in units:
            raise FitError(f"{self.method}: needs the observed {self.loss_} of every unit to predict")
        return self.link_.predict(state, as_loss(self.loss_, units["value_loss"]))

    def _units(self, rows):
        units = data.targets_to_predict(rows, self.target_)
        loss = data.values(rows, self.loss_, self.method, "the rows to predict")
        units = units.merge(loss[data.UNIT + ["value"]].rename(columns={"value": "value_loss"}),
                            on=data.UNIT, how="left")
        if units["value_loss"].isna().any():
            missing = units.loc[units["value_loss"].isna(), "model"].iloc[0]
            raise FitError(f"{self.method}: {missing} has no {self.loss_} row to link from; add it to --test")
        return units
