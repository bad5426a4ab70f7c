"""The "no change" forecast: the target's last observed value, carried forward.

Scoring guides insist on it (and on the straight lines of :mod:`pipeline.laws.baselines`) in every
comparison: a method that cannot beat carrying the largest training model's score forward to a
larger model has learned nothing about scale.  The value carried is the mean of the final
checkpoints of the training runs at the largest training compute (runs within
``TOP_RUNG_DECADES`` of it: an isoFLOP budget's runs, or pythia and pythia-deduped of one size).
"""
from __future__ import annotations

from typing import Literal

import numpy as np

from pipeline.laws import data
from pipeline.laws.base import Law

TOP_RUNG_DECADES = 0.05


class CarryForward(Law):
    """Predicts the mean final-checkpoint value of the training runs at the top compute rung."""

    method = "carry"

    def __init__(self, target, rows: Literal["all", "final", "frontier"] = "all", n_bootstrap: int = 200,
                 level: float = 0.9, random_state: int = 0):
        super().__init__(target, n_bootstrap, level, random_state)
        self.rows = rows

    def _fit(self, rows):
        units = data.values(rows, self.target_, self.method)
        units = units.loc[(units["tokens"] > 0) & (units["compute_flops"] > 0)].reset_index(drop=True)
        data.need(len(units), 1, self.method, f"rows of {self.target_}")
        final = data.final_units(units)
        log_c = np.log10(final["compute_flops"].to_numpy(float))
        self._top = final.loc[log_c >= log_c.max() - TOP_RUNG_DECADES, "model"].astype(str).to_numpy()
        self._train_units = units
        self.state_ = self._refit(lambda u: np.ones((1, len(u))))
        return units

    def _refit(self, weights):
        final = data.final_units(self._train_units)
        w = np.asarray(weights(final), float) * final["model"].astype(str).isin(self._top).to_numpy()[None, :]
        y = final["value"].to_numpy(float)[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.sum(w * y, axis=1) / np.sum(w, axis=1)
        fallback = float(np.mean(y[0][final["model"].astype(str).isin(self._top).to_numpy()]))
        return np.where(np.isfinite(mean), mean, fallback)[:, None]

    def _predict_state(self, state, units):
        return np.repeat(np.asarray(state, float)[:, :1], len(units), axis=1)
