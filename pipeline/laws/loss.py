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

from typing import Literal

import numpy as np
import pandas as pd

from pipeline.errors import FitError
from pipeline.laws import data, nested
from pipeline.laws.base import CurveLaw
from pipeline.laws.curves import Chinchilla, ChinchillaNoFloor, PowerCompute, PowerComputeNoFloor
from pipeline.laws.data import Metric

PERPLEXITIES = {"ppl", "perplexity", "byte_perplexity", "word_perplexity"}
LOSS_FLOORS = ("free", "zero")
LOSS_ROWS = ("all", "final")
FINAL_WINDOW = 0.1  # "final" rows: checkpoints in the last 10% of a run's tokens ...
FINAL_K = 5  # ... at most its last 5 (the reference code's moving average of 5 logged rows)


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


def d_varies_with_n_fixed(N, D) -> bool:
    """True when, among at least three sizes, some size has more than one token count (by > 5%).

    Only then does D vary independently of N and can the (N, D) law tell the two apart.  Where
    every size has one D (final checkpoints: Cerebras-GPT's 20 tokens per parameter, OPT's and
    BLOOM's one token count for every size), D is a function of N and only L(C) is identified.
    """
    n = np.round(np.log(np.asarray(N, float)), 3)
    d = np.log(np.asarray(D, float))
    return np.unique(n).size >= 3 and any(np.ptp(d[n == v]) > 0.05 for v in np.unique(n))


def choose_form(form: str, N, D) -> str:
    """ "auto": L(N, D) where D varies at a fixed N (:func:`d_varies_with_n_fixed`), else L(C)."""
    if form == "auto":
        return "NxD" if d_varies_with_n_fixed(N, D) and not collinear(N, D) else "C"
    if form not in ("NxD", "C"):
        raise FitError(f"loss law form must be 'NxD', 'C' or 'auto', not {form!r}")
    return form


def design(form: str, N, D, C) -> np.ndarray:
    if form == "NxD":
        return np.column_stack([np.log(N), np.log(D)])
    return np.log(np.asarray(C, float))[:, None]


def final_points(units: pd.DataFrame) -> pd.DataFrame:
    """One loss point per run (model): the mean over its checkpoints in the last FINAL_WINDOW of
    its tokens (at most the last FINAL_K), at the last checkpoint's step, tokens and compute."""
    units = units.sort_values(["model", "tokens"], kind="mergesort")
    last = units.groupby("model")["tokens"].transform("max")
    late = units.loc[units["tokens"] >= (1 - FINAL_WINDOW) * last]
    late = late.groupby("model", sort=True).tail(FINAL_K)
    value = late.groupby("model")["value"].mean()
    out = late.groupby("model", sort=True).tail(1).set_index("model")
    out["value"] = value
    out["stderr"] = np.nan
    return data.canonical(out.reset_index())


def has_runs(units: pd.DataFrame) -> bool:
    """Whether some run has more than one checkpoint (else "final" is the same rows as "all")."""
    return bool((units.groupby("model").size() > 1).any())


class LossLaw(CurveLaw):
    """A loss law fitted on the rows of one loss metric (``target``, e.g. ``lambada_openai:ppl``).

    * ``form``: "NxD", "C" or "auto" (:func:`choose_form`);
    * ``floor``: "free" (the irreducible loss E is fitted), "zero" (E = 0: pure power laws) or
      "auto";
    * ``rows``: "all" (every checkpoint is an (N, D) point) or "final" (one point per run, the
      mean of its checkpoints in the last FINAL_WINDOW of its tokens, at most FINAL_K, at its
      last D, as Bhagia et al.'s reference code does with its last 5 logged rows: a checkpoint
      in the middle of a run with its own learning-rate schedule is not the loss of a finished
      run of that D), or "auto";
    * "auto" options are chosen together by nested extrapolation (:mod:`pipeline.laws.nested`):
      hold out the top rung, fit each combination on the rest, keep the one whose loss
      predictions there are best, refit on all rows;
    * ``params``: "total", "non_embedding" or "auto" (non-embedding when known for every model);
    * ``skip_fraction``: drop each run's checkpoints before this fraction of its tokens.

    ``predict`` returns the loss in the metric's own units (perplexity for ppl).
    """

    method = "loss_law"
    folds = nested.FOLDS

    def __init__(self, target, form: Literal["auto", "NxD", "C"] = "auto", floor: Literal["auto", "free", "zero"] = "auto",
                 rows: Literal["auto", "all", "final"] = "auto",
                 params: Literal["auto", "total", "non_embedding"] = "auto",
                 skip_fraction: float = 0.1, huber_delta: float = 1e-3, n_bootstrap: int = 200, level: float = 0.9,
                 random_state: int = 0):
        super().__init__(target, n_bootstrap, level, random_state)
        self.form, self.floor, self.rows, self.params = form, floor, rows, params
        self.skip_fraction, self.huber_delta = skip_fraction, huber_delta

    def _candidates(self):
        for name, value, allowed in (("floor", self.floor, LOSS_FLOORS), ("rows", self.rows, LOSS_ROWS)):
            if value != "auto" and value not in allowed:
                raise FitError(f"loss law {name} must be 'auto' or one of {', '.join(allowed)}, not {value!r}")
        floors = LOSS_FLOORS if self.floor == "auto" else (self.floor,)
        rows = LOSS_ROWS if self.rows == "auto" else (self.rows,)
        auto = [k for k in ("rows", "floor") if getattr(self, k) == "auto"]
        combos = [{"rows": r, "floor": f} for r in rows for f in floors]
        return [{k: c[k] for k in auto} for c in combos] if auto else []

    def units(self, rows) -> pd.DataFrame:
        """The loss units of ``rows`` that this law fits (after the skip, and per ``rows``)."""
        units = data.skip_early(data.values(rows, self.target_, self.method), self.skip_fraction)
        return final_points(units) if self._opt("rows") == "final" and has_runs(units) else units

    def _fit(self, rows):
        metric = self.target_
        units = self.units(rows)
        fitted = fit_loss(units, metric, self.form, self._opt("floor"), self.params, self.huber_delta, self.method)
        self.loss_form_, self.curve_, self.params_ = fitted["form"], fitted["curve"], fitted["params"]
        self.param_kind_ = fitted["param_kind"]
        self.params_used_ = data.param_source(units, self.param_kind_)
        self.state_ = fitted["theta"][None]
        self.fitted_ = fitted
        self._train = (units, fitted["X"], fitted["L"])
        return units

    def loss_hat(self, state, units) -> np.ndarray:
        """The fitted loss (a perplexity as its log, the scale it was fitted on) under each state row."""
        X = design(self.loss_form_, data.param_counts(units, self.param_kind_), units["tokens"].to_numpy(float),
                   units["compute_flops"].to_numpy(float))
        return self.curve_.predict(state, X)

    def _predict_state(self, state, units):
        loss = self.loss_hat(state, units)
        return np.exp(loss) if self.target_.metric.split(",")[0] in PERPLEXITIES else loss


def fit_loss(units: pd.DataFrame, metric: Metric, form: str, floor: str, params: str, delta: float,
             law: str) -> dict:
    """Fit a loss law on loss units; FitError on too few points or no convergence."""
    params = data.param_kind(units, params)
    N = data.param_counts(units, params)
    D, C = units["tokens"].to_numpy(float), units["compute_flops"].to_numpy(float)
    L = as_loss(metric, units["value"])
    form = choose_form(form, N, D)
    if form == "NxD":
        curve = Chinchilla(delta) if floor == "free" else ChinchillaNoFloor(delta)
    else:
        curve = PowerCompute(delta) if floor == "free" else PowerComputeNoFloor(delta)
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
