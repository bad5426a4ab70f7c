"""Intervals that hold on a ladder the method has not seen: normalised split conformal in link space.

A method's interval at a new forecast is its point forecast plus or minus q x sigma(x) in link
space, mapped back to accuracy:

* link space (for accuracies): z = logit((y - floor) / (1 - floor)), with the floor at the task's
  chance level (at 0 where the training values themselves sit below chance: inverse-scaling
  tasks, adversarial distractors), so that every interval stays inside [floor, 1];
* sigma(x) (Papadopoulos et al. 2008; Lei et al. 2018, section 5.2): the measurement noise of the
  value in link space (its stderr through the link's slope) and a forecast error that grows with
  what makes forecasts harder, exp(theta . phi(x)) over the forecast's features phi (decades of
  compute beyond the training runs, that distance relative to the training range, the task's
  noise, how far up from chance the ladder is, its slope, whether its runs have checkpoints);
  theta is fitted by the Laplace likelihood of the calibration errors;
* q: the (1 - alpha)(1 + 1/n) quantile of the calibration errors divided by their sigma (Lei,
  G'Sell, Rinaldo, Tibshirani & Wasserman 2018): finite-sample coverage when the new forecast is
  exchangeable with the calibration forecasts;
* the measurement noise: every interval is at least the central band of the value's own noise
  around its point (:func:`measurement_band`), so a forecast near chance reaches the measured values
  below chance that noise puts there (the only way an interval leaves [floor, 1]);
* a centre: where the nearest calibration forecasts erred to one side (a method that runs low on
  emergent-looking ladders), the interval is centred on their median signed score and q is the
  quantile of the scores' distances from it: the same finite-sample argument on shifted scores,
  one tail quantile taken over every neighbour rather than each tail over a twentieth of them.

The calibration errors are those of the same method on *other* ladders (leave-one-ladder-group-out,
:mod:`pipeline.ladders`), at distances like the ones forecast: an error measured one rung out says
nothing about a forecast twenty times further.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit, logit, ndtr, ndtri

EPS = 1e-3  # link-space clip: an accuracy within 0.1% of its floor or ceiling
MIN_FRACTION = 0.02  # the link's slope is taken no steeper than at 2% from a bound (noise through it)
BELOW_CHANCE = 2.0  # stderr: training values this far below chance put the floor at 0
PHI = ("one", "distance", "relative", "log_noise", "level", "slope", "abs_slope", "top_slope", "curvature",
       "checkpointed", "log_runs_per_budget", "log_spread", "log_misfit", "log_rung_error")
EXTRAPOLATED = ("distance", "relative")  # the scale model's features read past the calibration's range
MIN_SPREAD = 0.02  # link units: candidates closer than this agree
LOG_FLOOR = 0.01  # link units added to |e| before its log: errors below it are all "none"
SMOOTH = 0.05  # width of the pinball loss's smoothing, in log units
# calibration forecasts a local quantile is taken over: 50 rather than 150 lowered the interval score on
# fresh zoo seeds no calibration ladder is (10 designs, at 4x and 16x), most on emergent tasks
# (docs/ladders.md; benchmarks/interval_variants.py compares 25-400 on the forecast table)
NEIGHBOURS = 50
RIDGE = 1e-3  # on the scale model's slopes: keeps it finite where a feature does not vary


def floor_of(chance: float, train_values, train_stderr) -> float:
    """The link's lower bound: ``chance``, or 0 where the training values sit below it by more
    than ``BELOW_CHANCE`` stderr (median): a floor the data already cross cannot bound them."""
    y = np.asarray(train_values, float)
    se = np.asarray(train_stderr, float)
    margin = BELOW_CHANCE * (float(np.nanmedian(se)) if np.isfinite(se).any() else 0.0)
    return 0.0 if y.size and float(np.nanmin(y)) < chance - margin else float(chance)


def to_link(y, floor) -> np.ndarray:
    f = np.asarray(floor, float)
    return logit(np.clip((np.asarray(y, float) - f) / (1 - f), EPS, 1 - EPS))


def from_link(z, floor) -> np.ndarray:
    f = np.asarray(floor, float)
    return f + (1 - f) * expit(np.asarray(z, float))


def link_noise(point, stderr, floor) -> np.ndarray:
    """The stderr of a value near ``point`` in link space (delta method), 0 where unknown."""
    f = np.asarray(floor, float)
    u = np.clip((np.asarray(point, float) - f) / (1 - f), MIN_FRACTION, 1 - MIN_FRACTION)
    se = np.nan_to_num(np.asarray(stderr, float))
    return se / ((1 - f) * u * (1 - u))


def spread(predictions, floor) -> np.ndarray:
    """How much the candidate methods disagree about each forecast: the standard deviation of
    their predictions (n, m; NaN = none) in link space, the strongest sign of a hard forecast."""
    z = to_link(np.clip(np.asarray(predictions, float), 0, 1), np.asarray(floor, float)[:, None])
    z = np.where(np.isfinite(np.asarray(predictions, float)), z, np.nan)
    n = np.isfinite(z).sum(axis=1)
    with np.errstate(all="ignore"):
        mean = np.nansum(z, axis=1) / n
        sd = np.sqrt(np.nansum((z - mean[:, None]) ** 2, axis=1) / np.maximum(n - 1, 1))
    return np.where(n >= 2, sd, np.nan)


def design(feats: pd.DataFrame) -> np.ndarray:
    """phi(x): the columns :data:`PHI` of a frame with distance, span, noise, level, slope,
    checkpoints and spread (NaN spread: +inf, read at the calibration's edge)."""
    d = np.maximum(feats["distance"].to_numpy(float), 0.0)
    span = np.maximum(feats["span"].to_numpy(float), 0.1)
    noise = feats["noise"].to_numpy(float)
    noise = np.where(np.isfinite(noise) & (noise > 0), noise, 0.01)
    level = np.nan_to_num(feats["level"].to_numpy(float), nan=0.5)
    # unknown disagreement (fewer than two candidates fitted; no calibration forecast is such a one):
    # read at the largest the calibration saw, where the scale model and the gate clip it
    spread = feats["spread"].to_numpy(float)
    spread = np.where(np.isnan(spread), np.inf, spread)
    slope = np.clip(np.nan_to_num(feats["slope"].to_numpy(float)), -1, 1)
    return np.column_stack([np.ones(len(d)), d, np.minimum(d / span, 10.0), np.log(noise), np.clip(level, -1, 2),
                            slope, np.abs(slope), np.clip(np.nan_to_num(feats["top_slope"].to_numpy(float)), -1, 1),
                            np.clip(np.nan_to_num(feats["curvature"].to_numpy(float)), -1, 1),
                            (feats["checkpoints"].to_numpy(float) >= 3).astype(float),
                            np.log(np.maximum(np.nan_to_num(feats["runs_per_budget"].to_numpy(float), nan=1.0), 1.0)),
                            np.log(np.maximum(spread, MIN_SPREAD)),
                            np.log(np.clip(np.nan_to_num(feats["misfit"].to_numpy(float), nan=1.0), 0.1, 100)),
                            np.log(np.clip(np.nan_to_num(feats["rung_error"].to_numpy(float), nan=1.0), 0.1, 100))])


@dataclass
class Conformal:
    """A fitted normalised-conformal interval: sigma(x) = sqrt(noise^2 + exp(2 theta . phi(x))), q.

    theta makes sigma(x) the ``level`` quantile of |error| given x (quantile regression on the
    log scale, as conformalised quantile regression does: Romano, Patterson & Candes 2019); q then
    corrects it to finite-sample coverage on the calibration errors."""

    theta: np.ndarray
    q: float
    level: float
    n: int
    # localisation (Guan 2023, "Localized conformal prediction"): the calibration forecasts'
    # standardised features and normalised scores; a new forecast's q is the quantile of its
    # NEIGHBOURS nearest calibration scores, so coverage holds region by region, not only on average
    psi: np.ndarray | None = None
    scores: np.ndarray | None = None  # signed: error / sigma
    weights: np.ndarray | None = None
    centre: np.ndarray | None = None
    scale: np.ndarray | None = None
    # the box of the calibration forecasts' features: a forecast outside it is read at its edge
    # (the scale model and the neighbours are not extrapolated to a kind of ladder never seen),
    # except in how far it extrapolates (EXTRAPOLATED): errors keep growing with the distance
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None

    @classmethod
    def fit(cls, errors, noise_z, phi: np.ndarray, level: float, weights=None) -> "Conformal":
        """From link-space errors (actual - predicted) of calibration forecasts, their link-space
        noise and features ``phi`` (:func:`design`)."""
        e = np.abs(np.asarray(errors, float))
        nz = np.asarray(noise_z, float)
        w = np.ones(len(e)) if weights is None else np.asarray(weights, float)
        ok = np.isfinite(e) & np.isfinite(nz) & np.isfinite(phi).all(axis=1)
        e, nz, phi, w = e[ok], nz[ok], phi[ok], w[ok] / np.sum(w[ok])
        theta0 = np.zeros(phi.shape[1])
        theta0[0] = np.log(max(np.median(e), 1e-3))

        ridge = np.r_[0.0, np.full(phi.shape[1] - 1, RIDGE)]
        log_e = np.log(e + LOG_FLOOR)

        def pinball(theta):
            """The smoothed pinball loss of log sigma as the ``level`` quantile of log |e| (so sigma
            tracks the tail of the errors where they are, not their mean), and its gradient."""
            m = np.exp(2 * np.clip(phi @ theta, -20, 20))
            s2 = nz**2 + m
            u = (log_e - 0.5 * np.log(s2)) / SMOOTH
            value = float(np.sum(w * SMOOTH * (np.logaddexp(0, u) - (1 - level) * u)) + np.sum(ridge * theta**2))
            dlog_s = m / s2  # d log sigma / d(phi theta)
            grad = -phi.T @ (w * (expit(u) - (1 - level)) * dlog_s) + 2 * ridge * theta
            return value, grad

        theta = minimize(pinball, theta0, jac=True, method="L-BFGS-B").x
        signed = np.asarray(errors, float)[ok] / _sigma(theta, nz, phi)
        centre, scale = phi.mean(axis=0), phi.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        lo, hi = phi.min(axis=0), phi.max(axis=0)
        far = [PHI.index(name) for name in EXTRAPOLATED] if phi.shape[1] == len(PHI) else []
        lo[far], hi[far] = -np.inf, np.inf
        return cls(theta, _quantile(np.abs(signed), w, level), level, int(len(e)), (phi - centre) / scale,
                   signed, w, centre, scale, lo, hi)

    def _inside(self, phi: np.ndarray) -> np.ndarray:
        return phi if self.lo is None else np.clip(phi, self.lo, self.hi)

    def local_shift_q(self, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shift, q) at each forecast, in units of sigma: the median signed score of its
        ``NEIGHBOURS`` nearest calibration forecasts and the conformal quantile of their distances
        from it (0 and the global q where there are too few)."""
        if self.psi is None or len(self.scores) < NEIGHBOURS:
            return np.zeros(len(phi)), np.full(len(phi), self.q)
        shift, q = np.empty(len(phi)), np.empty(len(phi))
        for i, near in enumerate(self.neighbours(phi)):
            s, w = self.scores[near], self.weights[near]
            shift[i] = _quantile(s, w, 0.5, finite=False)
            q[i] = _quantile(np.abs(s - shift[i]), w, self.level)
        return shift, q

    def neighbours(self, phi: np.ndarray) -> list[np.ndarray]:
        """Per forecast of ``phi``, the indices of its ``NEIGHBOURS`` nearest calibration forecasts
        (all of them where there are fewer), in standardised features read inside the box."""
        psi = (self._inside(phi) - self.centre) / self.scale
        k = min(NEIGHBOURS, len(self.psi))
        return [np.argpartition(np.sum((self.psi - row) ** 2, axis=1), k - 1)[:k] for row in psi]

    def sigma(self, noise_z, phi: np.ndarray) -> np.ndarray:
        return _sigma(self.theta, np.asarray(noise_z, float), self._inside(phi))

    def interval(self, point, floor, noise_z, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) in accuracy units, inside [floor, 1]."""
        sigma = self.sigma(noise_z, phi)
        shift, q = self.local_shift_q(phi)
        z = to_link(point, floor) + shift * sigma
        # the link clips a point at a bound a hair inside it, and a shift can move the centre off
        # it: the interval still holds the point
        p = np.asarray(point, float)
        return np.minimum(from_link(z - q * sigma, floor), p), np.maximum(from_link(z + q * sigma, floor), p)


def _sigma(theta, nz, phi) -> np.ndarray:
    return np.sqrt(nz**2 + np.exp(2 * np.clip(phi @ theta, -20, 20)))


def _quantile(scores, weights, level: float, finite: bool = True) -> float:
    """The weighted (level)(1 + 1/n) conformal quantile of ``scores`` (inf with too few); with
    ``finite=False`` the plain weighted ``level`` quantile."""
    n = len(scores)
    target = min(level * (1 + 1 / max(n, 1)), 1.0) if finite else level
    if n == 0 or target >= 1.0:
        return float("inf")
    order = np.argsort(scores)
    cum = np.cumsum(np.asarray(weights, float)[order])
    return float(scores[order][np.searchsorted(cum, target * cum[-1])])


def measurement_band(lower, upper, point, noise, level: float) -> tuple[np.ndarray, np.ndarray]:
    """``(lower, upper)`` widened, where narrower, to the central ``level`` band of the measurement
    noise around the point (``noise``: the accuracy's stderr), inside [0, 1].

    The link keeps a forecast of the *true* accuracy inside [floor, 1]; the value a forecast is
    checked against is a *measured* one, which sits below chance as often as above where the truth
    is at chance.  On the leave-one-ladder-out table 15 of the 21 misses of near-chance tasks, and
    15 of 18 of inverse ones, were measured below chance, where no interval inside [chance, 1]
    reaches (docs/ladders.md).  NaN bounds stay NaN."""
    z = ndtri(0.5 + level / 2)
    p = np.clip(np.asarray(point, float), 0.0, 1.0)
    half = z * np.nan_to_num(np.asarray(noise, float))
    return np.maximum(np.minimum(lower, p - half), 0.0), np.minimum(np.maximum(upper, p + half), 1.0)


def mixture_interval(weights, lower, upper, floor, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The central ``level`` interval of a weighted mixture of the candidates' predictive
    distributions (stacking of predictive distributions, Yao, Vehtari, Simpson & Gelman 2018).

    ``weights`` (n, k) per forecast; ``lower``, ``upper`` (n, k) each candidate's calibrated
    ``level`` interval (NaN where the candidate made none: its weight goes to the others), read as
    a normal distribution in link space with the same central ``level`` interval.  Where the
    candidates agree the mixture is as wide as they are; where they disagree it spans them, as a
    forecast on a ladder unlike any calibration ladder must.  NaN where no candidate has an interval.
    """
    f = np.asarray(floor, float)[:, None]
    zl, zu = to_link(lower, f), to_link(upper, f)
    have = np.isfinite(np.asarray(lower, float)) & np.isfinite(np.asarray(upper, float))
    w = np.where(have, np.asarray(weights, float), 0.0)
    total = w.sum(axis=1, keepdims=True)
    w = np.divide(w, total, out=np.zeros_like(w), where=total > 0)
    centre = np.where(have, (zl + zu) / 2, 0.0)
    sd = np.where(have, np.maximum((zu - zl) / (2 * ndtri(0.5 + level / 2)), 1e-3), 1.0)

    def quantile(p: float) -> np.ndarray:  # bisection on the mixture's CDF, every forecast at once
        lo = np.where(have, centre - 10 * sd, np.inf).min(axis=1)
        hi = np.where(have, centre + 10 * sd, -np.inf).max(axis=1)
        lo, hi = np.where(np.isfinite(lo), lo, 0.0), np.where(np.isfinite(hi), hi, 0.0)
        for _ in range(50):
            mid = (lo + hi) / 2
            below = np.sum(w * ndtr((mid[:, None] - centre) / sd), axis=1) < p
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return (lo + hi) / 2

    some = total[:, 0] > 0
    a = (1 - level) / 2
    out_lo, out_hi = from_link(quantile(a), f[:, 0]), from_link(quantile(1 - a), f[:, 0])
    return np.where(some, out_lo, np.nan), np.where(some, out_hi, np.nan)


def interval_score(lower, upper, actual, alpha: float) -> np.ndarray:
    """Gneiting & Raftery 2007 (JASA 102:359, eq. 43): width plus 2/alpha x the miss; proper."""
    lo, hi, y = (np.asarray(v, float) for v in (lower, upper, actual))
    return (hi - lo) + (2 / alpha) * np.maximum(lo - y, 0) + (2 / alpha) * np.maximum(y - hi, 0)
