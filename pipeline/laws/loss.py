"""Loss laws: L(N, D) = E + A/N^alpha + B/D^beta and L(C) = E + A/C^gamma.

Hoffmann et al. 2022 ("Training Compute-Optimal Large Language Models") proposed the
(N, D) form; capcast fits it as in the replication by Besiroglu et al. 2024 ("Chinchilla
Scaling: A replication attempt"): Huber loss (delta = 1e-3) on log L in the log-sum-exp
parameterisation, from every point of their grid of 4,500 starts, keeping the best.  (They
run L-BFGS from each start; here a batched Levenberg-Marquardt/IRLS on the same objective
runs all starts at once, see :mod:`pipeline.laws.optim`.)

The compute-only form is for families whose tokens-per-parameter is fixed (Cerebras-GPT, 20
tokens per parameter), where N and D are collinear and the (N, D) form is not identified.

The loss can be a task loss (``nll``, ``bpb``: Bhagia et al. 2024) or a general one; a
perplexity (``ppl``) is fitted as its log, i.e. the mean negative log-likelihood.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.errors import FitError
from pipeline.laws import data
from pipeline.laws.base import CurveLaw
from pipeline.laws.curves import Chinchilla, PowerCompute
from pipeline.laws.data import Metric

PERPLEXITIES = {"ppl", "perplexity", "byte_perplexity", "word_perplexity"}


def as_loss(metric: Metric, values) -> np.ndarray:
    """The loss a law fits: log of a perplexity, the value itself for nll/bpb/xent."""
    v = np.asarray(values, float)
    if metric.metric.split(",")[0] in PERPLEXITIES:
        if (v <= 1).any():
            raise FitError(f"{metric}: perplexities must be > 1 to take their log")
        return np.log(v)
    if (v <= 0).any():
        raise FitError(f"{metric}: loss values must be > 0 for a power law (found {v.min():g})")
    return v


def collinear(N, D) -> bool:
    """True when D/N is (nearly) the same for every point: (N, D) then carries one scale."""
    ratio = np.log(np.asarray(D, float)) - np.log(np.asarray(N, float))
    return bool(np.ptp(ratio) < 0.05) if ratio.size else False


def choose_form(form: str, N, D) -> str:
    if form == "auto":
        return "C" if collinear(N, D) else "NxD"
    if form not in ("NxD", "C"):
        raise FitError(f"loss law form must be 'NxD', 'C' or 'auto', not {form!r}")
    return form


def design(form: str, N, D, C) -> np.ndarray:
    if form == "NxD":
        return np.column_stack([np.log(N), np.log(D)])
    return np.log(np.asarray(C, float))[:, None]


class LossLaw(CurveLaw):
    """A loss law fitted on the rows of one loss metric (``target``, e.g. ``lambada_openai:ppl``).

    ``form``: "NxD", "C" or "auto" (C when D/N is constant).  ``params``: "total",
    "non_embedding" or "auto" (non-embedding when known for every model) N.  ``skip_fraction``: drop each run's checkpoints before this fraction of
    its tokens.  ``predict`` returns the loss in the metric's own units (perplexity for ppl).
    """

    method = "loss_law"

    def __init__(self, target, form: str = "auto", params: str = "auto", skip_fraction: float = 0.1,
                 huber_delta: float = 1e-3, n_bootstrap: int = 200, level: float = 0.9, random_state: int = 0):
        super().__init__(target, n_bootstrap, level, random_state)
        self.form, self.params, self.skip_fraction, self.huber_delta = form, params, skip_fraction, huber_delta

    def _fit(self, rows):
        metric = self.target_
        units = data.with_extra(data.skip_early(data.values(rows, metric, self.method), self.skip_fraction), rows)
        fitted = fit_loss(units, metric, self.form, self.params, self.huber_delta, self.method)
        self.form_, self.curve_, self.params_ = fitted["form"], fitted["curve"], fitted["params"]
        self.param_kind_ = fitted["param_kind"]
        self.state_ = fitted["theta"][None]
        self._train = (units, fitted["X"], fitted["L"])
        return units

    def _predict_state(self, state, units):
        X = design(self.form_, data.param_counts(units, self.param_kind_), units["tokens"].to_numpy(float),
                   units["compute_flops"].to_numpy(float))
        loss = self.curve_.predict(state, X)
        return np.exp(loss) if self.target_.metric.split(",")[0] in PERPLEXITIES else loss


def fit_loss(units: pd.DataFrame, metric: Metric, form: str, params: str, delta: float, law: str) -> dict:
    """Fit a loss law on loss units; FitError on too few points or no convergence."""
    params = data.param_kind(units, params)
    N = data.param_counts(units, params)
    D, C = units["tokens"].to_numpy(float), units["compute_flops"].to_numpy(float)
    L = as_loss(metric, units["value"])
    form = choose_form(form, N, D)
    curve = Chinchilla(delta) if form == "NxD" else PowerCompute(delta)
    name = "L(N,D)" if form == "NxD" else "L(C)"
    data.need(len(L), curve.n_params, f"{law} {name}", f"points (models x checkpoints) of {metric}")
    sizes = np.unique(np.round(np.log(N if form == "NxD" else C), 6)).size
    if sizes < 3:
        raise FitError(f"{law}: {sizes} distinct model {'sizes' if form == 'NxD' else 'compute budgets'} "
                       f"in the training rows of {metric}; {name} needs at least 3; widen --train")
    X = design(form, N, D, C)
    theta, _, ok = curve.fit(X, L)
    if not ok or not np.isfinite(theta).all():
        raise FitError(f"{law}: the {name} fit on {len(L)} points of {metric} did not converge; "
                       f"check those rows (or try form: {'C' if form == 'NxD' else 'NxD'})")
    return {"form": form, "curve": curve, "theta": theta, "params": curve.readable(theta), "X": X, "L": L,
            "param_kind": params}
