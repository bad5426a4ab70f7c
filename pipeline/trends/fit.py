"""Forecasts of trend curves: the laws' candidate forms, fitted for many curves at once, chosen
per curve by nested extrapolation on its own top scales, with intervals that widen with distance.

A curve (:class:`pipeline.trends.shapes.Curve`: t = log10 scale, y, effective stderr) is forecast by
one of the candidate forms of its kind and shape label; the first is the default:

=====================  ===================================================================
accuracy, rising       ``power``: Krajewski et al. 2025, (y - chance)/(1 - chance) =
                       exp(-exp(b + a t)), least squares in log(-log) space on the points above
                       chance (weighted by their stderr there), ceiling 1, so a rising curve is
                       not forecast flat at its last point; ``sigmoid``: floor at chance (free
                       below it by the laws' rule), ceiling <= 1; ``linear`` in log scale
accuracy, falling      ``linear``, ``power`` (decaying toward chance)
loss, improving        ``loss_power`` (L = E + A C^-gamma), ``linear`` in ln L (a pure power law)
flat, noisy            ``const``, ``linear``
u_shaped, inverted_u   ``break`` (the one-break law of :mod:`pipeline.trends.banks`), ``linear``
other rising/falling   ``linear``
=====================  ===================================================================

(``pipeline.laws.curves``: PowerDecay, Sigmoid, Linear, PowerCompute.)  The choice is the laws'
nested extrapolation (:mod:`pipeline.laws.nested`, its array-level rules): hold out the top
scale, then the top two (as long as ``MIN_RUNGS`` scales remain), fit every candidate on the
rest, score its mean absolute error on the held-out points, and keep the default unless another
is better by more than the held-out points' noise.  The chosen form's inner error beyond that
noise, per decade of extrapolation, is the curve's extrapolation rate.

Interval of a forecast at scale t (a new model's observed score): the fit's parameter
uncertainty (normal at the weighted least-squares covariance, scaled up by the reduced chi-square
where it exceeds 1, pushed through the form), the new model's own noise (binomial at the
forecast with the curve's item count, and the between-model scatter tau), and rate x decades
beyond the largest scale (:func:`pipeline.laws.intervals.interval`).  A forecast always lies
inside its interval.

Everything is a function of the curve's points: a backtest's held-out points never reach it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from pipeline.laws import intervals, nested
from pipeline.trends import shapes
from pipeline.trends.forecast_forms import (MIN_POINTS, RUNG_DECIMALS, break_predict, const_fit, evaluate, fit_batch,
                                            group_key, make_form)
from pipeline.trends.settings import Settings

CANDIDATES = {
    ("accuracy", "rising"): ("power", "linear"),
    ("accuracy", "falling"): ("linear", "power"),
    ("loss", "rising"): ("loss_power", "linear"),
    ("loss", "falling"): ("linear",),
    ("plain", "rising"): ("linear",),
    ("plain", "falling"): ("linear",),
}
SHAPE_CLASS = {"positive": "rising", "emergent": "rising", "inverse": "falling", "u_shaped": "bent",
               "inverted_u": "bent"}
MIN_INNER_RUNGS = 2  # scales an inner split fits on (the laws need three for L(N, D); these forms have <= 3)


def kind_of(curve: shapes.Curve) -> str:
    if curve.log:
        return "loss"
    return "accuracy" if curve.bounded and curve.chance is not None and curve.orient > 0 else "plain"


def candidates(curve: shapes.Curve, label: str) -> tuple[str, ...]:
    """The candidate forms of a curve with this shape label, the default first."""
    cls = SHAPE_CLASS.get(label, "flat")
    if cls == "flat":
        return ("const", "linear")
    if cls == "bent":
        return ("break", "linear")
    return CANDIDATES[(kind_of(curve), cls)]


@dataclass
class Item:
    """One curve to forecast at ``targets`` (log10 scale); ``cross``: (level, orient, t_cap) to
    find where the forecast reaches ``level`` (orient +1: from below, -1: from above)."""

    curve: shapes.Curve
    label: str
    analysis: shapes.Analysis
    targets: np.ndarray
    cross: tuple | None = None


@dataclass
class Result:
    form: str  # the chosen form ('' when none could be fitted)
    candidates: tuple
    inner: dict  # candidate -> inner extrapolation error (fit units: accuracy, ln loss); inf: failed
    rate: float  # extrapolation error per decade beyond the data (fit units)
    point: np.ndarray  # at the targets, in the metric's units
    lo: np.ndarray
    hi: np.ndarray
    cross: tuple | None = None  # (t point, t early, t late) of the level; inf: not within t_cap
    note: str = ""
    plausible: list = field(default_factory=list)  # the forms whose draws make the interval


# ----------------------------------------------------------------------------- problems: every curve, and its inner splits
@dataclass
class _Problem:
    item: int
    fold: int  # 0: every point; k >= 1: the top k rungs held out
    fit: np.ndarray  # bool mask over the curve's points
    held: np.ndarray
    mu: float = 0.0
    sd: float = 1.0


def above_floor(it: Item, z: float) -> np.ndarray:
    """The points a rising accuracy's forecast is fitted on: all but the leading run of points not
    significantly above chance (one-sided z).  At its floor an accuracy says nothing about the law
    it will follow (Schaeffer et al. 2023), and a line or power law bent through a long run of
    chance-level points misses the rise.  Unchanged where too few points would remain for the
    nested check (``MIN_INNER_RUNGS`` + 1)."""
    c = it.curve
    keep = np.ones(c.n, bool)
    if SHAPE_CLASS.get(it.label) != "rising" or kind_of(c) != "accuracy":
        return keep
    order = np.argsort(c.t, kind="mergesort")
    above = (c.y[order] - c.chance) > z * it.analysis.s_eff[order]
    lead = int(np.argmax(above)) if above.any() else 0
    keep[order[:lead]] = False
    return keep if len(np.unique(np.round(c.t[keep], RUNG_DECIMALS))) > MIN_INNER_RUNGS else np.ones(c.n, bool)


def _problems(items: list[Item], z: float) -> list[_Problem]:
    out = []
    for i, it in enumerate(items):
        t = it.curve.t
        every = above_floor(it, z)
        out.append(_Problem(i, 0, every, np.zeros(len(t), bool)))
        rungs = np.unique(np.round(t[every], RUNG_DECIMALS))
        for k in range(1, nested.FOLDS + 1):
            if len(rungs) - k < MIN_INNER_RUNGS:
                break
            held = every & (np.round(t, RUNG_DECIMALS) >= rungs[-k])
            out.append(_Problem(i, k, every & ~held, held))
    for p in out:
        tf = items[p.item].curve.t[p.fit]
        sd = float(np.std(tf))
        p.mu, p.sd = float(np.mean(tf)), (sd if sd > 0 else 1.0)
    return out


# ----------------------------------------------------------------------------- forecasting
def forecast(items: list[Item], st: Settings, draws: int = 200, level: float = 0.9, seed: int = 0,
             margin: float = 1.0) -> list[Result]:
    """Choose, fit and forecast every item's curve (see the module docstring)."""
    if not items:
        return []
    probs = _problems(items, float(stats.norm.isf(st.alpha_chance)))
    cands = [candidates(it.curve, it.label) for it in items]
    # inner predictions of every candidate on every problem; full fits' states
    inner: dict = {}  # (item, fold, form) -> predictions at the held points
    full: dict = {}  # (item, form) -> (form object, theta, cov, mu, sd) or ('const', mean, var) or ('break', None)
    groups: dict = {}
    for p in probs:
        for name in cands[p.item]:
            if name in ("const", "break"):
                continue
            groups.setdefault(group_key(name, items[p.item].curve), []).append(p)
    for key, ps in groups.items():
        form = make_form(key[0], items[ps[0].item].curve, st)
        theta, cov, ok = fit_batch(form, ps, items)
        for j, p in enumerate(ps):
            if not ok[j]:
                continue
            if p.fold == 0:
                full[(p.item, form.name)] = (form, theta[j], cov[j], p.mu, p.sd)
            else:
                t_h = items[p.item].curve.t[p.held]
                inner[(p.item, p.fold, form.name)] = evaluate(form, theta[j:j + 1], t_h[None], np.array([p.mu]),
                                                               np.array([p.sd]))[0]
    for p in probs:
        it = items[p.item]
        s = it.analysis.s_eff
        for name in cands[p.item]:
            if name == "const" and p.fit.sum() >= MIN_POINTS["const"] + (p.fold == 0):
                mean, var = const_fit(it.curve, s, p.fit)
                if p.fold == 0:
                    full[(p.item, name)] = ("const", mean, var)
                else:
                    inner[(p.item, p.fold, name)] = np.full(int(p.held.sum()), mean)
            if name == "break" and "break" in it.analysis.fits:
                if p.fold == 0:
                    full[(p.item, name)] = ("break", None)
                else:
                    pred = break_predict(it.curve, s, p.fit, it.curve.t[p.held], st)
                    if pred is not None:
                        inner[(p.item, p.fold, name)] = pred
    folds = {}
    for p in probs:
        if p.fold:
            folds.setdefault(p.item, []).append(p)
    choice = _choose(items, cands, full, inner, folds, margin)
    return _results(items, cands, full, choice, draws, level, seed)


@dataclass
class _Choice:
    name: str  # the chosen form ('' if none)
    scored: dict  # candidate -> inner error
    rate: float
    note: str
    plausible: list  # the chosen form first, then every other whose inner error is within the noise of it


def _choose(items, cands, full, inner, folds, margin) -> list[_Choice]:
    """The nested choice per item (see the module docstring)."""
    rows = []
    for i, it in enumerate(items):
        fittable = [c for c in cands[i] if (i, c) in full]
        ps = folds.get(i, [])
        usable = fittable[:]
        # a default that cannot be fitted on any inner split cannot be checked: the next one is the default
        while usable and not any((i, p.fold, usable[0]) in inner for p in ps):
            usable.pop(0)
        rows.append((fittable, usable, ps))
    K = max([len(u) for _, u, _ in rows] + [1])
    errors = np.full((len(items), K), np.inf)
    noise = np.zeros(len(items))
    for i, (fittable, usable, ps) in enumerate(rows):
        if not usable:
            continue
        kept = [p for p in ps if (i, p.fold, usable[0]) in inner]
        s = items[i].analysis.s_eff
        noise[i] = nested.held_noise(np.concatenate([s[p.held] for p in kept])[None, :])[0]
        for j, name in enumerate(usable):
            if all((i, p.fold, name) in inner for p in kept):
                errors[i, j] = np.mean([np.mean(np.abs(inner[(i, p.fold, name)] - items[i].curve.y[p.held]))
                                        for p in kept])
    pick = nested.choose_among(errors, noise, margin)
    near = nested.plausible_among(errors, np.maximum(pick, 0), noise, margin)
    out = []
    m = max([sum(int(p.held.sum()) for p in ps) for _, _, ps in rows] + [1])
    E, SE, Wt, D = (np.zeros((len(items), m)) for _ in range(4))
    for i, (fittable, usable, ps) in enumerate(rows):
        if not fittable:
            out.append(("", {}, "no candidate form could be fitted", []))
            continue
        if not usable or pick[i] < 0:
            out.append((fittable[0], {}, "not checked: too few points to hold the top scale out", [fittable[0]]))
            continue
        name = usable[pick[i]]
        plausible = [name] + [n for j, n in enumerate(usable) if n != name and near[i, j]]
        kept = [p for p in ps if (i, p.fold, usable[0]) in inner]
        col = 0
        c, s = items[i].curve, items[i].analysis.s_eff
        for p in kept:
            h = np.flatnonzero(p.held)
            sl = slice(col, col + len(h))
            E[i, sl] = inner[(i, p.fold, name)] - c.y[h]
            SE[i, sl] = s[h]
            Wt[i, sl] = 1.0 / len(h) / len(kept)
            D[i, sl] = c.t[h] - c.t[p.fit].max()
            col += len(h)
        scored = {n: float(errors[i, j]) for j, n in enumerate(usable)}
        dropped = [n for n in fittable if n not in usable]
        note = f"{', '.join(dropped)} not checkable on the inner splits" if dropped else ""
        out.append((name, scored, note, plausible))
    rate = nested.rates(E, SE, Wt, D)
    return [_Choice(name, scored, float(rate[i]) if scored else 0.0, note, plausible)
            for i, (name, scored, note, plausible) in enumerate(out)]


def _results(items, cands, full, choice, B, level, seed):
    """Point forecasts and intervals of the chosen forms at the targets, and where they cross a level."""
    rngs = [_curve_rng(seed, it) for it in items]
    at_targets, at_dense = [], []  # per item: (point, draws, noise, extra sd) at the targets / a dense grid
    dense = []
    for i, it in enumerate(items):
        ch, c = choice[i], it.curve
        t_max = float(c.t.max())
        tt = shapes.dense(c, it.cross[2] - t_max, step=0.02) if it.cross and ch.name else np.zeros(0)
        t_all = np.concatenate([np.asarray(it.targets, float), tt])
        if not ch.name:
            p, d = np.full(len(t_all), np.nan), np.zeros((B, len(t_all)))  # NaN point: NaN interval
        else:
            p, d = _mixture(it, [full[(i, n)] for n in ch.plausible], t_all, B, rngs[i])
        m = len(it.targets)
        extra = nested.extra_sd(ch.rate, t_all, t_max)
        at_targets.append((p[:m], d[:, :m], _new_point_sd(c, p[:m], it.analysis.tau), extra[:m]))
        at_dense.append((p[m:], d[:, m:], np.zeros(len(tt)), extra[m:]))  # the law's band: no new-point noise
        dense.append(tt)
    bounds = [(0.0, 1.0) if it.curve.bounded and not it.curve.log else None for it in items]
    point, lo, hi = _intervals(at_targets, bounds, level, rngs)
    d_pt, d_lo, d_hi = _intervals(at_dense, bounds, level, rngs)
    out = []
    for i, it in enumerate(items):
        ch = choice[i]
        p, l, h = point[i], lo[i], hi[i]
        if it.curve.log:
            p, l, h = np.exp(p), np.exp(l), np.exp(h)
        cross = None
        if len(dense[i]):
            lev, orient, cap = it.cross
            early, late = (d_hi[i], d_lo[i]) if orient > 0 else (d_lo[i], d_hi[i])
            ts = shapes.first_crossing(np.vstack([d_pt[i], early, late]), dense[i], lev, orient)
            cross = tuple(float(v) if np.isfinite(v) and v <= cap else np.inf for v in ts)
        out.append(Result(ch.name, cands[i], ch.scored, ch.rate, p, l, h, cross, ch.note, ch.plausible))
    return out


def _curve_rng(seed: int, it: Item) -> np.random.Generator:
    """A generator of the curve's own, seeded by ``seed`` and the curve's points: a curve's interval does
    not depend on which other curves are forecast beside it (the stage, the CLI on one family, a backtest)."""
    import zlib

    c = it.curve
    key = zlib.crc32(np.concatenate([c.t, c.y, c.s, np.asarray(it.targets, float)]).tobytes())
    return np.random.default_rng([seed, key])


def _intervals(parts, bounds, level, rngs):
    """Per item (point, lower, upper) from (point, draws, noise, extra sd), all items in one call of
    :func:`pipeline.laws.intervals.interval` (each item's noise normals from its own generator);
    accuracies clipped to [0, 1]."""
    sizes = [len(p[0]) for p in parts]
    P = np.concatenate([p[0] for p in parts])
    D = np.concatenate([p[1] for p in parts], axis=1)
    N = np.concatenate([p[2] for p in parts])
    X = np.concatenate([p[3] for p in parts])
    if not len(P):
        return [np.zeros(0)] * len(parts), [np.zeros(0)] * len(parts), [np.zeros(0)] * len(parts)
    def normals(B):
        return np.concatenate([g.standard_normal((B, m)) for g, m in zip(rngs, sizes)], axis=1)

    lo, hi = intervals.interval(P, D, N, level, normals, None, 1.0, X)
    cuts = np.cumsum(sizes)[:-1]
    out = [np.split(a, cuts) for a in (P, lo, hi)]
    for i, b in enumerate(bounds):
        if b is not None:
            out[0][i], out[1][i], out[2][i] = (np.clip(a[i], *b) for a in out)
    return out


def _mixture(it: Item, states: list, t_all, B, rng):
    """The first (chosen) form at ``t_all``, and B draws shared evenly among the plausible forms
    (the chosen one takes the remainder): the interval spans the forms the inner check cannot
    tell apart, not only the chosen one's parameters."""
    shares = np.full(len(states), B // len(states))
    shares[0] += B - shares.sum()
    point, draws = None, []
    for state, b in zip(states, shares):
        p, d = _point_and_draws(it, state, t_all, int(b), rng)
        point = p if point is None else point
        draws.append(d)
    return point, np.vstack(draws)


def _point_and_draws(it: Item, state, t_all, B, rng):
    """The chosen fit at ``t_all`` and B draws of its parameters from their normal approximation."""
    if state[0] == "const":
        _, mean, var = state
        p = np.full(len(t_all), mean)
        return p, mean + np.sqrt(var) * rng.standard_normal((B, 1)) + 0 * t_all[None, :]
    if state[0] == "break":
        return _break_draws(it, t_all, B, rng)
    form, theta, cov, mu, sd = state
    vals, vecs = np.linalg.eigh(cov)
    L = vecs * np.sqrt(np.maximum(vals, 0.0))
    th = theta[None, :] + rng.standard_normal((B, len(theta))) @ L.T
    T = np.broadcast_to(t_all, (B + 1, len(t_all)))
    v = evaluate(form, np.vstack([theta[None, :], th]), T, np.full(B + 1, mu), np.full(B + 1, sd))
    return v[0], v[1:]


def _break_draws(it: Item, t_all, B, rng):
    """The one-break fit and draws of its linear coefficients (a, b) at its bend (the shape's own
    uncertainty beyond the data is the extrapolation term's)."""
    c, s = it.curve, it.analysis.s_eff
    bank, fit = it.analysis.fits["break"]
    h = bank.basis(fit.theta, c.t)[0]
    H = np.column_stack([np.ones_like(h), h])
    w = 1.0 / s ** 2
    r = c.y - (fit.a[0] + fit.b[0] * h)
    dof = c.n - bank.k
    scale = max(1.0, float(np.sum(w * r ** 2)) / dof) if dof > 0 else 1.0
    cov = np.linalg.pinv((H * w[:, None]).T @ H) * scale
    vals, vecs = np.linalg.eigh(cov)
    ab = np.array([fit.a[0], fit.b[0]]) + rng.standard_normal((B, 2)) @ (vecs * np.sqrt(np.maximum(vals, 0))).T
    h_new = bank.basis(fit.theta, t_all)[0]
    return fit.a[0] + fit.b[0] * h_new, ab[:, :1] + ab[:, 1:] * h_new[None, :]


def _new_point_sd(c: shapes.Curve, point: np.ndarray, tau: float) -> np.ndarray:
    """A new model's noise around the law: binomial at the forecast with the curve's item count
    (else the curve's median stderr), and the between-model scatter tau."""
    if c.bounded and c.n_items and not c.log:
        return intervals.noise_sd(point, c.n_items, tau, accuracy=True)
    return np.sqrt(float(np.median(c.s)) ** 2 + tau ** 2) * np.ones_like(point)
