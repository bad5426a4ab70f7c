"""The link from a loss to an accuracy: Acc(L) = a / (1 + exp(-k (x - x0))) + b.

Bhagia et al. 2024 ("Establishing Task Scaling Laws via Compute-Efficient Model Ladders",
step 2) fit accuracy as a sigmoid of the task loss on all checkpoints of the ladder, with the
floor (a + b, loss -> infinity) near chance and the ceiling b <= 1.  capcast's choices:

* floor fixed at the task's chance level (:func:`pipeline.scores.chance`), unless the training
  accuracies sit significantly below it ("auto", see :func:`pipeline.laws.base.floor_is_free`);
  ceiling in (floor, 1];
* Huber loss with delta = 0.01 (one accuracy point): single noisy checkpoints do not pull
  the curve (the reference code uses plain least squares);
* ``scale="log"``: x = log L, i.e. a log-logistic (Hill) curve in L.  A loss is positive and
  scales as a power law, so its natural axis is logarithmic; on the Pythia ladder a sigmoid in
  L cannot follow both the slow approach to chance at high loss and the steep gain at low loss,
  while one in log L can (docs/laws.md, "Choices").  ``scale="linear"`` is the reference form.

:class:`Link` fits and applies step 2 alone (given observed losses), the "step 2 from the true
task loss" diagnostic of Bhagia et al.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline import scores
from pipeline.errors import FitError
from pipeline.laws import data
from pipeline.laws.base import CurveLaw, floor_is_free
from pipeline.laws.curves import Sigmoid
from pipeline.laws.data import Metric
from pipeline.laws.loss import as_loss


def link_x(loss_values, scale: str) -> np.ndarray:
    if scale == "log":
        return np.log(np.asarray(loss_values, float))
    if scale == "linear":
        return np.asarray(loss_values, float)
    raise FitError(f"link scale must be 'log' or 'linear', not {scale!r}")


def resolve_loss(loss, target: Metric, rows: pd.DataFrame, law: str) -> Metric:
    """The loss metric: as given, or the target task's only loss metric in ``rows``."""
    if loss:
        return Metric.parse(loss, "--loss")
    own = sorted({m for t, m in zip(rows["task"], rows["metric"])
                  if t == target.task and scores.metric_kind(m) == "loss"})
    if len(own) == 1:
        return Metric(target.task, own[0])
    losses = sorted({f"{t}:{m}" for t, m in zip(rows["task"], rows["metric"]) if scores.metric_kind(m) == "loss"})
    raise FitError(f"{law}: name the loss with --loss TASK:METRIC (losses in the training rows: "
                   f"{', '.join(losses[:8]) or 'none'})")


def require_accuracy(target: Metric, law: str) -> None:
    if target.kind != "accuracy":
        raise FitError(f"{law}: target {target} is not an accuracy in [0, 1] (its sigmoid link needs one); "
                       f"use --method loglinear or observational")


def fit_link(pairs: pd.DataFrame, target: Metric, loss: Metric, scale: str, floor: str, delta: float,
             law: str, chance: float) -> dict:
    """Fit Acc(x) on units with both the target value and the observed loss (``value_loss``)."""
    x = link_x(as_loss(loss, pairs["value_loss"]), scale)
    y, se = pairs["value"].to_numpy(float), pairs["stderr"].to_numpy(float)
    curve = Sigmoid(x, chance, direction=-1, free_floor=floor_is_free(floor, y, se, chance), delta=delta)
    data.need(len(y), curve.n_params + 1, f"{law} link", f"points with both {target} and {loss}")
    theta, _, ok = curve.fit(x[:, None], y)
    if not ok:
        raise FitError(f"{law}: the sigmoid link of {target} on {loss} did not converge ({len(y)} points); "
                       f"check those rows or try floor: free")
    return {"curve": curve, "theta": theta, "x": x[:, None], "y": y, "stderr": se,
            "params": curve.readable(theta)}


class Link(CurveLaw):
    """Step 2 alone: accuracy from the *observed* loss of each unit (needs its loss rows)."""

    method = "link"

    def __init__(self, target, loss=None, scale: str = "log", floor: str = "auto", chance: float | None = None,
                 huber_delta: float = 0.01, skip_fraction: float = 0.1, n_bootstrap: int = 200, level: float = 0.9,
                 random_state: int = 0):
        super().__init__(target, n_bootstrap, level, random_state)
        self.loss, self.scale, self.floor, self.chance = loss, scale, floor, chance
        self.huber_delta, self.skip_fraction = huber_delta, skip_fraction

    def _fit(self, rows):
        target = self.target_
        require_accuracy(target, self.method)
        self.loss_ = resolve_loss(self.loss, target, rows, self.method)
        pairs = data.skip_early(data.join(data.values(rows, target, self.method),
                                          data.values(rows, self.loss_, self.method), "_loss"), self.skip_fraction)
        fitted = fit_link(pairs, target, self.loss_, self.scale, self.floor, self.huber_delta, self.method,
                          self._chance(rows))
        self.curve_, self.params_ = fitted["curve"], fitted["params"]
        self.state_ = fitted["theta"][None]
        self._train = (pairs, fitted["x"], fitted["y"])
        return pairs

    def _x(self, units):
        if "value_loss" not in units:
            raise FitError(f"{self.method}: needs the observed {self.loss_} of every unit to predict")
        return link_x(as_loss(self.loss_, units["value_loss"]), self.scale)[:, None]

    def _predict_state(self, state, units):
        return self.curve_.predict(state, self._x(units))

    def _units(self, rows):
        units = data.targets_to_predict(rows, self.target_)
        loss = data.values(rows, self.loss_, self.method, "the rows to predict")
        units = units.merge(loss[data.UNIT + ["value"]].rename(columns={"value": "value_loss"}),
                            on=data.UNIT, how="left")
        if units["value_loss"].isna().any():
            missing = units.loc[units["value_loss"].isna(), "model"].iloc[0]
            raise FitError(f"{self.method}: {missing} has no {self.loss_} row to link from; add it to --test")
        return units
