"""The generating forms of the simulated zoo (:mod:`pipeline.ladders.zoo`): loss surfaces and
accuracy links that capcast does *not* fit, so that errors measured on the zoo do not favour
capcast's own candidates (Chinchilla's E + A/N^a + B/D^b or E + A/C^g; logistic, log-logistic,
Hill, Bhagia et al.'s sigmoid, Gadre et al.'s exponential, a line in log L).

Loss surfaces L(N, D), in nats per token:

* ``kaplan``: Kaplan et al. 2020 (arXiv 2001.08361, eq. 1.5) with an irreducible term,
  L = E + ((Nc/N)^(aN/aD) + Dc/D)^aD.  The two reducible terms combine under one power, so the
  law is not additive in N and D and its local exponents drift along a ladder.
* ``nonseparable``: L = E + rN (N0/N)^a + rD (Dref/D)^(b0 + b1 log10(N/N0)): the data exponent
  grows with model size, as Farseer (Li et al. 2025, arXiv 2506.10972) finds.
* ``bnsl``: Caballero et al. 2023's broken neural scaling law (arXiv 2210.14891) in compute with
  one break, L = E + b x^-c0 (1 + (x/d)^(1/f))^(-c1 f), x = C / C0.

Accuracy links: Acc(L) = a0 + sum_i w_i F_i((x0_i - g(L)) / s_i), g the identity or log and F a
distribution function, so that lower loss means higher F:

* ``richards``: the generalised logistic (Richards 1959, J. Exp. Bot. 10:290),
  F = (1 + nu e^-z)^(-1/nu), with nu in [0.2, 0.5] or [2, 5]: never the symmetric logistic (nu = 1);
* ``gompertz``: F = exp(-e^-z) (Gompertz 1825), asymmetric;
* ``probit``: F = Phi(z), the normal ogive of item response theory (Lord 1980);
* ``weibull``: F = 1 - exp(-z^k) for z > 0, else 0 (Weibull 1951): a hard threshold in loss.

Sums of two terms make mixtures of easy and hard item populations (each with its own threshold)
and, with opposite signs, inverse and U-shaped scaling (McKenzie et al. 2023, arXiv 2306.09479;
Wei et al. 2022, arXiv 2211.02011).  ``bnsl_error`` links make the task's error itself follow a
broken power law in compute, as Caballero et al. fit downstream accuracy.
"""
from __future__ import annotations

import math

import numpy as np

N0 = 1e9  # the loss surfaces' anchor: their compute-optimal run at this size (see draw_loss)
SHAPES = ("richards", "gompertz", "probit", "weibull")
# numpy has no erf; last-bit differences between platforms' erf vanish in the zoo's 6-digit rounding
_erf = np.frompyfunc(math.erf, 1, 1)


def loguniform(rng, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


# ------------------------------------------------------------------------------- loss surfaces
def draw_loss(rng, form: str) -> dict:
    """Random surface parameters in realistic ranges.  Each surface is anchored at its compute-
    optimal run: N0 = 1B parameters on ``ratio`` x N0 tokens (ratio 10-60: Hoffmann et al. find
    ~20) with reducible loss 0.55-1.0 nats over an irreducible 1.5-2.1 (Chinchilla's fit gives
    0.89 over 1.69 there).  Drawing the coefficients freely instead puts the optimum at 1 or 1000
    tokens per parameter, for the reducible terms' exponents are small."""
    E, R, ratio = rng.uniform(1.5, 2.1), rng.uniform(0.55, 1.0), loguniform(rng, 10, 60)
    if form == "kaplan":
        aN, aD = rng.uniform(0.25, 0.4), rng.uniform(0.2, 0.35)
        # optimal at fixed C where Dc/D = (aN/aD) (Nc/N)^(aN/aD); the bracket is R^(1/aD) there
        u = R ** (1 / aD) / (1 + aN / aD)
        return {"form": form, "E": E, "Nc": N0 * u ** (aD / aN), "Dc": aN / aD * u * ratio * N0, "aN": aN, "aD": aD,
                "optimal_ratio": ratio}
    if form == "nonseparable":
        alpha, beta0 = rng.uniform(0.25, 0.4), rng.uniform(0.2, 0.35)
        rN = R / (1 + alpha / beta0)  # optimal at fixed C where alpha rN = beta0 rD (at N0, D = Dref)
        return {"form": form, "E": E, "rN": rN, "rD": alpha * rN / beta0, "alpha": alpha, "beta0": beta0,
                "beta1": rng.uniform(0.01, 0.04), "Dref": ratio * N0, "optimal_ratio": ratio}
    raise ValueError(f"unknown loss form {form!r}")


def draw_bnsl(rng, span: float, mode: str) -> dict:
    """One break at 30-120% of the ladder's span of log10 compute ``span``: inside it or just
    beyond, where extrapolating the pre-break slope goes wrong.  ``mode`` 'loss' gives the
    reducible loss (slope after the break 0.3-2x the slope before); 'error' gives 1 - normalised
    accuracy, nearly flat before the break and falling after it."""
    d, f = 10 ** (span * rng.uniform(0.3, 1.2)), rng.uniform(0.05, 0.5)
    if mode == "loss":
        c0 = rng.uniform(0.08, 0.2)
        return {"b": rng.uniform(1.2, 2.2), "c0": c0, "c1": c0 * rng.uniform(-0.7, 1.0), "d": d, "f": f}
    return {"b": rng.uniform(0.85, 0.98), "c0": rng.uniform(0.0, 0.04), "c1": rng.uniform(0.15, 0.5), "d": d, "f": f}


def bnsl(x, p: dict) -> np.ndarray:
    """Caballero et al.'s reducible part b x^-c0 prod_i (1 + (x/d_i)^(1/f_i))^(-c_i f_i), one break."""
    x = np.asarray(x, float)
    with np.errstate(over="ignore"):  # far past the break the bracket overflows to inf: the term is 0
        return p["b"] * x ** -p["c0"] * (1 + (x / p["d"]) ** (1 / p["f"])) ** (-p["c1"] * p["f"])


def loss(p: dict, N, D) -> np.ndarray:
    """Noise-free loss (nats per token) of a finished run of N parameters on D tokens."""
    N, D = np.asarray(N, float), np.asarray(D, float)
    if p["form"] == "kaplan":
        return p["E"] + ((p["Nc"] / N) ** (p["aN"] / p["aD"]) + p["Dc"] / D) ** p["aD"]
    if p["form"] == "nonseparable":
        beta = p["beta0"] + p["beta1"] * np.log10(N / N0)
        return p["E"] + p["rN"] * (N0 / N) ** p["alpha"] + p["rD"] * (p["Dref"] / D) ** beta
    if p["form"] == "bnsl":
        return p["E"] + bnsl(6.0 * N * D / p["C0"], p)
    raise ValueError(f"unknown loss form {p['form']!r}")


# ------------------------------------------------------------------------------------- links
def cdf(shape: str, z, nu: float) -> np.ndarray:
    z = np.asarray(z, float)
    with np.errstate(over="ignore"):  # exp(-z) overflows far below the rise, where F is 0 anyway
        if shape == "richards":
            return (1 + nu * np.exp(-z)) ** (-1 / nu)
        if shape == "gompertz":
            return np.exp(-np.exp(-z))
    if shape == "probit":
        return 0.5 * (1 + np.asarray(_erf(z / math.sqrt(2)), dtype=float))
    if shape == "weibull":
        return np.where(z > 0, 1 - np.exp(-np.maximum(z, 0) ** nu), 0.0)
    raise ValueError(f"unknown link shape {shape!r}")


def cdf_inv(shape: str, y: float, nu: float) -> float:
    if shape == "richards":
        return -math.log((y ** -nu - 1) / nu)
    if shape == "gompertz":
        return -math.log(-math.log(y))
    if shape == "weibull":
        return (-math.log(1 - y)) ** (1 / nu)
    lo, hi = -12.0, 12.0  # probit: bisection, exact to float precision and free of scipy
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < y else (lo, mid)
    return (lo + hi) / 2


def _g(var: str, L):
    return np.log(L) if var == "logL" else np.asarray(L, float)


def _nu(rng, shape: str) -> float:
    """Richards' asymmetry, 2-5x away from the logistic's 1 either way; Weibull's threshold power."""
    if shape == "richards":
        return float(np.exp(rng.choice([-1, 1]) * rng.uniform(math.log(2), math.log(5))))
    return float(rng.uniform(1.5, 4.0)) if shape == "weibull" else 1.0


def term(rng, shape: str, var: str, w: float, anchors, L_at) -> dict:
    """One link term through two anchors ((t_a, F_a), (t_b, F_b)), t the position along the
    ladder's loss range (:func:`pipeline.ladders.zoo` passes ``L_at``), so that each rise lands
    where the design wants it whatever the loss surface."""
    nu = _nu(rng, shape)
    (ta, ya), (tb, yb) = anchors
    za, zb = cdf_inv(shape, ya, nu), cdf_inv(shape, yb, nu)
    ga, gb = float(_g(var, L_at(ta))), float(_g(var, L_at(tb)))
    s = (ga - gb) / (zb - za)  # z = (x0 - g) / s through both anchors
    return {"shape": shape, "var": var, "nu": nu, "x0": ga + s * za, "s": s, "w": float(w)}


def accuracy(link: dict, L, C) -> np.ndarray:
    """Noise-free accuracy at loss L (or, for ``bnsl_error`` links, at compute C), in [0, 1]."""
    if link["kind"] == "bnsl_error":
        err = np.minimum(bnsl(np.asarray(C, float) / link["C0"], link), 1.0)
        acc = link["a0"] + (link["ceil"] - link["a0"]) * (1 - err)
    else:
        acc = link["a0"] + sum(t["w"] * cdf(t["shape"], (t["x0"] - _g(t["var"], L)) / t["s"], t["nu"])
                               for t in link["terms"])
    return np.clip(acc, 0.0, 1.0)


def draw_link(rng, kind: str, chance: float, L_at) -> dict:
    """A random link of ``kind`` (a key of :data:`LINKS`) for a task with this chance level."""
    return {"kind": kind, "a0": chance} | LINKS[kind](rng, chance, L_at)


def pick(rng, options) -> str:
    return str(rng.choice(list(options)))


def _smooth(rng, chance, L_at) -> dict:
    """An asymmetric sigmoid rising across the ladder (the task of the layout designs)."""
    ceil = chance + (1 - chance) * rng.uniform(0.75, 1.0)
    ya = rng.uniform(0.02, 0.35)
    yb = rng.uniform(max(ya + 0.2, 0.4), 0.92)
    return {"ceil": ceil, "terms": [term(rng, pick(rng, ("richards", "probit")), pick(rng, ("L", "logL")),
                                         ceil - chance, ((0, ya), (1, yb)), L_at)]}


def _odd(rng, chance, L_at) -> dict:
    """Gompertz in L, a Weibull threshold, a probit in L with a low ceiling, or easy + hard items."""
    form = pick(rng, ("gompertz", "weibull", "probit_low_ceiling", "mixture"))
    top = {"gompertz": (0.6, 0.95), "weibull": (0.7, 1.0), "probit_low_ceiling": (0.3, 0.6), "mixture": (0.85, 1.0)}
    ceil = chance + (1 - chance) * rng.uniform(*top[form])
    if form != "mixture":
        shape = "probit" if form == "probit_low_ceiling" else form
        var = pick(rng, ("L", "logL")) if form == "weibull" else "L"
        anchors = ((0, rng.uniform(0.02, 0.3)), (1, rng.uniform(0.55, 0.92)))
        return {"form": form, "ceil": ceil, "terms": [term(rng, shape, var, ceil - chance, anchors, L_at)]}
    easy = rng.uniform(0.3, 0.7) * (ceil - chance)
    t_hard = rng.uniform(0.5, 1.0)  # the hard items start to fall late in the ladder or beyond it
    return {"form": form, "ceil": ceil, "terms": [
        term(rng, "probit", "logL", easy, ((0, rng.uniform(0.15, 0.45)), (1, rng.uniform(0.85, 0.99))), L_at),
        term(rng, "probit", "logL", ceil - chance - easy, ((t_hard, 0.05), (t_hard + rng.uniform(0.5, 1.5), 0.5)),
             L_at)]}


def _near_chance(rng, chance, L_at) -> dict:
    """At most 0.3-4 points above chance at the ladder's best run: a task the ladder cannot read."""
    ceil = chance + (1 - chance) * rng.uniform(0.7, 1.0)
    y1 = rng.uniform(0.003, 0.04) / (ceil - chance)
    anchors = ((0, y1 * rng.uniform(0.02, 0.5)), (1, y1))
    return {"ceil": ceil, "terms": [term(rng, pick(rng, SHAPES), pick(rng, ("L", "logL")), ceil - chance,
                                         anchors, L_at)]}


def _near_ceiling(rng, chance, L_at) -> dict:
    """6-20 points below a 0.90-0.97 ceiling at the smallest run, 0.5-2.5 points at the best."""
    ceil = rng.uniform(0.9, 0.97)
    gap0, gap1 = rng.uniform(0.06, 0.2), rng.uniform(0.005, 0.025)
    anchors = ((0, (ceil - gap0 - chance) / (ceil - chance)), (1, (ceil - gap1 - chance) / (ceil - chance)))
    return {"ceil": ceil, "terms": [term(rng, pick(rng, ("richards", "probit", "gompertz")),
                                         pick(rng, ("L", "logL")), ceil - chance, anchors, L_at)]}


def _emergent(rng, chance, L_at) -> dict:
    """Take-off (4% of the way up) at 45-90% of the ladder's loss range, 40-90% up at its best
    run (Wei et al. 2022, arXiv 2206.07682); a threshold on the smoothly falling loss, sometimes
    with a few easy items already solved (Schaeffer et al. 2023, arXiv 2304.15004)."""
    ceil = chance + (1 - chance) * rng.uniform(0.5, 1.0)
    t_k, y_end = rng.uniform(0.45, 0.9), rng.uniform(0.4, 0.9)
    easy = (ceil - chance) * rng.uniform(0.02, 0.08) if rng.random() < 0.25 else 0.0
    terms = [term(rng, pick(rng, ("weibull", "probit", "gompertz")), pick(rng, ("L", "logL")), ceil - chance - easy,
                  ((t_k, 0.04), (1, y_end)), L_at)]
    if easy:
        terms.append(term(rng, "probit", "logL", easy, ((0, 0.2), (1, 0.9)), L_at))
    return {"ceil": ceil, "terms": terms}


def _inverse(rng, chance, L_at) -> dict:
    """A distractor skill that grows with scale pulls accuracy down by 12-30 points (McKenzie et
    al. 2023); half the tasks recover beyond the ladder (U-shaped, Wei et al. 2022)."""
    a0 = chance + (1 - chance) * rng.uniform(0.0, 0.3)
    drop = min(rng.uniform(0.12, 0.3), a0 - 0.02)
    terms = [term(rng, pick(rng, ("richards", "probit", "gompertz")), "logL", -drop,
                  ((0, rng.uniform(0.02, 0.2)), (1, rng.uniform(0.7, 0.95))), L_at)]
    u_shaped = bool(rng.random() < 0.5)
    if u_shaped:
        rise = min(rng.uniform(0.2, 0.5), 0.98 - (a0 - drop))
        terms.append(term(rng, "probit", "logL", rise, ((1, 0.02), (rng.uniform(1.4, 2.5), 0.5)), L_at))
    return {"a0": a0, "u_shaped": u_shaped, "terms": terms}


LINKS = {"smooth": _smooth, "odd": _odd, "near_chance": _near_chance, "near_ceiling": _near_ceiling,
         "emergent": _emergent, "inverse": _inverse}
