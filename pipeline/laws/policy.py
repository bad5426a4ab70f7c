"""What many ladders teach about forecasting one: which methods to trust, and how wide to be.

A :class:`Policy` is learned from a table of forecasts made on other ladders (each candidate
method fitted below a ladder's top, predicting its top runs; :mod:`pipeline.ladders.harness`):

* **intervals**: per method, a normalised split-conformal model in link space
  (:class:`pipeline.laws.conformal.Conformal`) fitted on that method's errors;
* **the auto forecast**: stacking (Yao, Vehtari, Simpson & Gelman 2018) with weights that depend
  on the forecast problem (feature-weighted stacking, Sill et al. 2009): weights over the
  candidate methods, a softmax of the problem's features (how far it extrapolates, relative to
  the training range; the ladder's noise, level, slope and bend; checkpoints or isoFLOP budgets;
  how much the candidates disagree), that minimise the absolute error of the weighted mean on
  the calibration ladders; its interval is the same weights' mixture of the candidates' calibrated
  predictive distributions (stacking of predictive distributions: wide where the candidates
  disagree, as on a kind of ladder the weights never saw). Gate and scale models read a feature
  past the calibration's range at its edge.

Nothing here looks at the ladder being forecast beyond its training rows: the policy is learned
on other ladders (``exclude`` drops the groups a backtest holds out).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import linprog, minimize

from pipeline.laws import conformal, data
from pipeline.laws.data import Metric

AUTO = "auto"
SPREAD_MEMBERS = ("line_final", "line_frontier", "loglinear", "sigmoid_final", "sigmoid", "direct", "carry")
GATE_RIDGE = 1e-3  # on the gate's feature slopes (standardised features)
GATE_SMOOTH = 0.005  # accuracy units: the absolute error is smoothed below half a point


FEATURES = ["distance", "span", "n_runs", "n_sizes", "checkpoints", "runs_per_budget", "noise", "level", "slope",
            "top_slope", "curvature", "misfit", "rung_error", "floor"]


def ladder_features(train: pd.DataFrame, target: str, chance: float) -> dict:
    """What the forecast problem looks like from its training rows alone (``log_c_max``: the
    largest training run's compute, from which each forecast's distance is measured).

    span: decades of compute between the smallest and largest training run; n_runs, n_sizes;
    checkpoints: median checkpoints per run; runs_per_budget: runs per compute budget (an isoFLOP
    sweep has several).  The rest are read off each compute budget's best final value (one run per
    budget: every run): noise: their median stderr; level: how far the top budget's value is from
    chance to 1 (0 at chance, 1 at the ceiling); slope, top_slope: the least-squares slope of the
    values per decade of compute, over every budget and over the top half; curvature: twice the
    quadratic coefficient of the same fit (> 0: taking off, < 0: saturating); misfit: the root-mean-square residual of that quadratic fit over the noise (a
    ladder whose runs scatter beyond their noise is one whose shape is not settled); rung_error:
    how far a line through the other runs' final values misses the largest run's, over the noise
    (the ladder's own top rung, as one feature among many: it adjusts the interval only as far as
    the calibration ladders show it to be informative); floor: the link's lower bound
    (:func:`pipeline.laws.conformal.floor_of`).
    """
    units = data.values(train, Metric.parse(target), "ladder")
    units = units.loc[units["compute_flops"] > 0]
    final = data.final_units(units)
    budgets = np.unique(data.budget_of(final["compute_flops"])).size
    # the shape is read off the best run of each compute budget: an isoFLOP sweep's off-optimal runs
    # are not noise about its curve, and would read as a flat, scattered ladder
    best = data.budget_best_units(final, Metric.parse(target))
    log_c = np.log10(best["compute_flops"].to_numpy(float))
    y = best["value"].to_numpy(float)
    top = y[log_c >= log_c.max() - 0.05].mean()
    se = best["stderr"].to_numpy(float)
    upper = log_c >= np.median(log_c)
    return {"floor": conformal.floor_of(chance, units["value"].to_numpy(float), units["stderr"].to_numpy(float)),
            "log_c_max": float(log_c.max()), "span": float(np.ptp(log_c)), "n_runs": int(final["model"].nunique()),
            "n_sizes": int(np.unique(np.round(np.log10(final["params"].to_numpy(float)), 2)).size),
            "checkpoints": float(units.groupby("model").size().median()),
            "runs_per_budget": float(len(final) / max(budgets, 1)),
            "noise": float(np.nanmedian(se)) if np.isfinite(se).any() else np.nan,
            "level": float((top - chance) / (1 - chance)) if chance < 1 else np.nan,
            "slope": _slope(log_c, y), "top_slope": _slope(log_c[upper], y[upper]),
            "curvature": _curvature(log_c, y), "misfit": _misfit(log_c, y, se), "rung_error": _rung_error(log_c, y, se)}


def _slope(x, y) -> float:
    return float(np.polyfit(x, y, 1)[0]) if len(y) >= 2 and np.ptp(x) > 0 else 0.0


def _misfit(x, y, se) -> float:
    """RMS residual of a quadratic in log compute over the median stderr (1 where unknown)."""
    if len(y) < 4 or np.unique(np.round(x, 3)).size < 3:
        return 1.0
    resid = y - np.polyval(np.polyfit(x, y, 2), x)
    noise = float(np.nanmedian(se)) if np.isfinite(se).any() else 0.0
    return float(np.sqrt(np.mean(resid**2)) / max(noise, 0.002))


def _rung_error(x, y, se) -> float:
    """|line through the runs below the top rung, at the top rung - its value| over the median stderr."""
    top = x >= x.max() - 0.05
    below = ~top
    if below.sum() < 2 or np.ptp(x[below]) <= 0:
        return 1.0
    line = np.polyfit(x[below], y[below], 1)
    miss = float(np.mean(np.abs(np.polyval(line, x[top]) - y[top])))
    noise = float(np.nanmedian(se)) if np.isfinite(se).any() else 0.0
    return miss / max(noise, 0.002)


def _curvature(x, y) -> float:
    return float(2 * np.polyfit(x, y, 2)[0]) if len(y) >= 4 and np.unique(np.round(x, 3)).size >= 3 else 0.0


def with_spread(table: pd.DataFrame, members=SPREAD_MEMBERS) -> pd.DataFrame:
    """``table`` with ``spread`` (:func:`pipeline.laws.conformal.spread`) of each forecast unit
    over the candidates in ``members`` (cheap single-step fits: every forecast can have them)."""
    members = [m for m in members if m in set(table["candidate"])]
    units, P = prediction_matrix(table.loc[table["status"] == "ok"], members, fill=False)
    key = ["ladder", "factor", "model"]
    sp = units[key].assign(spread=conformal.spread(P, units["floor"].to_numpy(float)))
    return table.drop(columns=["spread"], errors="ignore").merge(sp, on=key, how="left")


def link_errors(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (rows with actual, predicted, floor, noise) with link-space error ``e`` and noise ``nz``."""
    point = np.clip(frame["predicted"].to_numpy(float), 0, 1)
    floor = frame["floor"].to_numpy(float)
    return frame.assign(e=conformal.to_link(frame["actual"].to_numpy(float), floor) - conformal.to_link(point, floor),
                        nz=conformal.link_noise(point, frame["noise"].to_numpy(float), floor))


def prediction_matrix(frame: pd.DataFrame, candidates: list[str], fill: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    """(units, P): one row per forecast unit (ladder, factor, model) with its features and actual
    value, and P[i, m] the prediction of candidate m (a missing one: with ``fill``, the mean of the
    others, else NaN)."""
    key = ["ladder", "factor", "model"]
    ok = frame.loc[frame["candidate"].isin(candidates)]
    wide = ok.drop_duplicates(key + ["candidate"]).set_index(key + ["candidate"])["predicted"].unstack("candidate")
    wide = wide.reindex(columns=candidates)
    units = ok.drop_duplicates(key).set_index(key).loc[wide.index].reset_index()
    P = wide.to_numpy(float)
    return units, (_fill(P) if fill else P)


def _fill(P: np.ndarray) -> np.ndarray:
    """Missing predictions (NaN) replaced by the mean of the row's others (NaN where none)."""
    if not P.size:
        return P
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(P, axis=1, keepdims=True)
    return np.where(np.isfinite(P), P, mean)


def stack(P: np.ndarray, y: np.ndarray, w_unit=None) -> np.ndarray:
    """Simplex weights minimising the (weighted) absolute error of ``P @ w`` against ``y``."""
    n, m = P.shape
    ok = np.isfinite(P).all(axis=1) & np.isfinite(y)
    P, y = P[ok], y[ok]
    wu = np.ones(len(y)) if w_unit is None else np.asarray(w_unit, float)[ok]
    if len(y) == 0:
        return np.full(m, 1.0 / m)
    k = len(y)
    # variables: w (m), t (k); minimise sum wu t subject to -t <= P w - y <= t, sum w = 1, w >= 0;
    # the constraint matrix is sparse (HiGHS takes it as such; a dense one of a few thousand
    # forecasts costs more to build than to solve)
    c = np.concatenate([np.zeros(m), wu])
    eye = sparse.identity(k, format="csr")
    A = sparse.bmat([[sparse.csr_matrix(P), -eye], [sparse.csr_matrix(-P), -eye]], format="csc")
    b = np.concatenate([y, -y])
    res = linprog(c, A_ub=A, b_ub=b, A_eq=np.concatenate([np.ones(m), np.zeros(k)])[None, :], b_eq=[1.0],
                  bounds=[(0, None)] * (m + k), method="highs")
    w = res.x[:m] if res.success else np.full(m, 1.0 / m)
    w = np.maximum(w, 0)
    return w / w.sum()


SUPPORT_QUANTILE = 0.95  # the calibration's support: distances up to this quantile of those it saw


@dataclass
class Policy:
    candidates: list[str]
    level: float
    intervals: dict = field(default_factory=dict)  # method -> Conformal
    gate: "Gate | None" = None  # the candidates' weights as a function of the forecast's features
    support: dict = field(default_factory=dict)  # "distance", "relative": the largest the calibration supports

    @classmethod
    def learn(cls, table: pd.DataFrame, candidates: list[str], level: float = 0.9, exclude=(),
              intervals: bool = True, weights: bool = True) -> "Policy":
        """From a forecast table (:data:`pipeline.ladders.harness.COLUMNS`; its ``auto`` rows, if
        any, are not learned from: auto's interval is the candidates'), leaving out the ladder
        groups ``exclude``."""
        data = table.loc[~table["group"].isin(list(exclude)) & (table["status"] == "ok") & (table["candidate"] != AUTO)]
        policy = cls(list(candidates), level)
        for method, rows in (data.groupby("candidate", sort=True) if intervals else ()):
            rows = link_errors(rows)
            policy.intervals[str(method)] = conformal.Conformal.fit(
                rows["e"], rows["nz"], conformal.design(rows), level, _group_weights(rows))
        if weights:
            policy.gate = learn_gate(data, candidates)
        if len(data):
            d = np.maximum(data["distance"].to_numpy(float), 0)
            rel = d / np.maximum(data["span"].to_numpy(float), 0.1)
            policy.support = {"distance": float(np.quantile(d, SUPPORT_QUANTILE)),
                              "relative": float(np.quantile(rel, SUPPORT_QUANTILE))}
        return policy

    def weights(self, feats: pd.DataFrame) -> np.ndarray:
        """(n, candidates): the gate's weights of each forecast of ``feats``."""
        return self.gate.weights(conformal.design(feats))

    def combine(self, feats: pd.DataFrame, P: np.ndarray, W: np.ndarray | None = None) -> np.ndarray:
        """The auto point forecast of each row of ``P`` (candidates' predictions, NaN = none);
        ``W``: the weights of ``feats`` where the caller has them (:meth:`weights`)."""
        P = _fill(np.asarray(P, float))
        return np.sum((self.weights(feats) if W is None else W) * P, axis=1)

    def weights_for(self, feats: pd.DataFrame, W: np.ndarray | None = None) -> list[tuple[str, float]]:
        """The candidates' mean weights over the forecasts ``feats``, the largest first."""
        mean = (self.weights(feats) if W is None else W).mean(axis=0)
        return sorted(zip(self.candidates, (float(w) for w in mean)), key=lambda t: (-t[1], t[0]))

    def auto_interval(self, point, feats: pd.DataFrame, P: np.ndarray,
                      W: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) of the auto forecasts ``point``: the stacking mixture of the candidates'
        calibrated predictive distributions (``P``: their predictions, NaN = none), with the weights
        that make the point (:func:`pipeline.laws.conformal.mixture_interval`); each holds its point."""
        lower, upper = self.candidate_intervals(feats, P)
        W = self.weights(feats) if W is None else W
        lo, hi = conformal.mixture_interval(W, lower, upper, feats["floor"].to_numpy(float), self.level)
        p = np.asarray(point, float)
        return conformal.measurement_band(np.minimum(lo, p), np.maximum(hi, p), p, feats["noise"].to_numpy(float),
                                          self.level)

    def candidate_intervals(self, feats: pd.DataFrame, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper), each (n, candidates): every candidate's conformal interval (without the
        measurement band) around its predictions ``P`` (NaN where it made none or has no model)."""
        P = np.asarray(P, float)
        lower, upper = np.full(P.shape, np.nan), np.full(P.shape, np.nan)
        for j, method in enumerate(self.candidates):
            ok = np.isfinite(P[:, j])
            if method in self.intervals and ok.any():
                lower[ok, j], upper[ok, j] = self._conformal(method, P[ok, j], feats.loc[ok])
        return lower, upper

    def interval(self, method: str, point, feats: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) of ``method``'s forecasts ``point`` with features ``feats`` (needs
        floor, noise and the :func:`pipeline.laws.conformal.design` columns): the conformal
        interval, at least the measurement noise's band around the point."""
        lo, hi = self._conformal(method, point, feats)
        p = np.clip(np.asarray(point, float), feats["floor"].to_numpy(float), 1.0)
        return conformal.measurement_band(lo, hi, p, feats["noise"].to_numpy(float), self.level)

    def _conformal(self, method: str, point, feats: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The conformal interval alone, inside [floor, 1] (what the mixture is made of)."""
        model = self.intervals[method]
        floor = feats["floor"].to_numpy(float)
        p = np.clip(np.asarray(point, float), floor, 1.0)
        nz = conformal.link_noise(p, feats["noise"].to_numpy(float), floor)
        return model.interval(p, floor, nz, conformal.design(feats))


def _group_weights(rows: pd.DataFrame) -> np.ndarray:
    """Each ladder counts once, whatever its number of predicted runs and holdouts."""
    per = rows.groupby("ladder")["ladder"].transform("size").to_numpy(float)
    return 1.0 / per


@dataclass
class Gate:
    """Stacking weights that depend on the forecast problem (feature-weighted stacking, Sill et al.
    2009, kept on the simplex): w(x) = softmax(A psi(x)), psi the standardised features of
    :func:`pipeline.laws.conformal.design`."""

    A: np.ndarray  # (candidates, features)
    mean: np.ndarray
    sd: np.ndarray
    # the box of the features it was fitted on: a softmax of a linear function is not extrapolated
    # past it (a kind of ladder none of the calibration ladders is, e.g. more runs per budget)
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None

    def psi(self, phi: np.ndarray) -> np.ndarray:
        inside = phi if self.lo is None else np.clip(phi, self.lo, self.hi)
        return (inside - self.mean) / self.sd

    def weights(self, phi: np.ndarray) -> np.ndarray:
        logits = self.psi(phi) @ self.A.T
        logits -= logits.max(axis=1, keepdims=True)
        w = np.exp(logits)
        return w / w.sum(axis=1, keepdims=True)

    @classmethod
    def fit(cls, P: np.ndarray, y: np.ndarray, phi: np.ndarray, w_unit: np.ndarray, ridge: float = GATE_RIDGE) -> "Gate":
        """Minimise the weighted (smoothed) absolute error of the gated mixture, plus ``ridge`` |A|^2;
        started from the global stacking weights (:func:`stack`)."""
        mean, sd = phi.mean(axis=0), phi.std(axis=0)
        mean[0], sd[0] = 0.0, 1.0  # the constant column stays 1
        sd = np.where(sd > 0, sd, 1.0)
        gate = cls(np.zeros((P.shape[1], phi.shape[1])), mean, sd, np.nanmin(phi, axis=0), np.nanmax(phi, axis=0))
        psi = gate.psi(phi)
        wu = w_unit / w_unit.sum()
        gate.A[:, 0] = np.log(np.maximum(stack(P, y, w_unit), 1e-3))

        def loss(flat):
            A = flat.reshape(gate.A.shape)
            logits = psi @ A.T
            logits -= logits.max(axis=1, keepdims=True)
            g = np.exp(logits)
            g /= g.sum(axis=1, keepdims=True)
            yhat = np.sum(g * P, axis=1)
            r = yhat - y
            ell = np.sqrt(r**2 + GATE_SMOOTH**2)
            value = float(np.sum(wu * ell) + ridge * np.sum(A[:, 1:] ** 2))
            dyhat = wu * r / ell
            grad = (g * (P - yhat[:, None]) * dyhat[:, None]).T @ psi
            grad[:, 1:] += 2 * ridge * A[:, 1:]
            return value, grad.ravel()

        gate.A = minimize(loss, gate.A.ravel(), jac=True, method="L-BFGS-B").x.reshape(gate.A.shape)
        return gate


def gate_units(data: pd.DataFrame, candidates: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """(units, P): the forecast units of ``data`` a gate learns from (a known actual, every
    candidate's prediction or the others' mean in its place) and their predictions."""
    units, P = prediction_matrix(data, candidates)
    ok = np.isfinite(P).all(axis=1) & np.isfinite(units["actual"].to_numpy(float))
    return units.loc[ok].reset_index(drop=True), P[ok]


def learn_gate(data: pd.DataFrame, candidates: list[str], design=conformal.design) -> Gate:
    """The gate from every forecast unit of ``data`` (:func:`gate_units`; each ladder weighted
    once), on the features ``design`` makes of them (:func:`pipeline.laws.conformal.design`)."""
    units, P = gate_units(data, candidates)
    if not len(units):
        k = len(conformal.PHI)  # nothing to learn from: equal weights, whatever the features (its box is a point)
        return Gate(np.zeros((len(candidates), k)), np.zeros(k), np.ones(k), np.zeros(k), np.zeros(k))
    return Gate.fit(P, units["actual"].to_numpy(float), design(units), _group_weights(units))


def training_range(train: pd.DataFrame, target: str) -> tuple[float, float]:
    """(log10 of the largest training run's compute, decades its runs span) of ``target``'s rows."""
    units = data.values(train, Metric.parse(target), "forecast")
    final = data.final_units(units.loc[units["compute_flops"] > 0])
    log_c = np.log10(final["compute_flops"].to_numpy(float))
    return float(log_c.max()), float(np.ptp(log_c))


def extrapolation(distance, span, support: dict) -> list[str]:
    """What each forecast extrapolates, in words: "interpolation" inside the training runs' compute,
    else the multiple of the largest training run's compute and that distance relative to the
    training range's own width, with a warning past what the calibration ladders support."""
    out = []
    for d, w in zip(np.asarray(distance, float), np.asarray(span, float)):
        if not np.isfinite(d):
            out.append("")
            continue
        if d <= 0:
            out.append("interpolation: inside the training runs' compute")
            continue
        rel = d / max(w, 0.1)
        text = (f"{10 ** d:.3g}x the largest training run's compute: {d:.2g} decades beyond it, "
                f"{rel:.2g}x the width of the training range")
        far = [f"{what} {v:.2g} > {support[k]:.2g}" for k, v, what in (("distance", d, "decades"),
                                                                         ("relative", rel, "relative distance"))
               if k in support and v > support[k]]
        out.append(text + ("; beyond what the calibration ladders support (" + ", ".join(far) + "): the interval is "
                           "an extrapolation of their errors" if far else ""))
    return out
