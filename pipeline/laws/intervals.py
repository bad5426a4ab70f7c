"""Prediction intervals: a cluster bootstrap over training models, measurement noise, and a
calibration of both on held-out parts of the training rows.

* Parameter uncertainty: resample the training *models* with replacement (each model takes
  all its checkpoints with it: checkpoints of one run are not independent), refit every
  step of the law on the resample (warm-started from the full fit), predict.  This is the
  bootstrap Besiroglu et al. 2024 use for the Chinchilla fit, at the level of runs.  A
  resample is a vector of weights over the training units, so all of them are fitted at once.
* Noise of the number itself: a held-out score is a measurement with standard error
  sqrt(p(1-p)/n) for an accuracy on n items.  We infer n from the stderr of the training rows
  of the same metric (n = p(1-p)/stderr^2, median) and evaluate it at the predicted p, so the
  held-out value is never looked at; rows without stderr contribute nothing here.
* Misfit: scatter of the training points around the fitted curve beyond their measurement
  noise (checkpoint-to-checkpoint variance, which Bhagia et al. 2024 find predicts their
  errors), estimated robustly (1.4826 * MAD) and added in quadrature.

The interval is the (1-level)/2 and (1+level)/2 quantiles of bootstrap predictions plus a
normal draw with the noise variance; seeded, so the same input gives the same interval.

Calibration (training rows only): split conformal (Lei et al. 2018) on refits that leave part
of the training rows out.  A bootstrap interval measures how much the fit moves, not how wrong
the law's shape is beyond the data, so its width is rescaled by the conformal quantile of
held-out standardised errors |y - prediction| / sqrt(spread^2 + noise^2), over the normal
quantile (widened or narrowed to the coverage held-out training rows had):

* forward: refit on the training units below the median training compute (with its own small
  bootstrap) and predict the units above, a miniature of a compute-cutoff split; this sizes the
  interval of a family the law was fitted on;
* later, where runs have several checkpoints (refit on each run's first half by tokens, predict
  its second half), or out-of-bag predictions (Kim, Xu & Barber 2020), where there is no forward
  holdout;
* family: refit without each training family in turn and predict it; the pooled errors size the
  interval of a unit whose family has no training rows (a leave-family-out forecast).

For forecasts up a ladder, :mod:`pipeline.laws.policy` replaces these intervals with ones
calibrated across many ladders (:class:`pipeline.laws.auto.Calibrated`).
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import pandas as pd

CALIBRATION_REPLICATES = 25
FORWARD_QUANTILE = 0.5
LATE_FRACTION = 0.5
MAX_FAMILIES = 8


@dataclass
class Weights:
    """Rows of weights over training units, evaluated on any frame of units (by model, family,
    compute), so that a law with several steps weights each step's own units consistently.
    ``key`` identifies the weights for caching fits that depend on them."""

    key: str
    fn: object
    groups: list = field(default_factory=list)  # (name, row slice) for holdout sets

    def __call__(self, units: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.fn(units), float)


def _digest(*parts) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:16]


def model_counts(models, n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cluster bootstrap over model names: (labels, counts (n_boot, n_labels))."""
    labels = np.unique(np.asarray(models).astype(str))
    draws = rng.integers(0, len(labels), size=(n_boot, len(labels)))
    counts = np.zeros((n_boot, len(labels)))
    np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1.0)
    return labels, counts


def expand(labels: np.ndarray, counts: np.ndarray, models) -> np.ndarray:
    """Per-unit weights (n_boot, n) for units of ``models`` (0 for models not in ``labels``)."""
    index = {m: i for i, m in enumerate(labels)}
    cols = np.array([index.get(str(m), -1) for m in models], dtype=int)
    out = np.zeros((counts.shape[0], len(cols)))
    ok = cols >= 0
    out[:, ok] = counts[:, cols[ok]]
    return out


def bootstrap(models, n_boot: int, seed) -> Weights:
    labels, counts = model_counts(models, n_boot, np.random.default_rng(seed))
    return Weights(f"boot:{_digest(seed, n_boot, tuple(labels))}", lambda u: expand(labels, counts, u["model"]))


def holdouts(train: pd.DataFrame, n_boot: int, seed) -> Weights | None:
    """Forward (compute above the 75th percentile) and leave-one-family-out refits of the
    training units, each as a plain refit plus ``n_boot`` bootstrap replicates."""
    compute = train["compute_flops"].to_numpy(float)
    threshold = float(np.quantile(compute, FORWARD_QUANTILE))
    sets = []
    if (compute > threshold).any() and train.loc[compute <= threshold, "model"].nunique() >= 3:
        sets.append(("forward", lambda u, t=threshold: u["compute_flops"].to_numpy(float) <= t))
    # later checkpoints of the same runs: each run's checkpoints past LATE_FRACTION of its tokens
    last = train.groupby("model")["tokens"].transform("max").to_numpy(float)
    late = train["step"].notna().to_numpy() & (train["tokens"].to_numpy(float) > LATE_FRACTION * last)
    tops = dict(zip(train["model"].astype(str), last))
    if late.any() and (~late).sum() >= 3 and train.groupby("model")["step"].nunique().max() >= 3:
        sets.append(("later", lambda u: ~(u["step"].notna().to_numpy() & (u["tokens"].to_numpy(float) > LATE_FRACTION
                     * u["model"].astype(str).map(tops).to_numpy(float)))))
    per_family = train.groupby(train["family"].astype(str))["model"].nunique()
    families = sorted(per_family.index) if len(per_family) >= 2 else []
    # leave-one-family-out: families with >= 2 models, the MAX_FAMILIES largest
    families = sorted(sorted((f for f in families if per_family[f] >= 2), key=lambda f: (-per_family[f], f))[:MAX_FAMILIES])
    for f in families:
        sets.append((f"family:{f}", lambda u, f=f: u["family"].astype(str).to_numpy() != f))
    if not sets:
        return None
    labels, counts = model_counts(train["model"], n_boot, np.random.default_rng(seed))
    groups, start = [], 0
    for name, _ in sets:
        groups.append((name, slice(start, start + n_boot + 1)))
        start += n_boot + 1

    def fn(u):
        boot = expand(labels, counts, u["model"])
        rows = []
        for _, keep in sets:
            k = keep(u).astype(float)
            rows.append(k[None, :])
            rows.append(boot * k[None, :])
        return np.vstack(rows)

    return Weights(f"hold:{_digest(seed, n_boot, threshold, tuple(families), tuple(labels))}", fn, groups)


def robust_sd(residuals) -> float:
    r = np.asarray(residuals, float)
    r = r[np.isfinite(r)]
    if r.size < 3:
        return 0.0
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


def items_from_stderr(values, stderr) -> float | None:
    """Benchmark size n implied by binomial stderr of the training rows (median), or None."""
    p = np.asarray(values, float)
    se = np.asarray(stderr, float)
    ok = np.isfinite(se) & (se > 0) & (p > 0) & (p < 1)
    if not ok.any():
        return None
    return float(np.median(p[ok] * (1 - p[ok]) / se[ok] ** 2))


def misfit_sd(residuals, stderr) -> float:
    """Scatter of training residuals beyond their measurement noise (>= 0)."""
    se = np.asarray(stderr, float)
    noise = float(np.nanmean(se**2)) if np.isfinite(se).any() else 0.0
    return float(np.sqrt(max(robust_sd(residuals) ** 2 - noise, 0.0)))


def noise_sd(predicted, n_items: float | None, misfit, accuracy: bool) -> np.ndarray:
    """Per-prediction noise: binomial at the predicted value (if n is known) and misfit."""
    p = np.clip(np.asarray(predicted, float), 0.0, 1.0)
    binom = np.sqrt(p * (1 - p) / n_items) if (accuracy and n_items) else np.zeros_like(p)
    return np.sqrt(binom**2 + np.asarray(misfit, float) ** 2)


def z_value(level: float) -> float:
    """Two-sided standard-normal quantile of a ``level`` interval (1.645 for 90%)."""
    return NormalDist().inv_cdf((1 + level) / 2)


MIN_SCORES = 5  # held-out errors a conformal factor needs; fewer: the next source, or none


def oob_scores(y, P, W, noise) -> dict:
    """Standardised out-of-bag errors of bootstrap predictions ``P`` (B, n) of resamples ``W``:
    "oob", each unit's error against its mean out-of-bag prediction over sqrt(spread^2 + noise^2)."""
    y = np.asarray(y, float)
    P = np.asarray(P, float)
    oob = (np.asarray(W) == 0) & np.isfinite(P)
    noise = np.broadcast_to(np.asarray(noise, float), y.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = np.sqrt(np.nanvar(P, axis=0) + noise**2 + 1e-12)
        mu = np.nanmean(np.where(oob, P, np.nan), axis=0)
        z = (np.abs(y - mu) / spread)[oob.sum(axis=0) >= 5]
    return {"oob": z[np.isfinite(z)]}


def holdout_scores(y, P, weights: Weights, W, noise) -> dict:
    """Per holdout set, the standardised errors of its plain refit on the units it left out
    (over the spread of its own bootstrap replicates and the noise)."""
    y = np.asarray(y, float)
    noise = np.broadcast_to(np.asarray(noise, float), y.shape)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for name, rows in weights.groups:
            held = W[rows][0] == 0
            point, draws = P[rows][0], P[rows][1:]
            z = np.abs(y - point) / np.sqrt(np.nanvar(draws, axis=0) + noise**2 + 1e-12)
            out[name] = z[held & np.isfinite(z)]
    return out


def conformal_quantile(scores, level: float) -> float:
    """The split-conformal quantile of ``scores``: the ceil((n + 1) level)-th smallest (the largest
    where n is too small for that), Lei et al. 2018."""
    z = np.sort(np.asarray(scores, float))
    k = int(np.ceil((len(z) + 1) * level))
    return float(z[min(k, len(z)) - 1])


def conformal_factors(scores: dict, level: float) -> dict:
    """Interval factors from held-out standardised errors: "seen" (a family the law was fitted
    on: the forward holdout's errors, else the later checkpoints', else out-of-bag) and "family"
    (a new family: every leave-one-family-out refit's errors pooled).  A factor is the conformal
    quantile over the normal quantile: below 1 it narrows the bootstrap interval."""
    out = {}
    for name in ("forward", "later", "oob"):
        z = scores.get(name, np.array([]))
        if len(z) >= MIN_SCORES:
            out[name] = conformal_quantile(z, level) / z_value(level)
            if "seen" not in out:
                out["seen"] = out[name]
    family = [z for k, z in scores.items() if k.startswith("family:")]
    pooled = np.concatenate(family) if family else np.array([])
    if len(pooled) >= MIN_SCORES:
        out["family"] = conformal_quantile(pooled, level) / z_value(level)
    return out


def unit_normals(seed, names, n: int) -> np.ndarray:
    """(n, len(names)) standard normals, each column drawn from its own generator seeded by
    ``seed`` and the unit's key: a unit's interval does not depend on which other units are
    predicted beside it."""
    import zlib

    cols = [np.random.default_rng(list(seed) + [zlib.crc32(str(name).encode())]).standard_normal(n) for name in names]
    return np.column_stack(cols) if cols else np.zeros((n, 0))


def interval(point, draws, noise, level: float, rng,
             bounds: tuple[float, float] | None = None, inflation=1.0, extra_sd=0.0) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of a ``level`` prediction interval around ``point`` (m,).

    ``draws`` (B, m) are bootstrap predictions (NaN = failed refit or no prediction, ignored);
    ``rng`` a Generator, or a function B -> (B, m) normals (:func:`unit_normals`).
    With no usable draws the interval is point +- z * noise.  ``inflation`` (scalar or per
    unit) scales both half-widths.  ``extra_sd`` (per unit): an error beyond what the draws see
    (the trends stage's extrapolation term), added to each half-width in quadrature as a normal error.
    """
    point = np.asarray(point, float)
    noise = np.broadcast_to(np.asarray(noise, float), point.shape)
    lo_q, hi_q = (1 - level) / 2, (1 + level) / 2
    draws = None if draws is None else np.asarray(draws, float)
    if draws is None or not np.isfinite(draws).any():
        z = z_value(level)
        lower, upper = point - z * noise, point + z * noise
    else:
        normals = rng(draws.shape[0]) if callable(rng) else rng.standard_normal(draws.shape)
        sim = draws + normals * noise
        # nanquantile loops over columns in Python; without NaN, quantile gives the same numbers at once
        quantile = np.nanquantile if np.isnan(sim).any() else np.quantile
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: units with no prediction
            lower = quantile(sim, lo_q, axis=0)
            upper = quantile(sim, hi_q, axis=0)
    lower, upper = np.minimum(lower, point), np.maximum(upper, point)
    z, extra = z_value(level), np.broadcast_to(np.asarray(extra_sd, float), point.shape)
    lower = point - np.hypot(inflation * (point - lower), z * extra)
    upper = point + np.hypot(inflation * (upper - point), z * extra)
    if bounds is not None:
        lower, upper = np.clip(lower, *bounds), np.clip(upper, *bounds)
    return lower, upper
