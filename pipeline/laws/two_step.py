"""Two-step task law: (N, D) -> loss -> accuracy (Bhagia et al. 2024, "Establishing Task Scaling
Laws via Compute-Efficient Model Ladders", arXiv:2412.04403; data in allenai/OLMo-ladder).

Step 1 fits a loss law (:mod:`pipeline.laws.loss`) on the loss rows of the training models;
every intermediate checkpoint (a Pythia ``step`` row) is one more (N, D) point.  Step 2 fits
the sigmoid link (:mod:`pipeline.laws.link`) of the target accuracy on the *observed* loss of
the same checkpoints.  A prediction chains them: L = step1(N, D), Acc = step2(L).

Choices (docs/laws.md, "Choices", says why):

* ``skip_fraction=0.1``: each run's checkpoints before 10% of its tokens are dropped from both
  steps (Bhagia et al.'s ``--skip_perc 0.1``; Pythia's warm-up and early transient);
* ``params="auto"``: non-embedding N (Kaplan et al. 2020) when every model's count is known
  (a ``params_non_embedding`` column or the families registry), else the published total;
* ``form``: the (N, D) law, or L(C) when D/N is fixed ("auto" decides from the rows);
* ``link_scale="log"``: the sigmoid is in log L; ``floor="auto"``: chance unless the training
  accuracies sit below it.

Uncertainty: a cluster bootstrap over training models refits both steps on the same
resample (the step-1 refit is shared by every target with the same loss rows), plus the
benchmark's binomial noise and the scatter of the training accuracies around the *chained*
prediction (so one run's deviation from the loss law counts too), in quadrature, calibrated as
in :mod:`pipeline.laws.intervals`.
"""
from __future__ import annotations

import hashlib

from pipeline.laws import data
from pipeline.laws.base import Law
from pipeline.laws.link import fit_link, link_x, require_accuracy, resolve_loss
from pipeline.laws.loss import design, fit_loss

_CACHE: dict[str, object] = {}


def _cached(key: str, compute):
    """Step-1 fits and refits are shared by every target with the same loss rows and weights."""
    if key not in _CACHE:
        if len(_CACHE) > 128:
            _CACHE.clear()
        _CACHE[key] = compute()
    return _CACHE[key]


def _units_key(units, loss, *options) -> str:
    h = hashlib.sha1()
    cols = ["model", "step", "family", "params", "tokens", "compute_flops", "value"]
    cols += [c for c in ("params_non_embedding",) if c in units.columns]
    h.update(units[cols].to_csv(index=False).encode())
    h.update(repr((str(loss),) + options).encode())
    return h.hexdigest()


class TwoStep(Law):
    """Accuracy of ``target`` through the loss ``loss`` (both TASK:METRIC)."""

    method = "two_step"

    def __init__(self, target, loss=None, form: str = "auto", params: str = "auto", skip_fraction: float = 0.1,
                 link_scale: str = "log", floor: str = "auto", chance: float | None = None, loss_delta: float = 1e-3,
                 link_delta: float = 0.01, n_bootstrap: int = 200, level: float = 0.9, random_state: int = 0):
        super().__init__(target, n_bootstrap, level, random_state)
        self.chance = chance
        self.loss, self.form, self.params, self.skip_fraction = loss, form, params, skip_fraction
        self.link_scale, self.floor, self.loss_delta, self.link_delta = link_scale, floor, loss_delta, link_delta

    def _fit(self, rows):
        target = self.target_
        require_accuracy(target, self.method)
        self.loss_ = resolve_loss(self.loss, target, rows, self.method)
        loss_units = data.with_extra(
            data.skip_early(data.values(rows, self.loss_, self.method), self.skip_fraction), rows)
        self._key = _units_key(loss_units, self.loss_, self.form, self.params, self.loss_delta)
        step1 = _cached(self._key, lambda: fit_loss(loss_units, self.loss_, self.form, self.params,
                                                    self.loss_delta, self.method))
        self.form_, self.loss_curve_, self.param_kind_ = step1["form"], step1["curve"], step1["param_kind"]
        self.loss_params_ = step1["params"]

        pairs = data.with_extra(data.join(data.values(rows, target, self.method), loss_units, "_loss"), rows)
        fitted = fit_link(pairs, target, self.loss_, self.link_scale, self.floor, self.link_delta, self.method,
                          self._chance(rows))
        self.link_curve_, self.link_params_ = fitted["curve"], fitted["params"]
        self.free_floor_ = self.link_curve_.free_floor
        self.state_ = {"loss": step1["theta"][None], "link": fitted["theta"][None]}
        self.n_loss_points_, self.n_link_points_ = len(loss_units), len(pairs)
        self._train = (loss_units, step1, pairs, fitted)
        return pairs

    def _refit(self, weights):
        """Both steps on every row of the weights: step 1 on the loss units, step 2 on the pairs."""
        loss_units, step1, pairs, fitted = self._train

        loss_theta = _cached(self._key + weights.key, lambda: step1["curve"].refit(
            step1["X"], step1["L"], step1["theta"], weights(loss_units)))
        link_theta = self.link_curve_.refit(fitted["x"], fitted["y"], self.state_["link"], weights(pairs))
        return {"loss": loss_theta, "link": link_theta}

    def _loss_hat(self, state, units):
        N = data.param_counts(units, self.param_kind_)
        X = design(self.form_, N, units["tokens"].to_numpy(float), units["compute_flops"].to_numpy(float))
        return self.loss_curve_.predict(state["loss"], X)

    def _predict_state(self, state, units):
        x = link_x(self._loss_hat(state, units), self.link_scale)[..., None]
        return self.link_curve_.predict(state["link"], x)

    def _extra_columns(self, units) -> dict:
        return {"intermediate": self._loss_hat(self.state_, units)[0]}
