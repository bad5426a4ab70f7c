"""The candidate forms a trend curve is forecast with (:mod:`pipeline.trends.fit` chooses among them).

Each curved form is a :mod:`pipeline.laws.curves` curve fitted on many curves at once (batched
multi-start least squares in the curve's fit space, with its weighted covariance): ``linear``,
``power`` (Krajewski et al. 2025, on log(-log) accuracy above chance) and ``loss_power``
(L = E + A C^-gamma).  The two closed forms are the weighted constant and the one-break law of
:mod:`pipeline.trends.banks`.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from pipeline.laws import curves as lc
from pipeline.trends import shapes
from pipeline.trends.banks import make_banks, predict_unnorm, refine, solve_bank
from pipeline.trends.settings import Settings

STANDARD = np.array([-1.0, 1.0])  # x_train of a curve object whose inputs come standardised
ROUGH_ITER, KEEP, MAX_ITER = 3, 4, 100  # multi-start: rough steps from every start, the best KEEP to the end
RUNG_DECIMALS = 2  # scales within ~2% are one rung (as pipeline.laws.nested)
LN10 = float(np.log(10.0))
# points a form needs: its parameter count on an inner split (an exactly determined inner fit still
# tests the extrapolation), one more on all the points (a degree of freedom for its covariance)
MIN_POINTS = {"const": 1, "linear": 2, "power": 2, "loss_power": 3, "break": 6}


# ----------------------------------------------------------------------------- the forms
class Form:
    """A candidate form as batched fits of a :mod:`pipeline.laws.curves` curve."""

    def __init__(self, name: str, curve_obj, k: int):
        self.name, self.obj, self.k = name, curve_obj, k

    def x(self, t, mu, sd):  # the curve's input from log10 scale
        return (t - mu) / sd

    def values(self, y):  # the curve's own units (raw loss for the loss law)
        return y

    def usable(self, y, s):
        return np.isfinite(y)

    def weights(self, y, s):  # least-squares weights in the curve's fit space
        return 1.0 / s ** 2

    def starts(self, X, y, w) -> np.ndarray:
        return self.obj.grid(X[:, None], y)

    def trend_y(self, f):  # the curve's fit space -> the trend's y (accuracy, ln loss)
        return f


class _Linear(Form):
    def starts(self, X, y, w):
        return np.array([[np.sum(w * y) / np.sum(w), 0.0]])


class _Power(Form):
    """Krajewski et al.'s power law on log accuracy: a line in log(-log y') space.

    They drop the points at or below chance, where the transform is undefined; a point within
    noise of chance (or of 1) is at the measurement floor too (Hu et al. 2023: a score of 0 is a
    floor, not a value) and its log(-log y') is anything, so the points used are those
    significantly above chance and below 1 (one-sided, at ``alpha_chance``)."""

    def __init__(self, name, curve_obj, k, z: float):
        super().__init__(name, curve_obj, k)
        self.z = z

    def usable(self, y, s):
        ch = self.obj.chance
        return self.obj.usable(y) & (y - ch > self.z * s) & (1 - y > self.z * s)

    def weights(self, y, s):
        yn = np.clip((y - self.obj.chance) / (1 - self.obj.chance), 1e-12, 1 - 1e-12)
        slope = 1.0 / ((1 - self.obj.chance) * yn * np.log(yn))  # d log(-log y') / dy
        return 1.0 / (s * slope) ** 2

    def starts(self, X, y, w):
        f = self.obj.to_fit_space(y)
        return np.array([[np.sum(w * f) / np.sum(w), 0.0]])

    def trend_y(self, f):
        return self.obj.from_fit_space(f)


class _LossPower(Form):
    """The loss law L = E + A C^-gamma (log-sum-exp form, Huber-free), inputs ln C.  L is the mean
    NLL: ln(value) for a perplexity (the trend's y itself), the value for other losses (exp(y))."""

    def __init__(self, name, curve_obj, k, perplexity: bool):
        super().__init__(name, curve_obj, k)
        self.perplexity = perplexity

    def x(self, t, mu, sd):
        return t * LN10

    def values(self, y):
        return y if self.perplexity else np.exp(y)

    def usable(self, y, s):
        return np.isfinite(y) & (y > 0)

    def weights(self, y, s):  # s: stderr of ln(value); the fit is on log L
        return (y / s) ** 2 if self.perplexity else 1.0 / s ** 2

    def starts(self, X, y, w):
        out = []
        for gamma in (0.05, 0.1, 0.2, 0.4):
            for frac in (0.3, 0.7, 0.9):
                e = np.log(frac * y.min())
                a = float(np.mean(np.log(np.maximum(y - frac * y.min(), 1e-12)) + gamma * X))
                out.append([a, e, gamma])
        return np.array(out)

    def trend_y(self, f):
        return np.exp(f) if self.perplexity else f


def make_form(name: str, curve: shapes.Curve, st: Settings):
    """The batched form ``name`` for a curve like ``curve`` (its chance level, its kind of loss)."""
    if name == "linear":
        return _Linear(name, lc.Linear(STANDARD), 2)
    if name == "power":
        return _Power(name, lc.PowerDecay(STANDARD, curve.chance), 2, float(stats.norm.isf(st.alpha_chance)))
    if name == "loss_power":
        return _LossPower(name, lc.PowerCompute(delta=None), 3, curve.perplexity)
    raise ValueError(name)


def group_key(name: str, curve: shapes.Curve) -> tuple:
    if name in ("power",):
        return (name, curve.chance)
    if name == "loss_power":
        return (name, curve.perplexity)
    return (name,)


# ----------------------------------------------------------------------------- batched fits
def fit_batch(form: Form, probs: list, items: list):
    """Fit ``form`` on every problem at once (``probs``: the fits :func:`pipeline.trends.fit.forecast` sets up, an
    item of ``items`` and a mask of its points each): (theta (P, k), cov (P, k, k), ok (P,))."""
    n = max(len(items[p.item].curve.t) for p in probs)
    P = len(probs)
    X, Y, W = np.zeros((P, n)), np.zeros((P, n)), np.zeros((P, n))
    starts, ok = [], np.ones(P, bool)
    for j, p in enumerate(probs):
        c, an = items[p.item].curve, items[p.item].analysis
        m = len(c.t)
        x = form.x(c.t, p.mu, p.sd)
        y = form.values(c.y)
        use = p.fit & form.usable(y, an.s_eff)
        need = MIN_POINTS[form.name] + (p.fold == 0)
        if use.sum() < need or len(np.unique(np.round(c.t[use], RUNG_DECIMALS))) < min(need, 2):
            ok[j] = False
            use = p.fit & np.isfinite(y)  # placeholder rows, never used
        fill = y[use][0] if use.any() else 0.5
        X[j, :m], Y[j, :m] = x, np.where(use, y, fill)
        X[j, m:], Y[j, m:] = x[-1], fill
        W[j, :m] = np.where(use, form.weights(np.where(use, y, fill), an.s_eff), 0.0)
        starts.append(form.starts(x[use], y[use], W[j, :m][use]) if ok[j] else None)
    S = max(len(s) for s in starts if s is not None) if ok.any() else 1
    st = np.stack([np.resize(s, (S, form.k)) if s is not None else np.zeros((S, form.k)) for s in starts])
    theta, loss = _multistart(form.obj, X, Y, W, st)
    ok &= np.isfinite(loss) & np.isfinite(theta).all(axis=1)
    cov = _covariance(form.obj, theta, X, Y, W)
    ok &= np.isfinite(cov).all(axis=(1, 2))
    return theta, cov, ok


def _multistart(obj, X, Y, W, starts):
    """Best of ``starts`` (P, S, k) per problem: a few steps from each, the best KEEP converged."""
    P, S, k = starts.shape

    def rep(a, r):
        return np.repeat(a, r, axis=0)

    th = starts.reshape(P * S, k)
    with np.errstate(all="ignore"):  # starts far off overflow; the optimiser rejects those steps
        return _multistart_steps(obj, X, Y, W, th, P, S, k, rep)


def _multistart_steps(obj, X, Y, W, th, P, S, k, rep):
    if S > KEEP:
        rough = obj.fit_batch(rep(X, S)[..., None], rep(Y, S), th, rep(W, S), max_iter=ROUGH_ITER)
        loss = np.where(np.isfinite(rough.loss), rough.loss, np.inf).reshape(P, S)
        order = np.argsort(loss, axis=1, kind="stable")[:, :KEEP]
        th = rough.theta.reshape(P, S, k)[np.arange(P)[:, None], order].reshape(P * KEEP, k)
        S = KEEP
    res = obj.fit_batch(rep(X, S)[..., None], rep(Y, S), th, rep(W, S), max_iter=MAX_ITER)
    loss = np.where(np.isfinite(res.loss), res.loss, np.inf).reshape(P, S)
    best = np.argmin(loss, axis=1)
    return res.theta.reshape(P, S, k)[np.arange(P), best], loss[np.arange(P), best]


def _covariance(obj, theta, X, Y, W) -> np.ndarray:
    """(P, k, k) weighted least-squares covariance, scaled by the reduced chi-square where > 1."""
    with np.errstate(all="ignore"):
        f, J = obj.evaluate(theta, X[..., None])
        r = np.where(W > 0, f - obj.to_fit_space(Y), 0.0)
        A = np.einsum("pn,pnk,pnl->pkl", W, J, J)
        chi2 = np.sum(W * r ** 2, axis=1)
        dof = (W > 0).sum(axis=1) - theta.shape[1]
        scale = np.where(dof > 0, np.maximum(1.0, chi2 / np.maximum(dof, 1)), 1.0)
        cov = np.linalg.pinv(A + 1e-12 * np.eye(theta.shape[1])) * scale[:, None, None]
    return cov


def evaluate(form: Form, theta, t_eval, mu, sd):
    """Trend-y values (P, m) of thetas (P, k) at scales t_eval (P, m)."""
    x = form.x(t_eval, mu[:, None], sd[:, None])
    with np.errstate(all="ignore"):
        f, _ = form.obj.evaluate(theta, x[..., None])
        return form.trend_y(f)


# ----------------------------------------------------------------------------- the closed forms
def const_fit(c: shapes.Curve, s: np.ndarray, mask: np.ndarray):
    w = 1.0 / s[mask] ** 2
    mean = float(np.sum(w * c.y[mask]) / np.sum(w))
    chi2 = float(np.sum(w * (c.y[mask] - mean) ** 2))
    dof = int(mask.sum()) - 1
    var = (1.0 / np.sum(w)) * (max(1.0, chi2 / dof) if dof > 0 else 1.0)
    return mean, float(var)


def break_predict(c: shapes.Curve, s: np.ndarray, mask: np.ndarray, t_eval: np.ndarray, st: Settings):
    sub = shapes.Curve(c.t[mask], c.y[mask], s[mask], c.chance, c.orient, c.bounded, c.n_items, c.log)
    banks = make_banks(sub.t, sub.chance, st, sub.n, decelerating_only=c.log)
    if "break" not in banks:
        return None
    bank, w = banks["break"], 1.0 / sub.s ** 2
    fit = refine(bank, sub.y, w, sub.t, solve_bank(bank, sub.y[None, :], w), rounds=st.refine_rounds)
    return predict_unnorm(bank, fit, t_eval)[0]
