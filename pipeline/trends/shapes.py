"""The shape of one score curve over log scale: its label, the evidence, a bootstrap forecast and
the turn test, from the forms of :mod:`pipeline.trends.banks`.

Model choice uses BIC = χ² + k·ln n with each point's stderr widened to sqrt(s² + τ²): τ is the
between-model scatter (a random effect, estimated by Paule–Mandel from the most flexible form that
leaves two degrees of freedom), so an erratic curve is not "explained" by whichever wiggle fits
its most precise points, and a new model's predictive interval includes that scatter.

:func:`classify` gives the label (positive, emergent, inverse, u_shaped, inverted_u, flat, noisy)
and its evidence; :func:`forecast` a bootstrap forecast of the chosen form; :func:`turn_test`
whether an inverse curve turns back up within a window.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from pipeline.trends.banks import (MONO_FORMS, NULL_FORMS, Bank, BankFit, make_banks, predict_bank, predict_unnorm,
                                   refine, solve_all, solve_bank)
from pipeline.trends.settings import Settings


# ----------------------------------------------------------------------------- curve analysis
@dataclass
class Curve:
    t: np.ndarray  # log10 scale
    y: np.ndarray
    s: np.ndarray  # effective stderr (floored)
    chance: float | None
    orient: float  # +1: higher is better; −1: lower is better (losses)
    bounded: bool  # values live in [0, 1]
    n_items: float | None = None  # inferred number of items (binomial), for new-point noise
    log: bool = False  # y and s are ln(value) and stderr/value (losses); forecasts are exp()-ed back
    perplexity: bool = False  # the value is a perplexity: y = ln(value) is the loss (mean NLL) itself

    @property
    def n(self) -> int:
        return len(self.y)


def effective_stderr(y: np.ndarray, s: np.ndarray, bounded: bool, min_stderr: float) -> tuple[np.ndarray, float | None]:
    """Floor each stderr so a 0% or 100% score (binomial stderr 0) does not get infinite weight.

    For accuracies the number of items n is inferred from the points away from 0 and 1
    (n ≈ p(1−p)/s²) and each stderr is floored at the Laplace-smoothed binomial stderr
    √(p̃(1−p̃)/n), p̃ = (p·n + 1)/(n + 2).
    """
    s = np.asarray(s, dtype=float).copy()
    n_items = None
    if bounded:
        ok = (y > 0.02) & (y < 0.98) & (s > 0)
        if ok.any():
            n_items = float(np.median(y[ok] * (1 - y[ok]) / s[ok] ** 2))
            p = (np.clip(y, 0, 1) * n_items + 1) / (n_items + 2)
            s = np.maximum(s, np.sqrt(p * (1 - p) / n_items))
    scale = np.median(np.abs(y)) if len(y) else 1.0
    floor = min_stderr if bounded else max(min_stderr * max(scale, 1e-12), 1e-12)
    return np.maximum(s, floor), n_items


@dataclass
class Analysis:
    label: str
    form: str  # the form used for forecasts
    evidence: str
    fits: dict  # form -> (Bank, refined BankFit), fitted with stderr sqrt(s² + τ²)
    bic: dict
    chi2: dict
    tau: float  # between-model scatter beyond the stated stderr (random effect), same units as y
    s_eff: np.ndarray  # sqrt(s² + τ²)
    turn_t: float | None = None  # for u/inverted-u: where the fit turns (t)
    flat_prefix: int = 0
    gen_form: str = ""  # the best trend form by BIC (generates the bootstrap replicates)


def _fmt(v: float, p: int = 3) -> str:
    if v is None or not np.isfinite(v):
        return "inf" if v is not None and v > 0 else ("-inf" if v is not None and v < 0 else "nan")
    return f"{v:.{p}g}"


def null_fits(y: np.ndarray, s: np.ndarray, chance: float | None) -> dict:
    """χ², k and level of the constant and (when known) chance forms."""
    w = 1.0 / s ** 2
    a = float(np.sum(w * y) / np.sum(w))
    out = {"const": (float(np.sum(w * (y - a) ** 2)), 1, a)}
    if chance is not None:
        out["chance"] = (float(np.sum(w * (y - chance) ** 2)), 0, chance)
    return out


def reference_form(banks: dict, n: int) -> str:
    """The most flexible form that leaves at least two degrees of freedom."""
    for name in ("break", "sigmoid", "power", "linear"):
        if name in banks and n - banks[name].k >= 2:
            return name
    return "const"


def _ref_residuals(curve: Curve, banks: dict, ref: str, s: np.ndarray, rounds: int) -> np.ndarray:
    w = 1.0 / s ** 2
    if ref == "const":
        return curve.y - np.sum(w * curve.y) / np.sum(w)
    bank = banks[ref]
    f = refine(bank, curve.y, w, curve.t, solve_bank(bank, curve.y[None, :], w), rounds=rounds)
    return curve.y - predict_unnorm(bank, f, curve.t)[0]


def estimate_tau(curve: Curve, banks: dict, cfg: Settings) -> float:
    """Between-model scatter τ (Paule–Mandel): the extra variance that makes the reference
    form's weighted residual χ² equal its degrees of freedom; 0 when the stated errors suffice.

    A model's score = smooth law + its own deviation (τ) + measurement noise (s): an erratic
    curve then gets wide errors everywhere rather than being "explained" by whichever wiggle
    fits its most precise points."""
    n = curve.n
    ref = reference_form(banks, n)
    k = banks[ref].k if ref in banks else 1
    dof = n - k
    if dof < 1:
        return 0.0
    tau2 = 0.0
    for _ in range(8):
        r = _ref_residuals(curve, banks, ref, np.sqrt(curve.s ** 2 + tau2), max(1, cfg.refine_rounds - 1))
        q = lambda t2: np.sum(r ** 2 / (curve.s ** 2 + t2)) - dof  # noqa: E731
        if q(tau2) <= 1e-9 * dof and tau2 == 0.0:
            return 0.0
        lo, hi = 0.0, max(float(np.max(r ** 2)), 1e-12)
        if q(lo) <= 0:
            new = 0.0
        else:
            for _ in range(60):  # q decreases in t2
                mid = 0.5 * (lo + hi)
                lo, hi = (mid, hi) if q(mid) > 0 else (lo, mid)
            new = 0.5 * (lo + hi)
        if abs(new - tau2) <= 1e-4 * max(new, 1e-12) + 1e-14:
            tau2 = new
            break
        tau2 = new
    return float(np.sqrt(tau2))


def fit_all(curve: Curve, cfg: Settings) -> tuple[dict, dict, float, np.ndarray]:
    """Point fits of every form with stderr sqrt(s² + τ²): ({form: (bank, fit)}, {form: χ²}, τ, s_eff)."""
    banks = make_banks(curve.t, curve.chance, cfg, curve.n, decelerating_only=curve.log)
    tau = estimate_tau(curve, banks, cfg)
    s_eff = np.sqrt(curve.s ** 2 + tau ** 2)
    w = 1.0 / s_eff ** 2
    fits, chi2 = {}, {}
    for name, (c2, k, a) in null_fits(curve.y, s_eff, curve.chance).items():
        bank = Bank(name, k, np.zeros((1, 0)), True)
        fits[name] = (bank, BankFit(None, np.array([a]), np.array([0.0]), np.array([c2]), np.zeros((1, 0))))
        chi2[name] = c2
    for name, bank in banks.items():
        f0 = solve_bank(bank, curve.y[None, :], w)
        if name == "linear":
            f = BankFit(None, f0.a, f0.b / bank.norm[f0.g], f0.sse, f0.theta)
        else:
            f = refine(bank, curve.y, w, curve.t, f0, rounds=cfg.refine_rounds)
        fits[name] = (bank, f)
        chi2[name] = float(f.sse[0])
    return fits, chi2, tau, s_eff


def linear_slope(t: np.ndarray, y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """Weighted least-squares slope per decade and its stderr."""
    w = 1.0 / s ** 2
    tm = np.sum(w * t) / np.sum(w)
    sxx = np.sum(w * (t - tm) ** 2)
    if sxx <= 0:
        return 0.0, np.inf
    b = np.sum(w * (t - tm) * y) / sxx
    return float(b), float(1.0 / np.sqrt(sxx))


def chance_prefix(curve: Curve, s: np.ndarray, alpha: float) -> int:
    """How many of the smallest scales are jointly consistent with chance (χ² test at alpha)."""
    if curve.chance is None:
        return 0
    order = np.argsort(curve.t, kind="mergesort")
    z2 = ((curve.y[order] - curve.chance) / s[order]) ** 2
    best = 0
    for m in range(1, curve.n + 1):
        if stats.chi2.sf(z2[:m].sum(), m) >= alpha:
            best = m
        else:
            break
    return best


def dense(curve: Curve, extra: float, step: float = 0.01) -> np.ndarray:
    t0, t1 = float(curve.t.min()), float(curve.t.max())
    return np.arange(t0, t1 + extra + step / 2, step)


def interior_turn(curve: Curve, bank: Bank, fit: BankFit, delta: float) -> tuple[str | None, float | None]:
    """'u' / 'inverted' when the fitted curve turns inside the data by at least delta each side."""
    tt = dense(curve, 0.0)
    perf = curve.orient * predict_unnorm(bank, fit, tt)[0]
    i_min, i_max = int(np.argmin(perf)), int(np.argmax(perf))
    if 0 < i_min < len(tt) - 1 and perf[0] - perf[i_min] >= delta and perf[-1] - perf[i_min] >= delta:
        return "u", float(tt[i_min])
    if 0 < i_max < len(tt) - 1 and perf[i_max] - perf[0] >= delta and perf[i_max] - perf[-1] >= delta:
        return "inverted", float(tt[i_max])
    return None, None


def emergence(curve: Curve, bank: Bank, fit: BankFit, form: str, s: np.ndarray, cfg: Settings, margin: float,
              x_label) -> tuple[bool, int, str]:
    """(emergent?, points at chance, evidence) of a rising curve with a chance level.

    Emergent (Wei et al. 2022: near random below a scale, well above random beyond it): the
    smallest >= ``min_flat_points`` scales are jointly consistent with chance, the largest model is
    ``z_rise`` stderr above chance *and* above chance + ``margin`` (the level emergence crossings
    are measured at, so an emergent curve has crossed it inside its data), and the fitted form
    takes off: it rises faster after the points at chance than over them.  A straight line in log
    scale through chance-level small models, or a power law that rises fastest at the smallest
    scale, is steady scaling that starts near chance ("positive"), not a take-off.
    """
    prefix = chance_prefix(curve, s, cfg.alpha_chance)
    if prefix < cfg.min_flat_points or prefix >= curve.n:
        return False, prefix, ""
    order = np.argsort(curve.t, kind="mergesort")
    top = order[-1]
    z_top = (curve.y[top] - curve.chance) / s[top]
    level = curve.chance + margin
    t0, tp, t1 = curve.t.min(), curve.t[order[prefix - 1]], curve.t.max()
    f0, fp, f1 = predict_unnorm(bank, fit, np.array([t0, tp, t1]))[0]
    flat_slope = (fp - f0) / (tp - t0) if tp > t0 else 0.0
    takes_off = form != "linear" and (f1 - fp) / (t1 - tp) > flat_slope
    text = f"at chance up to x={x_label(tp)} ({prefix} pts); last point {z_top:+.1f} se above chance"
    why = [w for w, bad in ((f"< {cfg.z_rise:g} se", z_top < cfg.z_rise),
                            (f"below chance + margin ({level:.3g})", curve.y[top] < level),
                            (f"no take-off ({form} rises as fast over the points at chance)", not takes_off)) if bad]
    if why:
        text += "; not emergent: " + ", ".join(why)
    return not why, prefix, text


def classify(curve: Curve, cfg: Settings, x_label=lambda t: f"{10 ** t:.3g}", margin: float = 0.1) -> Analysis:
    """Label one curve (positive, emergent, inverse, u_shaped, inverted_u, flat, noisy).

    Forms are compared by BIC = χ² + k·ln n with stderr sqrt(s² + τ²) (τ from
    :func:`estimate_tau`).  A trend needs BIC(null) − BIC(best trend form) ≥ tau_trend, a break in
    direction BIC(best monotone) − BIC(break) ≥ tau_break and a turn inside the data.  Without a
    trend, the constant's χ² against the *stated* stderr decides flat (fits) vs noisy (does not).
    ``margin``: params.yaml trends.emergence.margin (emergent curves reach chance + margin,
    :func:`emergence`)."""
    n = curve.n
    fits, chi2, tau, s_eff = fit_all(curve, cfg)
    ks = {name: fits[name][0].k for name in fits}
    bic = {name: chi2[name] + ks[name] * np.log(n) for name in fits}
    null = min((f for f in NULL_FORMS if f in bic), key=lambda f: bic[f])
    monos = [f for f in MONO_FORMS if f in bic]
    mono = min(monos, key=lambda f: bic[f])
    has_break = "break" in bic
    alt = min(bic[mono], bic["break"]) if has_break else bic[mono]
    d_trend = bic[null] - alt
    d_break = (bic[mono] - bic["break"]) if has_break else None
    slope, slope_se = linear_slope(curve.t, curve.y, s_eff)
    parts = [f"dBIC(trend-vs-{null})={d_trend:.1f}"]
    parts.append(f"dBIC(break-vs-mono)={d_break:.1f}" if has_break else f"break: n<{cfg.break_min_points}")
    parts.append(f"slope={slope:+.3g}±{slope_se:.2g}/dec (t={slope / slope_se:+.1f})"
                 if np.isfinite(slope_se) and slope_se > 0 else f"slope={slope:+.3g}")
    if tau > 0:
        parts.append(f"tau={tau:.3g}")
    turn_t = None
    prefix = 0
    if d_trend < cfg.tau_trend:
        raw = null_fits(curve.y, curve.s, curve.chance)[null]
        c2, dof = raw[0], n - raw[1]
        p = float(stats.chi2.sf(c2, max(dof, 1)))
        parts.append(f"chi2({null})={c2:.1f}/{dof} p={_fmt(p, 2)}")
        if curve.chance is not None:
            raw_chance = null_fits(curve.y, curve.s, curve.chance)["chance"][0]
            if stats.chi2.sf(raw_chance, n) >= cfg.alpha_chance:
                parts.append("at chance")
            elif stats.chi2.sf(chi2["chance"], n) >= cfg.alpha_chance:
                parts.append("mean at chance")
        label = "flat" if p >= cfg.alpha_gof else "noisy"
        form = null
    else:
        form = mono
        kind = None
        if has_break and d_break >= cfg.tau_break:
            delta = cfg.z_turn * float(np.median(s_eff))
            kind, turn_t = interior_turn(curve, *fits["break"], delta)
            form = "break"
        if kind is not None:
            label = "u_shaped" if kind == "u" else "inverted_u"
            parts.append(f"turn at x={x_label(turn_t)}")
        else:
            bank, fit = fits[form]
            ends = predict_unnorm(bank, fit, np.array([curve.t.min(), curve.t.max()]))[0]
            gain = curve.orient * (ends[1] - ends[0])
            if gain < 0:
                label = "inverse"
            else:
                label = "positive"
                if curve.chance is not None and curve.orient > 0:
                    emergent, prefix, text = emergence(curve, bank, fit, form, s_eff, cfg, margin, x_label)
                    label = "emergent" if emergent else label
                    parts += [text] if text else []
        parts.insert(1, f"form={form}")
    gen = min((f for f in bic if f not in NULL_FORMS), key=lambda f: bic[f])
    return Analysis(label, form, "; ".join(parts), fits, bic, chi2, tau, s_eff, turn_t, prefix, gen)


# ----------------------------------------------------------------------------- bootstrap
def choose_forms(bic: dict[str, np.ndarray], cfg: Settings) -> np.ndarray:
    """Vectorised form choice per replicate (same rule as :func:`classify`): names array (B,)."""
    nulls = [f for f in NULL_FORMS if f in bic]
    monos = [f for f in MONO_FORMS if f in bic]
    nq = np.stack([bic[f] for f in nulls], axis=1)
    mq = np.stack([bic[f] for f in monos], axis=1)
    null_best, null_name = nq.min(axis=1), np.asarray(nulls)[nq.argmin(axis=1)]
    mono_best, mono_name = mq.min(axis=1), np.asarray(monos)[mq.argmin(axis=1)]
    alt = mono_best
    brk = None
    if "break" in bic:
        brk = bic["break"]
        alt = np.minimum(mono_best, brk)
    out = np.where(null_best - alt < cfg.tau_trend, null_name, mono_name).astype(object)
    if brk is not None:
        use_break = (null_best - alt >= cfg.tau_trend) & (mono_best - brk >= cfg.tau_break)
        out[use_break] = "break"
    return out


@dataclass
class Bootstrap:
    forms: np.ndarray | None  # (B,) chosen form per replicate
    pred: dict  # name -> (B, m) predictions at the requested scales for every form
    chosen: np.ndarray | None  # (B, m) predictions of each replicate's chosen form


def bootstrap(curve: Curve, an: Analysis, t_new: np.ndarray, cfg: Settings, B: int, seed: int,
              gen_form: str | None = None, only: str | None = None) -> Bootstrap:
    """Parametric bootstrap: y* = fit + sqrt(s² + τ²)·ε, every form refitted on its grid, the form
    re-chosen by the classification rule in every replicate (so the spread includes the
    uncertainty of the shape, not only of its parameters).

    ``gen_form`` (default: the analysis' form) generates the replicates; ``only`` refits just that
    form (its predictions are then in ``pred[only]``; ``forms``/``chosen`` are None).
    """
    rng = np.random.default_rng(seed)
    bank0, fit0 = an.fits[gen_form or an.form]
    mu = predict_unnorm(bank0, fit0, curve.t)[0]
    Y = mu[None, :] + an.s_eff[None, :] * rng.standard_normal((B, curve.n))
    w = 1.0 / an.s_eff ** 2
    n = curve.n
    sse, preds, ks = {}, {}, {}
    for name, (bank, _) in an.fits.items():
        if only is not None and name != only:
            continue
        if name in NULL_FORMS:
            a = (Y @ w) / w.sum() if name == "const" else np.full(B, curve.chance)
            sse[name] = ((Y - a[:, None]) ** 2) @ w
            preds[name] = np.broadcast_to(a[:, None], (B, len(t_new)))
        else:
            f = solve_bank(bank, Y, w)
            sse[name] = f.sse
            preds[name] = predict_bank(bank, f, t_new)
        ks[name] = bank.k
    if only is not None:
        return Bootstrap(None, preds, None)
    bic = {name: sse[name] + ks[name] * np.log(n) for name in sse}
    forms = choose_forms(bic, cfg)
    chosen = np.empty((B, len(t_new)))
    for name in preds:
        m = forms == name
        if m.any():
            chosen[m] = preds[name][m]
    return Bootstrap(forms, preds, chosen)


def new_point_sd(curve: Curve, pred: np.ndarray, tau: float) -> np.ndarray:
    """Noise of a new model's observed score around the law: its measurement error (binomial with
    the curve's inferred item count where known, else the median stderr) and the between-model
    scatter τ."""
    if curve.bounded and curve.n_items and not curve.log:
        p = np.clip(pred, 0.0, 1.0)
        p = (p * curve.n_items + 1) / (curve.n_items + 2)
        sd = np.sqrt(p * (1 - p) / curve.n_items)
    else:
        sd = np.full_like(pred, float(np.median(curve.s)))
    return np.sqrt(sd ** 2 + tau ** 2)


def forecast(curve: Curve, an: Analysis, t_new: np.ndarray, cfg: Settings, B: int, seed: int,
             level: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray, Bootstrap]:
    """Point prediction and a ``level`` predictive interval at scales t_new.

    The interval is the percentile interval of bootstrap predictions plus a new measurement's own
    noise, so it is for the *observed* score of a new model.  Replicates are drawn from the best
    *trend* form (by BIC, even when no trend is significant) and the form is re-chosen in each, as
    in Efron's (2014) bootstrap after model selection: a flat label then does not freeze the
    forecast at a constant when a trend below the detection threshold fits the data as well.
    Loss curves (``curve.log``) are fitted on ln(value) and returned on the original scale.
    """
    bank, fit = an.fits[an.form]
    point = predict_unnorm(bank, fit, t_new)[0]
    bs = bootstrap(curve, an, t_new, cfg, B, seed, gen_form=an.gen_form or None)
    rng = np.random.default_rng(seed + 1)
    draws = bs.chosen + new_point_sd(curve, bs.chosen, an.tau) * rng.standard_normal(bs.chosen.shape)
    if curve.log:
        point, draws = np.exp(point), np.exp(draws)
    if curve.bounded:
        point = np.clip(point, 0.0, 1.0)
        draws = np.clip(draws, 0.0, 1.0)
    q = (1 - level) / 2
    lo, hi = np.quantile(draws, [q, 1 - q], axis=0)
    return point, lo, hi, bs


def first_crossing(curves: np.ndarray, tt: np.ndarray, level: float, orient: float) -> np.ndarray:
    """(B,) first t where each row of curves (B, m) reaches ``level`` (in the better direction); inf if never."""
    hit = (orient * (curves - level)) >= 0
    any_hit = hit.any(axis=1)
    idx = np.argmax(hit, axis=1)
    out = np.full(len(curves), np.inf)
    # linear interpolation between the grid point before the crossing and the crossing
    j = idx[any_hit]
    rows = np.nonzero(any_hit)[0]
    t_cross = tt[j].astype(float)
    prev = j > 0
    if prev.any():
        r, jj = rows[prev], j[prev]
        y0, y1 = curves[r, jj - 1], curves[r, jj]
        frac = np.where(y1 != y0, (level - y0) / np.where(y1 != y0, y1 - y0, 1.0), 0.0)
        t_cross[prev] = tt[jj - 1] + np.clip(frac, 0, 1) * (tt[jj] - tt[jj - 1])
    out[rows] = t_cross
    return out


def turn_points(curves: np.ndarray, tt: np.ndarray, orient: float, delta: float) -> np.ndarray:
    """(B,) t where each fitted curve (B, m) over scales tt bottoms out and then recovers.

    A turn is the worst point (performance orientation) of the curve over tt when it is neither
    the first nor the last grid point and the curve rises again by at least ``delta`` before the
    end of tt; nan where there is none."""
    perf = orient * curves
    i = np.argmin(perf, axis=1)
    rows = np.arange(len(curves))
    rise = perf[:, -1] - perf[rows, i]
    ok = (i > 0) & (i < perf.shape[1] - 1) & (rise >= delta)
    out = np.full(len(curves), np.nan)
    out[ok] = tt[i[ok]]
    return out


@dataclass
class Turn:
    verdict: str  # yes | possible | no | n/a: ...
    t: float  # where the best turning break fit turns (nan if none fits)
    dchi2: float  # (χ² of the best non-turning break fit − χ² of the best turning one) / φ²


def turn_test(curve: Curve, an: Analysis, cfg: Settings, window: float, crit: float) -> Turn:
    """Does the curve turn back (performance bottoms out and recovers) before t_max + ``window``?

    A profile test over the one-break form: the best fit among break shapes that turn inside the
    window against the best among those that do not (each refined by a zoom grid within its
    class).  ``yes`` when not turning is worse by at least ``crit`` (a χ²₁ quantile), ``no`` when
    turning is worse by that much, else ``possible``.  A break hidden wholly beyond the data costs
    nothing, so a steady decline usually reads ``possible``: the data neither require nor exclude
    a turn; only a bend that starts inside the data can make it ``yes``."""
    if "break" not in an.fits:
        return Turn(f"n/a: <{cfg.break_min_points} points", np.nan, np.nan)
    bank = an.fits["break"][0]
    w = 1.0 / an.s_eff ** 2
    tt = dense(curve, window, step=0.02)
    delta = cfg.z_turn * float(np.median(an.s_eff))

    def turning(bk: Bank, f: BankFit) -> np.ndarray:
        curves = f.a[:, None] + f.b[:, None] * bk.design(np.arange(len(f.a)), tt)
        return np.isfinite(turn_points(curves, tt, curve.orient, delta))

    full = solve_all(bank, curve.y, w)
    turns = turning(bank, full)
    best = {}
    for cls, mask in (("turn", turns), ("flat", ~turns)):
        if not mask.any():
            continue
        g = int(np.argmin(np.where(mask, full.sse, np.inf)))
        start = BankFit(np.array([g]), full.a[g:g + 1], full.b[g:g + 1], full.sse[g:g + 1], bank.theta[g:g + 1])
        keep = (lambda bk, f: turning(bk, f)) if cls == "turn" else (lambda bk, f: ~turning(bk, f))
        best[cls] = refine(bank, curve.y, w, curve.t, start, allowed=keep)
    if "turn" not in best:
        return Turn("no", np.nan, -np.inf)
    ft = best["turn"]
    t_turn = float(turn_points(predict_unnorm(bank, ft, tt), tt, curve.orient, delta)[0])
    if "flat" not in best:
        return Turn("yes", t_turn, np.inf)
    d = float(best["flat"].sse[0] - ft.sse[0])
    verdict = "yes" if d >= crit else ("no" if d <= -crit else "possible")
    return Turn(verdict, t_turn, d)
