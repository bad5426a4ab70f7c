"""The curve shapes every law is built from, as batched functions of their parameters.

A curve maps inputs ``X`` (n, d) — or (B, n, d), one design per bootstrap replicate — and
parameters ``theta`` (B, P) to values in its *fit space* (log loss for loss laws, the metric
itself for links), together with the Jacobian.  :mod:`pipeline.laws.optim` fits B problems
at once, so a grid of starts and a bootstrap cost one vectorised loop.

Curves:

* :class:`Chinchilla` — L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022), in the
  log-sum-exp parameterisation of the replication by Besiroglu et al. 2024:
  log L = LSE(a - alpha log N, b - beta log D, e), A = e^a, B = e^b, E = e^e.
* :class:`PowerCompute` — L(C) = E + A/C^gamma, the compute-only form for families whose D/N
  is fixed (Cerebras-GPT, 20 tokens per parameter), same parameterisation.
* :class:`Sigmoid` — y = floor + (ceiling - floor) * sigmoid(s * k * (x - x0)), the link of
  Bhagia et al. 2024 (Acc(L) = a / (1 + exp(-k (L - L0))) + b with a = floor - ceiling, b =
  ceiling) with the floor fixed at the task's chance level or free in [0, chance], and the
  ceiling in (floor, 1].  ``s = -1`` for accuracy against loss, ``+1`` against compute.
* :class:`ChanceExponential` — y = floor + k exp(-gamma x): Gadre et al. 2024's error law
  Err(L) = eps - k exp(-gamma L) with eps the chance error, as an accuracy against a loss L: no
  ceiling below 1, so it keeps rising as the loss falls.
* :class:`Linear` — y = c0 + c1 * x.
* :class:`PowerDecay` — (y - floor) / (1 - floor) = exp(-exp(b + a x)) with x = log C, fitted as
  Krajewski et al. 2025 do: least squares of log(-log y') on x (a line in fit space); ceiling 1.
* :class:`Logistic` — y = sigmoid(w0 + w . x), the PC-to-metric link of Ruan et al. 2024.

Inputs are standardised inside each curve (``x -> (x - mu) / sd``) for conditioning; the
reported parameters are in the original units.
"""
from __future__ import annotations

import itertools

import numpy as np

from pipeline.laws.optim import BatchResult, best_of, fit_batch

REFIT_ITER = 40
REFIT_TOL = 1e-6
# the best start's own iterations where the batch's ran out before it converged: a long, flat
# valley (the floor E trading against A and the exponent) can need a few hundred more steps
FINISH_ITER = 2000


def _exp(x) -> float:
    """e^x of a fitted log-parameter, for printing: inf past float range, without numpy's warning."""
    with np.errstate(over="ignore"):
        return float(np.exp(x))


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _batched(X):
    """(n, d) -> (1, n, d); (B, n, d) stays."""
    X = np.asarray(X, float)
    return X[None] if X.ndim == 2 else X


class Curve:
    """Base: subclasses define ``names``, ``evaluate(theta, X) -> (f, J)`` and ``grid(X, y)``."""

    names: tuple[str, ...] = ()
    delta: float | None = None  # Huber threshold in fit space; None = least squares

    @property
    def n_params(self) -> int:
        return len(self.names)

    def to_fit_space(self, y):
        return np.asarray(y, float)

    def from_fit_space(self, f):
        return f

    def evaluate(self, theta, X):  # pragma: no cover - interface
        raise NotImplementedError

    def grid(self, X, y) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def predict(self, theta, X) -> np.ndarray:
        """Values (B, n) in the metric's own units for each parameter row of ``theta``."""
        theta = np.atleast_2d(theta)
        f, _ = self.evaluate(theta, X)
        return self.from_fit_space(f)

    def fit_batch(self, X, y, theta0, weights=None, max_iter=200, tol=1e-10) -> BatchResult:
        """B fits from starts ``theta0`` (B, P): designs ``X`` (n, d) shared or (B, n, d) one per
        problem; values ``y`` (n,) shared or (B, n) one per problem (many curves at once)."""
        yf = self.to_fit_space(y)
        X = np.asarray(X, float)
        per_problem = X.ndim == 3 and X.shape[0] > 1  # one design per problem
        per_values = np.ndim(yf) == 2  # one set of values per problem

        def residuals(theta, idx):
            f, J = self.evaluate(theta, X[idx] if per_problem else X)
            return f - (yf[idx] if per_values else yf), J

        return fit_batch(residuals, theta0, weights=weights, delta=self.delta, max_iter=max_iter, tol=tol)

    def refit(self, X, y, theta, W) -> np.ndarray:
        """Refits for every row of weights ``W`` (bootstrap counts, holdout masks), warm-started
        at the full fit ``theta``; (len(W), P) with NaN rows where the refit is unusable.

        A refit only accepts steps that lower its objective, so any finite end point is usable;
        it stops once a step gains less than 1e-6 of the objective (ample for intervals).
        """
        start = np.repeat(np.atleast_2d(theta), len(W), axis=0)
        res = self.fit_batch(X, y, start, W, max_iter=REFIT_ITER, tol=REFIT_TOL)
        ok = np.isfinite(res.loss) & np.isfinite(res.theta).all(axis=1)
        return np.where(ok[:, None], res.theta, np.nan)

    keep, rough_iter = 32, 3  # multi-start: the `keep` best starts after `rough_iter` iterations

    def kept_starts(self, X, y, weights=None) -> np.ndarray:
        """The starts :meth:`fit` runs to convergence: the ``keep`` best grid points after
        ``rough_iter`` LM iterations from each (every grid point where there are no more)."""
        starts = self.grid(X, y)
        if len(starts) > self.keep:
            rough = self.fit_batch(X, y, starts, weights, max_iter=self.rough_iter)
            order = np.argsort(np.where(np.isfinite(rough.loss), rough.loss, np.inf), kind="stable")[:self.keep]
            starts = rough.theta[order]
        return starts

    def fit(self, X, y, weights=None) -> tuple[np.ndarray, float, bool]:
        """Multi-start fit: the :meth:`kept_starts` run to convergence; returns (theta, objective,
        converged) of the best."""
        theta, loss, ok = best_of(self.fit_batch(X, y, self.kept_starts(X, y, weights), weights))
        if not ok and np.isfinite(loss):
            # still descending when the batch's iterations ran out: the best start is run on alone
            # (it is the fit; the batch's iteration cap is for the starts that lose)
            more = best_of(self.fit_batch(X, y, theta[None], weights, max_iter=FINISH_ITER))
            if more[1] <= loss:
                return more
        return theta, loss, ok


class Chinchilla(Curve):
    """L(N, D) = E + A/N^alpha + B/D^beta, fitted as Huber(delta) on log L (Besiroglu et al. 2024).

    X columns: log N, log D.  theta = (a, b, e, alpha, beta).
    """

    names = ("a", "b", "e", "alpha", "beta")
    # the objective at each of the 4,500 grid points, the 64 best run to convergence: on the
    # Pythia ladders the same optimum as three iterations from every start, in a quarter of the time
    keep, rough_iter = 64, 0

    def __init__(self, delta: float = 1e-3):
        self.delta = delta

    def to_fit_space(self, y):
        return np.log(np.asarray(y, float))

    def from_fit_space(self, f):
        return np.exp(f)

    def evaluate(self, theta, X):
        X = _batched(X)
        lnN, lnD = X[..., 0], X[..., 1]
        a, b, e, al, be = (theta[:, i : i + 1] for i in range(5))
        t1, t2 = a - al * lnN, b - be * lnD
        t3 = np.broadcast_to(e, t1.shape)
        m = np.maximum(np.maximum(t1, t2), t3)
        s1, s2, s3 = np.exp(t1 - m), np.exp(t2 - m), np.exp(t3 - m)
        tot = s1 + s2 + s3
        J = np.empty(t1.shape + (5,))
        J[..., 0], J[..., 1], J[..., 2] = s1 / tot, s2 / tot, s3 / tot
        J[..., 3], J[..., 4] = -J[..., 0] * lnN, -J[..., 1] * lnD
        return m + np.log(tot), J

    def grid(self, X, y):
        """The Besiroglu et al. grid: alpha, beta in {0, .5, .., 2}; e in {-1, -.5, .., 1};
        a, b in {0, 5, .., 25} (4,500 starts)."""
        g = itertools.product(np.arange(0, 30, 5.0), np.arange(0, 30, 5.0), np.arange(-1, 1.5, 0.5),
                              np.arange(0, 2.5, 0.5), np.arange(0, 2.5, 0.5))
        return np.array(list(g), float)

    @staticmethod
    def readable(theta) -> dict:
        a, b, e, al, be = np.asarray(theta, float).ravel()
        return {"E": _exp(e), "A": _exp(a), "B": _exp(b),
                "alpha": float(al), "beta": float(be)}


class PowerCompute(Curve):
    """L(C) = E + A/C^gamma as Huber on log L.  X column: log C.  theta = (a, e, gamma)."""

    names = ("a", "e", "gamma")

    def __init__(self, delta: float = 1e-3):
        self.delta = delta

    to_fit_space = Chinchilla.to_fit_space
    from_fit_space = Chinchilla.from_fit_space

    def evaluate(self, theta, X):
        lnC = _batched(X)[..., 0]
        a, e, g = (theta[:, i : i + 1] for i in range(3))
        t = np.stack(np.broadcast_arrays(a - g * lnC, e + 0 * lnC))
        m = t.max(axis=0)
        s = np.exp(t - m)
        tot = s.sum(axis=0)
        w = s / tot
        return m + np.log(tot), np.stack([w[0], w[1], -w[0] * lnC], axis=-1)

    def grid(self, X, y):
        g = itertools.product(np.arange(0, 65, 5.0), np.arange(-1, 1.5, 0.5), np.arange(0, 1.6, 0.1))
        return np.array(list(g), float)

    @staticmethod
    def readable(theta) -> dict:
        a, e, g = np.asarray(theta, float).ravel()
        return {"E": _exp(e), "A": _exp(a), "gamma": float(g)}


class ChinchillaNoFloor(Chinchilla):
    """L(N, D) = A/N^alpha + B/D^beta: the Chinchilla form without an irreducible loss (E = 0).

    With few sizes the floor E of the full form is barely identified and a fit can put it just
    below the data, bending the extrapolation flat; without it the law is two power laws.
    theta = (a, b, alpha, beta).
    """

    names = ("a", "b", "alpha", "beta")

    def evaluate(self, theta, X):
        X = _batched(X)
        lnN, lnD = X[..., 0], X[..., 1]
        a, b, al, be = (theta[:, i : i + 1] for i in range(4))
        t1, t2 = a - al * lnN, b - be * lnD
        m = np.maximum(t1, t2)
        s1, s2 = np.exp(t1 - m), np.exp(t2 - m)
        tot = s1 + s2
        J = np.empty(t1.shape + (4,))
        J[..., 0], J[..., 1] = s1 / tot, s2 / tot
        J[..., 2], J[..., 3] = -J[..., 0] * lnN, -J[..., 1] * lnD
        return m + np.log(tot), J

    def grid(self, X, y):
        g = itertools.product(np.arange(0, 30, 5.0), np.arange(0, 30, 5.0), np.arange(0, 2.5, 0.5),
                              np.arange(0, 2.5, 0.5))
        return np.array(list(g), float)

    @staticmethod
    def readable(theta) -> dict:
        a, b, al, be = np.asarray(theta, float).ravel()
        return {"E": 0.0, "A": _exp(a), "B": _exp(b), "alpha": float(al), "beta": float(be)}


class PowerComputeNoFloor(PowerCompute):
    """L(C) = A/C^gamma (E = 0): log L linear in log C.  theta = (a, gamma)."""

    names = ("a", "gamma")

    def evaluate(self, theta, X):
        lnC = _batched(X)[..., 0]
        a, g = theta[:, 0:1], theta[:, 1:2]
        f = a - g * lnC
        return f, np.stack(np.broadcast_arrays(np.ones_like(f), -lnC + 0 * f), axis=-1)

    def grid(self, X, y):
        return np.array(list(itertools.product(np.arange(0, 65, 5.0), np.arange(0, 1.6, 0.1))), float)

    @staticmethod
    def readable(theta) -> dict:
        a, g = np.asarray(theta, float).ravel()
        return {"E": 0.0, "A": _exp(a), "gamma": float(g)}


class _Standardised(Curve):
    """A curve of one input x, standardised with the training mean and sd."""

    def __init__(self, x_train):
        x = np.asarray(x_train, float).ravel()
        self.mu = float(np.mean(x)) if x.size else 0.0
        sd = float(np.std(x)) if x.size > 1 else 1.0
        self.sd = sd if sd > 0 else 1.0

    def _z(self, X):
        return (_batched(X)[..., 0] - self.mu) / self.sd


class Sigmoid(_Standardised):
    """y = floor + (ceiling - floor) * sigmoid(direction * k * (x - x0)), ceiling in (floor, 1].

    theta = (log k, x0[, c][, phi]) in standardised x: ceiling = floor + (1 - floor) * sigmoid(c),
    or 1 with ``ceiling_one``; with ``free_floor`` the floor is chance * sigmoid(phi), in
    (0, chance); otherwise it is ``chance``.
    """

    def __init__(self, x_train, chance: float, direction: int, free_floor: bool = False,
                 delta: float | None = 0.01, ceiling_one: bool = False):
        super().__init__(x_train)
        self.chance, self.direction, self.free_floor, self.delta = float(chance), direction, free_floor, delta
        self.ceiling_one = ceiling_one
        self.names = ("log_k", "x0") + (() if ceiling_one else ("c",)) + (("phi",) if free_floor else ())

    def _ceiling_share(self, theta):
        """sigmoid(c): the ceiling's share of the span above the floor (1 when pinned at 1)."""
        if self.ceiling_one:
            return np.ones((theta.shape[0], 1))
        return _sigmoid(theta[:, 2:3])

    def _floor(self, theta):
        if self.free_floor:
            i = self.names.index("phi")
            s = _sigmoid(theta[:, i : i + 1])
            return self.chance * s, self.chance * s * (1 - s)
        return np.full((theta.shape[0], 1), self.chance), None

    def evaluate(self, theta, X):
        z = self._z(X)
        k = np.exp(np.clip(theta[:, 0:1], -30, 30))
        u = self.direction * k * (z - theta[:, 1:2])
        q = _sigmoid(u)
        sc = self._ceiling_share(theta)
        floor, dfloor = self._floor(theta)
        span = (1 - floor) * sc
        f = floor + span * q
        dq = span * q * (1 - q)
        J = np.empty(f.shape + (len(self.names),))
        J[..., 0], J[..., 1] = dq * u, dq * (-self.direction * k)
        if not self.ceiling_one:
            J[..., 2] = (1 - floor) * sc * (1 - sc) * q
        if self.free_floor:
            J[..., self.names.index("phi")] = dfloor * (1 - sc * q)
        return f, J

    def grid(self, X, y):
        z = self._z(X).ravel()
        x0s = np.percentile(z, [5, 50, 95]).tolist() + [float(z.min()) - 2 * self.direction,
                                                       float(z.max()) + 2 * self.direction]
        parts = [np.log([0.3, 1.0, 3.0, 10.0]), x0s] + ([] if self.ceiling_one else [[-2.0, 0.0, 2.0]])
        if self.free_floor:
            parts.append([-1.0, 2.0])
        return np.array(list(itertools.product(*parts)), float)

    def readable(self, theta) -> dict:
        theta = np.asarray(theta, float).ravel()
        floor = float(self._floor(theta[None])[0].ravel()[0])
        ceiling = floor + (1 - floor) * float(self._ceiling_share(theta[None])[0, 0])
        k = float(np.exp(np.clip(theta[0], -30, 30))) / self.sd
        x0 = self.mu + self.sd * float(theta[1])
        # Bhagia et al.'s form a / (1 + exp(-k' (x - x0))) + b: a = floor - ceiling, b = ceiling,
        # k' = -direction * k (they write the loss link with a < 0 and k > 0).
        return {"floor": floor, "ceiling": ceiling, "k": k, "x0": x0, "a": floor - ceiling, "b": ceiling}


class ChanceExponential(_Standardised):
    """y = floor + exp(u - exp(v) * z) in standardised x (z); k = e^u, gamma = e^v / sd.

    Gadre et al. 2024 (mlfoundations/scaling ``decay_ours``): Err(L) = eps - k exp(-gamma L), eps
    at the chance error, i.e. accuracy = chance + k exp(-gamma L).  The floor is ``chance`` or, with
    ``free_floor`` (training accuracies below chance), chance * sigmoid(phi).
    """

    def __init__(self, x_train, chance: float, free_floor: bool = False, delta: float | None = 0.01):
        super().__init__(x_train)
        self.chance, self.free_floor, self.delta = float(chance), free_floor, delta
        self.names = ("u", "v") + (("phi",) if free_floor else ())

    _floor = Sigmoid._floor

    def evaluate(self, theta, X):
        z = self._z(X)
        g = np.exp(np.clip(theta[:, 1:2], -30, 30))
        term = np.exp(np.clip(theta[:, 0:1] - g * z, -700, 700))
        floor, dfloor = self._floor(theta)
        f = floor + term
        J = np.empty(f.shape + (len(self.names),))
        J[..., 0], J[..., 1] = term, -term * g * z
        if self.free_floor:
            J[..., 2] = dfloor * np.ones_like(term)
        return f, J

    def grid(self, X, y):
        span = max(float(np.max(y)) - self.chance, 1e-3)
        parts = [np.log(span) + np.array([-1.0, 0.0, 1.0]), np.log([0.1, 0.3, 1.0, 3.0])]
        if self.free_floor:
            parts.append([-1.0, 2.0])
        return np.array(list(itertools.product(*parts)), float)

    def readable(self, theta) -> dict:
        theta = np.asarray(theta, float).ravel()
        floor = float(self._floor(theta[None])[0].ravel()[0])
        g = float(np.exp(np.clip(theta[1], -30, 30)))
        # back to x: floor + k' exp(-gamma' x) with gamma' = g / sd, k' = e^u exp(g mu / sd)
        gamma = g / self.sd
        return {"floor": floor, "epsilon": 1 - floor, "k": float(np.exp(theta[0] + gamma * self.mu)), "gamma": gamma}


class Linear(_Standardised):
    """y = c0 + c1 * x (least squares)."""

    names = ("c0", "c1")

    def __init__(self, x_train, delta: float | None = None):
        super().__init__(x_train)
        self.delta = delta

    def evaluate(self, theta, X):
        z = self._z(X)
        f = theta[:, 0:1] + theta[:, 1:2] * z
        J = np.stack(np.broadcast_arrays(np.ones_like(f), z + 0 * f), axis=-1)
        return f, J

    def grid(self, X, y):
        return np.array([[float(np.mean(y)), 0.0]])

    def readable(self, theta) -> dict:
        c0, c1 = np.asarray(theta, float).ravel()
        slope = c1 / self.sd
        return {"intercept": float(c0 - slope * self.mu), "slope": float(slope)}


class BoundedLinear(Linear):
    """y = c0 + c1 * x fitted as a line, predictions clipped to [lower, upper]: a line for a
    bounded metric (an accuracy between its floor and 1)."""

    def __init__(self, x_train, lower: float, upper: float = 1.0, delta: float | None = None,
                 free_floor: bool = False):
        super().__init__(x_train, delta)
        self.lower, self.upper, self.free_floor = float(lower), float(upper), free_floor

    def from_fit_space(self, f):
        return np.clip(f, self.lower, self.upper)


class Logistic(Curve):
    """y = sigmoid(w0 + w . x) on a min-max-normalised target (Ruan et al. 2024, "sigmoid").

    X (n, k) or (B, n, k): the principal components.  theta = (w0, w1..wk).  Huber delta = 1
    on the normalised target, as in their emergent-capability notebooks.
    """

    def __init__(self, k: int, delta: float | None = 1.0):
        self.k, self.delta = k, delta
        self.names = ("w0",) + tuple(f"w{i + 1}" for i in range(k))

    def evaluate(self, theta, X):
        X = _batched(X)
        lin = theta[:, 0:1] + np.einsum("bnk,bk->bn", X, theta[:, 1:]) if X.shape[0] == theta.shape[0] \
            else theta[:, 0:1] + np.einsum("nk,bk->bn", X[0], theta[:, 1:])
        f = _sigmoid(lin)
        d = f * (1 - f)
        Xb = np.broadcast_to(X, (theta.shape[0],) + X.shape[1:])
        J = np.concatenate([d[..., None], d[..., None] * Xb], axis=-1)
        return f, J

    def grid(self, X, y):
        return np.array([[0.0] + [0.03] * self.k])


class PowerDecay(Linear):
    """Krajewski et al. 2025 (arXiv 2512.08894, their equation 2): with y' = (y - floor)/(1 - floor),
    log(-log y') = a log C + b, fitted by least squares in that space (points with y' outside
    (0, 1) are dropped by the caller); y = floor + (1 - floor) exp(-e^b C^a).  Ceiling 1 by
    construction."""

    def __init__(self, x_train, chance: float, delta: float | None = None):
        super().__init__(x_train, delta)
        self.chance = float(chance)

    def to_fit_space(self, y):
        yn = (np.asarray(y, float) - self.chance) / (1 - self.chance)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.log(-np.log(yn))

    def from_fit_space(self, f):
        return self.chance + (1 - self.chance) * np.exp(-np.exp(np.clip(f, -700, 700)))

    def usable(self, y) -> np.ndarray:
        """Points the transform is defined at: chance < y < 1."""
        y = np.asarray(y, float)
        return (y > self.chance) & (y < 1)

    def grid(self, X, y):
        return np.array([[float(np.mean(self.to_fit_space(y))), 0.0]])

    def readable(self, theta) -> dict:
        line = super().readable(theta)
        return {"floor": self.chance, "a": line["slope"], "b": line["intercept"]}
