"""The forms of a score curve over log scale as grids ("banks"), fitted in closed form, vectorised
over bootstrap replicates.

A curve is points (t_i, y_i, s_i): t = log10(scale) (compute or parameters), y a score, s its
standard error.  Every form below is "linear parameters given a few nonlinear ones", so for a
grid of nonlinear values the weighted least-squares optimum of the linear ones is closed-form;
a whole grid and a whole bootstrap sample are then a couple of matrix products (no iterative
optimiser, fully deterministic).  The best grid point is refined by a local zoom grid.

Forms (k = parameters counted in the information criterion):

* ``chance``   y = c (the task's random-guess level; k = 0)
* ``const``    y = a (k = 1)
* ``linear``   y = a + b·t (k = 2; its slope and t-statistic are reported, as in Michaelov &
  Bergen 2023, "Emergent inabilities? Inverse scaling over the course of pretraining")
* ``power``    y = a + b·10^(−c·t') (power law with offset, t' = t − t_min; k = 3); c < 0 is an
  accelerating rise or fall (allowed except for losses, which have a floor)
* ``sigmoid_chance``  y = c + A·σ((t − t0)/w), floor at chance, A within [−c, 1 − c] (k = 3)
* ``sigmoid``  y = a + A·σ((t − t0)/w) (k = 4)
* ``break``    the broken neural scaling law with one break (Caballero et al. 2022, "Broken
  neural scaling laws"):  y = a + b·x^(−c0)·(1 + (x/d)^(1/f))^(−c1·f), written in decades:
  y = a + b·10^(−c0·t' − c1·f·log10(1 + 10^((t' − d)/f)));  the sharpness f is fixed from
  params (k = 5; 6 when f is chosen from a grid).  c1 of the opposite sign to c0 bends the curve
  back: inverse → U-shaped, flat → delayed take-off.

The shape tests that choose among them are :mod:`pipeline.trends.shapes`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.trends.settings import Settings, settings_key

MONO_FORMS = ("linear", "power", "sigmoid_chance", "sigmoid")
NULL_FORMS = ("chance", "const")
ALL_FORMS = NULL_FORMS + MONO_FORMS + ("break",)
LN10 = float(np.log(10.0))


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))


# ----------------------------------------------------------------------------- banks
@dataclass
class Bank:
    """A form's grid: nonlinear parameters ``theta`` (G, q) and basis ``H`` (G, n) on the data."""

    name: str
    k: int
    theta: np.ndarray
    intercept: bool  # free additive constant a (else the constant is ``offset``)
    offset: float = 0.0
    b_bounds: tuple = (-np.inf, np.inf)  # only for forms without a free intercept
    t_ref: float = 0.0
    H: np.ndarray = field(default=None, repr=False)
    norm: np.ndarray = field(default=None, repr=False)

    def basis(self, theta: np.ndarray, t: np.ndarray) -> np.ndarray:
        """(G, m) basis at scales t for nonlinear parameters theta (G, q), unnormalised."""
        u = np.asarray(t, dtype=float)[None, :] - self.t_ref
        if self.name == "linear":
            return np.broadcast_to(u, (len(theta), u.shape[1])).copy()
        # 10^x as exp(x ln 10): the same numbers to rounding, several times faster than a power
        if self.name == "power":
            return np.exp(np.clip(-theta[:, :1] * u, -300, 300) * LN10)
        if self.name in ("sigmoid", "sigmoid_chance"):
            return sigmoid((u - theta[:, :1]) / theta[:, 1:2])
        if self.name == "break":
            c0, c1, d, f = (theta[:, i:i + 1] for i in range(4))
            soft = np.logaddexp(0.0, (u - d) / f * LN10) / LN10  # log10(1 + 10^z), z = (u - d) / f
            return np.exp(np.clip(-c0 * u - c1 * f * soft, -300, 300) * LN10)
        raise ValueError(self.name)

    def prepare(self, t: np.ndarray) -> "Bank":
        H = self.basis(self.theta, t)
        norm = np.max(np.abs(H), axis=1)
        norm[~(norm > 0)] = 1.0
        self.H, self.norm = H / norm[:, None], norm
        return self

    def design(self, g: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Normalised basis at scales t for grid indices g → (len(g), m)."""
        return self.basis(self.theta[g], t) / self.norm[g][:, None]


def _grid(*axes) -> np.ndarray:
    mesh = np.meshgrid(*[np.asarray(a, dtype=float) for a in axes], indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


_BANKS: dict = {}


def make_banks(t: np.ndarray, chance: float | None, cfg: Settings, n: int,
               decelerating_only: bool = False) -> dict[str, Bank]:
    """Grids for every form that can be fitted on a curve of ``n`` points over scales ``t`` (read
    only: curves over the same scales, every task of a family, share them)."""
    key = (np.asarray(t, float).tobytes(), chance, n, decelerating_only, settings_key(cfg))
    banks = _BANKS.get(key)
    if banks is None:
        if len(_BANKS) >= 512:
            _BANKS.clear()
        banks = _BANKS[key] = _make_banks(t, chance, cfg, n, decelerating_only)
    return banks


def _make_banks(t, chance, cfg, n, decelerating_only) -> dict[str, Bank]:
    t_min, t_max = float(np.min(t)), float(np.max(t))
    span = max(t_max - t_min, 1e-6)
    banks: dict[str, Bank] = {}
    if n >= 3:
        banks["linear"] = Bank("linear", 2, np.zeros((1, 1)), True, t_ref=t_min)
    if n >= 4:
        c = np.asarray(cfg.power_c, dtype=float)
        # c > 0: decelerating toward an asymptote (the usual scaling-law form); c < 0: accelerating,
        # as in PassUntil's "accelerated emergence" (Hu et al. 2023).  Losses (fitted on ln L)
        # have an irreducible floor, so only c > 0 there.
        cs = c if decelerating_only else np.concatenate([-c[::-1], c])
        banks["power"] = Bank("power", 3, cs[:, None], True, t_ref=t_min)
        t0 = np.arange(-1.0, span + 1.5 + 1e-9, cfg.sig_t0_step)
        sig_theta = _grid(t0, cfg.sig_w)
        if chance is not None:
            banks["sigmoid_chance"] = Bank("sigmoid_chance", 3, sig_theta, False, offset=chance,
                                           b_bounds=(-chance, 1.0 - chance), t_ref=t_min)
    if n >= 5:
        banks["sigmoid"] = Bank("sigmoid", 4, sig_theta, True, t_ref=t_min)
    if n >= cfg.break_min_points:
        bc = np.asarray(cfg.break_c, dtype=float)
        c_all = np.unique(np.concatenate([-bc, bc]))
        c1 = c_all[c_all != 0]
        d = np.linspace(0.1 * span, span + 1.0, 12)
        f = np.asarray(cfg.break_f, dtype=float)
        k = 5 + (len(f) > 1)
        banks["break"] = Bank("break", k, _grid(c_all, c1, d, f), True, t_ref=t_min)
    for b in banks.values():
        b.prepare(t)
    return banks


# ----------------------------------------------------------------------------- solving
@dataclass
class BankFit:
    """Best grid point per replicate: index g (B,), linear coefficients a, b (B,), SSE (B,)."""

    g: np.ndarray
    a: np.ndarray
    b: np.ndarray
    sse: np.ndarray
    theta: np.ndarray  # (B, q) nonlinear parameters at the optimum


def solve_bank(bank: Bank, Y: np.ndarray, w: np.ndarray) -> BankFit:
    """Weighted least squares of every grid point for every replicate row of Y (B, n)."""
    H = bank.H
    Yw = Y * w
    Swyy = np.einsum("bn,bn->b", Yw, Y)
    if bank.intercept:
        Sw = w.sum()
        Swh = H @ w
        Swhh = (H * H) @ w
        Swy = Yw.sum(axis=1)
        Swhy = Yw @ H.T  # (B, G)
        det = Sw * Swhh - Swh ** 2
        ok = det > 1e-10 * Sw * np.maximum(Swhh, 1e-300)
        safe = np.where(ok, det, 1.0)
        a = np.where(ok, (Swhh * Swy[:, None] - Swh * Swhy) / safe, Swy[:, None] / Sw)
        b = np.where(ok, (Sw * Swhy - Swh * Swy[:, None]) / safe, 0.0)
        sse = Swyy[:, None] - a * Swy[:, None] - b * Swhy
    else:
        Yo = Y - bank.offset
        Ywo = Yo * w
        Swyy = np.einsum("bn,bn->b", Ywo, Yo)
        Swhh = (H * H) @ w
        Swhy = Ywo @ H.T
        lo, hi = bank.b_bounds
        # bounds are on the unnormalised amplitude A = b / norm
        b = np.clip(np.where(Swhh > 0, Swhy / np.where(Swhh > 0, Swhh, 1.0), 0.0), lo * bank.norm, hi * bank.norm)
        a = np.full_like(b, bank.offset)
        sse = Swyy[:, None] - 2 * b * Swhy + b * b * Swhh
    sse = np.maximum(sse, 0.0)
    g = np.argmin(sse, axis=1)
    rows = np.arange(len(g))
    return BankFit(g, a[rows, g], b[rows, g], sse[rows, g], bank.theta[g])


def predict_bank(bank: Bank, fit: BankFit, t: np.ndarray) -> np.ndarray:
    """(B, m) predictions of each replicate's best grid point at scales t."""
    if bank.name in NULL_FORMS:
        return np.broadcast_to(fit.a[:, None], (len(fit.a), len(t))).copy()
    H = bank.basis(fit.theta, t)
    norm = bank.norm[fit.g] if fit.g is not None else np.ones(len(fit.a))
    return fit.a[:, None] + fit.b[:, None] * H / norm[:, None]


def refine(bank: Bank, y: np.ndarray, w: np.ndarray, t: np.ndarray, fit: BankFit, rounds: int = 3,
           allowed=None) -> BankFit:
    """Zoom the grid around one fit's optimum (a few local rounds of a 5^q grid at half the spacing).

    ``allowed(bank, fit) -> bool mask (G,)`` restricts the candidates (all allowed by default).
    Returns a BankFit with ``g=None`` whose ``b`` multiplies the *unnormalised* basis."""
    theta = fit.theta[0].copy()
    steps = []
    for j in range(bank.theta.shape[1]):
        vals = np.unique(bank.theta[:, j])
        if len(vals) < 2:
            steps.append(0.0)
            continue
        gaps = np.diff(vals)
        i = int(np.searchsorted(vals, theta[j]))
        steps.append(float(gaps[min(max(i - 1, 0), len(gaps) - 1)]))
    best = BankFit(None, fit.a.copy(), fit.b / bank.norm[fit.g], fit.sse.copy(), fit.theta.copy())
    for _ in range(rounds):
        axes = [theta[j] + steps[j] * np.array([-0.5, -0.25, 0.0, 0.25, 0.5]) if steps[j] else [theta[j]]
                for j in range(len(theta))]
        local = Bank(bank.name, bank.k, _grid(*axes), bank.intercept, bank.offset, bank.b_bounds, bank.t_ref)
        if bank.name in ("sigmoid", "sigmoid_chance"):
            local.theta[:, 1] = np.maximum(local.theta[:, 1], 0.01)
        if bank.name == "break":
            local.theta[:, 3] = np.maximum(local.theta[:, 3], 0.02)
        local.prepare(t)
        all_fits = solve_all(local, y, w)
        if allowed is not None:
            all_fits.sse[~allowed(local, all_fits)] = np.inf
        g = int(np.argmin(all_fits.sse))
        if all_fits.sse[g] < best.sse[0] - 1e-12:
            best = BankFit(None, all_fits.a[g:g + 1], all_fits.b[g:g + 1] / local.norm[g],
                           all_fits.sse[g:g + 1], local.theta[g:g + 1])
            theta = local.theta[g].copy()
        steps = [s / 2 for s in steps]
    return best


def solve_all(bank: Bank, y: np.ndarray, w: np.ndarray) -> BankFit:
    """Weighted least squares at every grid point for one curve y: a, b, SSE arrays (G,)."""
    H = bank.H
    if bank.intercept:
        Sw, Swh, Swhh = w.sum(), H @ w, (H * H) @ w
        Swy, Swhy, Swyy = np.sum(w * y), H @ (w * y), np.sum(w * y * y)
        det = Sw * Swhh - Swh ** 2
        ok = det > 1e-10 * Sw * np.maximum(Swhh, 1e-300)
        safe = np.where(ok, det, 1.0)
        a = np.where(ok, (Swhh * Swy - Swh * Swhy) / safe, Swy / Sw)
        b = np.where(ok, (Sw * Swhy - Swh * Swy) / safe, 0.0)
        sse = Swyy - a * Swy - b * Swhy
    else:
        yo = y - bank.offset
        Swhh, Swhy, Swyy = (H * H) @ w, H @ (w * yo), np.sum(w * yo * yo)
        lo, hi = bank.b_bounds
        b = np.clip(np.where(Swhh > 0, Swhy / np.where(Swhh > 0, Swhh, 1.0), 0.0), lo * bank.norm, hi * bank.norm)
        a = np.full_like(b, bank.offset)
        sse = Swyy - 2 * b * Swhy + b * b * Swhh
    return BankFit(np.arange(len(a)), a, b, np.maximum(sse, 0.0), bank.theta)


def predict_unnorm(bank: Bank, fit: BankFit, t: np.ndarray) -> np.ndarray:
    """Predictions for a refined fit (b already for the unnormalised basis)."""
    if bank.name in NULL_FORMS:
        return np.broadcast_to(fit.a[:, None], (len(fit.a), len(t))).copy()
    return fit.a[:, None] + fit.b[:, None] * bank.basis(fit.theta, t)
