"""Single-step laws: the metric straight from log compute.

* :class:`LogLinear` — y = c0 + c1 * log C, least squares.  The "accuracy from (N, D)"
  straw man of Bhagia et al. 2024 (8.3 points on their 13B target) in its simplest form.
* :class:`SigmoidCompute` — y = floor + (ceiling - floor) * sigmoid(k (log C - x0)), floor at
  the task's chance level (same rule as the two-step link), ceiling <= 1, Huber fit; the
  log-FLOPs baseline of Ruan et al. 2024 (their emergent tasks: 15.1 points MAE).
* :class:`Direct` — the one-step method: Krajewski et al. 2025's power law on log accuracy
  (``form="power"``: with y' = (y - chance)/(1 - chance), log(-log y') = a log C + b, least
  squares, points with y' outside (0, 1) dropped; ceiling 1 by construction) or the sigmoid
  above (``form="sigmoid"``), or chosen by nested extrapolation (``form="auto"``); the power law by
  default: which method to trust is learned across ladders (:mod:`pipeline.laws.policy`).

All use the same training units as the other laws (including the same skip of each run's
early checkpoints), so a backtest compares methods on identical rows.
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from pipeline.errors import FitError
from pipeline.laws import data
from pipeline.laws.base import CurveLaw, floor_is_free
from pipeline.laws.curves import Linear, PowerDecay, Sigmoid
from pipeline.laws.link import require_accuracy

DIRECT_FORMS = ("power", "sigmoid")


def _log_compute(units) -> np.ndarray:
    return np.log(units["compute_flops"].to_numpy(float))[:, None]


# (law, row set) -> the name of that preset (pipeline.laws.PRESETS): what messages call the law
PRESET_NAMES = {("loglinear", "final"): "line_final", ("loglinear", "frontier"): "line_frontier",
                ("sigmoid", "final"): "sigmoid_final"}


class _ComputeLaw(CurveLaw):
    """A curve of x = log C fitted to the target."""

    law = "law"

    @property
    def method(self) -> str:
        """The law's name in messages: its preset's where its row set makes one (``loglinear``
        through each run's final checkpoint is ``line_final``)."""
        return PRESET_NAMES.get((self.law, self.rows), self.law)

    def __init__(self, target, skip_fraction: float = 0.1, rows: Literal["all", "final", "frontier"] = "all",
                 n_bootstrap: int = 200, level: float = 0.9, random_state: int = 0):
        super().__init__(target, n_bootstrap, level, random_state)
        self.skip_fraction, self.rows = skip_fraction, rows

    def _make_curve(self, x, y, stderr, rows):  # pragma: no cover - interface
        raise NotImplementedError

    def _fit(self, rows):
        target = self.target_
        units = data.skip_early(data.values(rows, target, self.method), self.skip_fraction)
        x, y = _log_compute(units), units["value"].to_numpy(float)
        self.curve_ = self._make_curve(x[:, 0], y, units["stderr"].to_numpy(float), rows)
        if isinstance(self.curve_, PowerDecay):  # its transform is defined for chance < y < 1 only
            keep = self.curve_.usable(y)
            units, x, y = units.loc[keep].reset_index(drop=True), x[keep], y[keep]
            self.curve_ = PowerDecay(x[:, 0], self.curve_.chance)
        data.need(len(y), self.curve_.n_params + 1, self.method, f"points of {target}"
                  + (" above chance" if isinstance(self.curve_, PowerDecay) else ""))
        if np.unique(np.round(x, 6)).size < 2:
            raise FitError(f"{self.method}: all training rows of {target} have the same compute; widen --train")
        theta, _, ok = self.curve_.fit(x, y)
        if not ok:
            raise FitError(f"{self.method}: the fit of {target} against log compute did not converge "
                           f"({len(y)} points); check the rows selected by --train")
        self.state_ = theta[None]
        self.params_ = self.curve_.readable(theta)
        self._train = (units, x, y)
        return units

    def _predict_state(self, state, units):
        return self.curve_.predict(state, _log_compute(units))


class LogLinear(_ComputeLaw):
    """Metric linear in log training compute (least squares)."""

    law = "loglinear"

    def _make_curve(self, x, y, stderr, rows):
        return Linear(x)


class SigmoidCompute(_ComputeLaw):
    """Metric as a sigmoid of log training compute, floor at chance, ceiling <= 1 (Huber)."""

    law = "sigmoid"

    def __init__(self, target, floor: Literal["auto", "chance", "free"] = "auto", chance: float | None = None,
                 huber_delta: float = 0.01, skip_fraction: float = 0.1,
                 rows: Literal["all", "final", "frontier"] = "all", n_bootstrap: int = 200, level: float = 0.9,
                 random_state: int = 0):
        super().__init__(target, skip_fraction, rows, n_bootstrap, level, random_state)
        self.floor, self.chance, self.huber_delta = floor, chance, huber_delta

    def _make_curve(self, x, y, stderr, rows):
        target = self.target_
        require_accuracy(target, self.method)
        chance = self._chance(rows)
        free = floor_is_free(self.floor, y, stderr, chance)
        return Sigmoid(x, chance, direction=+1, free_floor=free, delta=self.huber_delta)


class Direct(SigmoidCompute):
    """Accuracy straight from log compute in ``form`` "power" (Krajewski et al. 2025, arXiv
    2512.08894, equation 2), "sigmoid" (as :class:`SigmoidCompute`) or "auto" (nested choice)."""

    law = "direct"

    def __init__(self, target, form: Literal["auto", "power", "sigmoid"] = "power",
                 floor: Literal["auto", "chance", "free"] = "auto", chance: float | None = None,
                 huber_delta: float = 0.01, skip_fraction: float = 0.1, rows: Literal["all", "final", "frontier"] = "all",
                 n_bootstrap: int = 200, level: float = 0.9, random_state: int = 0):
        super().__init__(target, floor, chance, huber_delta, skip_fraction, rows, n_bootstrap, level, random_state)
        self.form = form

    def _candidates(self):
        if self.form == "auto":
            return [{"form": f} for f in DIRECT_FORMS]
        if self.form not in DIRECT_FORMS:
            raise FitError(f"direct: form must be 'auto' or one of {', '.join(DIRECT_FORMS)}, not {self.form!r}")
        return []

    def _make_curve(self, x, y, stderr, rows):
        if self._opt("form") == "sigmoid":
            return super()._make_curve(x, y, stderr, rows)
        require_accuracy(self.target_, self.method)
        return PowerDecay(x, self._chance(rows))
