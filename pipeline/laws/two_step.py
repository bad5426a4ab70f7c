"""Two-step task law: (N, D) -> loss -> accuracy (Bhagia et al. 2024, "Establishing Task Scaling
Laws via Compute-Efficient Model Ladders", arXiv:2412.04403; data in allenai/OLMo-ladder).

Step 1 fits a loss law (:mod:`pipeline.laws.loss`) on the loss rows of the training models;
step 2 fits a link (:mod:`pipeline.laws.link`) of the target accuracy on the *observed* loss of
every training checkpoint.  A prediction chains them: L = step1(N, D), Acc = step2(L).

Options (docs/laws.md, "Choices", says why):

* ``form``: the step-2 link, one of :data:`pipeline.laws.link.LINK_FORMS` (``log_logistic`` by
  default), or "auto";
* ``step1_rows`` ("all" checkpoints or one "final" point per run) and ``loss_floor`` ("free"
  irreducible loss or "zero"): the step-1 loss law's options (:class:`pipeline.laws.loss.LossLaw`),
  "auto" choosing them by the loss law's own nested extrapolation of the *loss* (a less noisy
  signal than accuracy, and one shared by every target of the same loss);
* an "auto" link form is chosen by nested extrapolation of the chained accuracy (not the default:
  one ladder's top rung is too little to choose a form by, docs/ladders.md)
  (:mod:`pipeline.laws.nested`): hold out the top rung, fit each form on the rest, keep the
  default (``log_logistic``) unless another predicts the rung better by more than the noise
  of the held-out scores, refit on everything;
* ``skip_fraction=0.1``: each run's checkpoints before 10% of its tokens are dropped from both
  steps (Bhagia et al.'s ``--skip_perc 0.1``; Pythia's warm-up and early transient);
* ``params="auto"``: non-embedding N (Kaplan et al. 2020) when every model's count is known
  (the ``params_non_embedding`` column, else the families registry), else the published total;
* ``loss_form``: the (N, D) law, or L(C) when D/N is fixed or D is the same for every point
  ("auto" decides from the rows).

Uncertainty: a cluster bootstrap over training models refits both steps on the same
resample (the step-1 refit is shared by every target with the same loss rows), plus the
benchmark's binomial noise and the scatter of the training accuracies around the *chained*
prediction, calibrated as in :mod:`pipeline.laws.intervals`, plus the nested extrapolation
error per decade beyond the training range.
"""
from __future__ import annotations

import hashlib
from typing import Literal

from pipeline.errors import FitError
from pipeline.laws import data
from pipeline.laws.base import Law
from pipeline.laws.link import AUTO_LINK_FORMS, check_form, fit_link, require_accuracy, resolve_loss
from pipeline.laws.loss import LossLaw

_CACHE = data.KeyCache(256)  # step-1 fits and refits, shared by every target with the same loss rows and weights


def _rows_key(rows, *options) -> str:
    h = hashlib.sha1()
    cols = ["model", "step", "family", "params", "tokens", "compute_flops", "value"]
    cols += [c for c in ("params_non_embedding",) if c in rows.columns]
    h.update(rows[cols].to_csv(index=False).encode())
    h.update(repr(options).encode())
    return h.hexdigest()


class TwoStep(Law):
    """Accuracy of ``target`` through the loss ``loss`` (both TASK:METRIC)."""

    method = "two_step"

    def __init__(self, target, loss=None, form: Literal["auto", "log_logistic", "hill", "bhagia", "gadre", "logistic", "log_linear"] = "log_logistic", step1_rows: Literal["auto", "all", "final"] = "auto",
                 loss_floor: Literal["auto", "free", "zero"] = "auto", loss_form: Literal["auto", "NxD", "C"] = "auto",
                 params: Literal["auto", "total", "non_embedding"] = "auto", skip_fraction: float = 0.1,
                 floor: Literal["auto", "chance", "free"] = "auto", unidentified: Literal["line", "keep"] = "line",
                 chance: float | None = None, loss_delta: float = 1e-3, link_delta: float = 0.01,
                 rows: Literal["all", "final", "frontier"] = "all",
                 n_bootstrap: int = 200, level: float = 0.9, random_state: int = 0):
        super().__init__(target, n_bootstrap, level, random_state)
        self.rows = rows
        self.loss, self.form, self.step1_rows, self.loss_floor = loss, form, step1_rows, loss_floor
        self.loss_form, self.params, self.skip_fraction, self.floor = loss_form, params, skip_fraction, floor
        self.chance, self.loss_delta, self.link_delta = chance, loss_delta, link_delta
        self.unidentified = unidentified

    def _candidates(self):
        return [{"form": f} for f in AUTO_LINK_FORMS] if check_form(self.form) == "auto" else []

    def _inner_fit_predict(self, options, train, test):
        # The inner fits that choose the link keep step 1's options as chosen on all training rows:
        # they score how the *link* extrapolates (and re-choosing step 1 inside each would cost a
        # nested choice per inner fit).
        fixed = {"step1_rows": self.step1_.chosen_.get("rows", self.step1_rows),
                 "loss_floor": self.step1_.chosen_.get("floor", self.loss_floor)}
        return super()._inner_fit_predict({**fixed, **options}, train, test)

    def _choose(self, rows):
        self.step1_ = self.step1(rows)
        super()._choose(rows)

    def step1(self, rows) -> LossLaw:
        """The step-1 loss law on the loss rows of ``rows`` (cached: every target shares it).

        Its "auto" options are chosen by the loss law's own nested extrapolation of the loss;
        with every option fixed it is fitted directly."""
        loss = resolve_loss(self.loss, self.target_, rows, self.method)
        loss_rows = data.values(rows, loss, self.method).assign(task=loss.task, metric=loss.metric)
        options = dict(form=self.loss_form, floor=self.loss_floor, rows=self.step1_rows, params=self.params,
                       skip_fraction=self.skip_fraction, huber_delta=self.loss_delta, n_bootstrap=0)
        key = _rows_key(loss_rows, str(loss), sorted(options.items()))

        def fit():
            law = LossLaw(str(loss), **options)
            return law.fit(loss_rows) if law._candidates() else law._fit_final(loss_rows)

        try:
            law = _CACHE.get(key, fit)
        except FitError as exc:  # the user asked for two_step: say so
            raise FitError(str(exc).replace(LossLaw.method, self.method, 1)) from None
        law.key_ = key
        return law

    def _fit(self, rows):
        target = self.target_
        require_accuracy(target, self.method)
        step1 = self.step1(rows)  # (cached: the same law _choose fitted, for the same rows)
        self.step1_, self.loss_ = step1, step1.target_
        self.loss_form_, self.param_kind_, self.loss_params_ = step1.loss_form_, step1.param_kind_, step1.params_
        self.params_used_ = step1.params_used_
        self.step1_choice_ = step1.form_
        loss_units = data.skip_early(data.values(rows, self.loss_, self.method), self.skip_fraction)
        pairs = data.join(data.values(rows, target, self.method), loss_units, "_loss")
        link = fit_link(pairs, target, self.loss_, self._opt("form"), self.floor, self.link_delta, self.method,
                        self._chance(rows), self.unidentified)
        self.link_, self.link_params_, self.link_note_ = link, link.params, link.note
        self.free_floor_ = link.curve.free_floor
        self.state_ = {"loss": step1.state_, "link": link.theta[None]}
        self.n_loss_points_, self.n_link_points_ = step1.n_train_, len(pairs)
        self._pairs = pairs
        return pairs

    def _refit(self, weights):
        """Both steps on every row of the weights: step 1 on its loss units, step 2 on the pairs."""
        step1 = self.step1_
        units, X, L = step1._train
        loss_theta = _CACHE.get(step1.key_ + weights.key, lambda: step1.curve_.refit(X, L, step1.state_, weights(units)))
        return {"loss": loss_theta, "link": self.link_.refit(self.state_["link"], weights(self._pairs))}

    def _loss_hat(self, state, units):
        return self.step1_.loss_hat(state["loss"], units)

    def _predict_state(self, state, units):
        # step 1 predicts the loss as fitted (a perplexity as its log), the scale step 2 was fitted on
        return self.link_.predict(state["link"], self._loss_hat(state, units))

    def _extra_columns(self, units) -> dict:
        return {"intermediate": self._loss_hat(self.state_, units)[0]}
