"""Batched robust least squares: many fits at once, in numpy.

Every law in capcast is a small curve with a handful of parameters, fitted many times: from a
grid of starting points (the Chinchilla-replication procedure of Besiroglu et al. 2024 starts
L-BFGS from 4,500 points) and again for every bootstrap replicate.  Instead of looping over
scipy calls, :func:`fit_batch` runs one Levenberg-Marquardt iteration for all B problems at
once.  A problem ``b`` minimises

    sum_i  w[b, i] * rho(r_i(theta_b))

where ``rho`` is the Huber function with threshold ``delta`` (plain squares when ``delta`` is
None).  The Huber objective is handled by iteratively reweighted least squares: each
Gauss-Newton step uses the weights ``min(1, delta / |r|)``, whose fixed point is the Huber
M-estimate (Huber 1964; Holland & Welsch 1977).  Steps that do not lower the objective are
rejected and the damping raised, per problem.

A curve supplies ``residuals(theta, idx) -> (r, J)`` with ``theta`` of shape (b, P) (the rows
``idx`` of the batch), ``r`` (b, n) and the Jacobian ``J`` (b, n, P).  A model whose Jacobian is
mostly zeros (a factor model: each residual touches a few of many parameters) may instead return
``J`` as a tuple of arrays with a leading batch axis and pass ``solve(J, h, r, lam, ridge) ->
(step, g)``: the damped Gauss-Newton step of :func:`damped_solve` and the gradient J^T H r,
built from its structure.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def huber(r: np.ndarray, delta: float | None) -> np.ndarray:
    """Huber loss: r^2/2 inside +-delta, linear outside; plain r^2/2 when delta is None."""
    if delta is None:
        return 0.5 * r * r
    a = np.abs(r)
    with np.errstate(over="ignore"):  # huge residuals of a diverging trial step: inf, rejected
        return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


@dataclass
class BatchResult:
    theta: np.ndarray  # (B, P)
    loss: np.ndarray  # (B,) objective at theta
    converged: np.ndarray  # (B,) bool
    iterations: int


def _objective(r, w, delta):
    val = (w * huber(r, delta)).sum(axis=1)
    return np.where(np.isfinite(val), val, np.inf)


_EYES: dict = {}


def _eye(P: int, ridge: float):
    """(I, ridge * I) of size P, made once (read-only)."""
    key = (P, ridge)
    if key not in _EYES:
        eye = np.eye(P)
        pair = (eye, ridge * eye)
        for m in pair:
            m.flags.writeable = False
        _EYES[key] = pair
    return _EYES[key]


def damped_solve(A, g, lam, ridge) -> np.ndarray:
    """The Levenberg-Marquardt step -(A + lam (diag A + ridge))^-1 g for each problem (b, P)."""
    eye, ridge_eye = _eye(A.shape[-1], ridge)
    diag = np.einsum("bii->bi", A)
    M = A + lam[:, None, None] * (diag[:, :, None] * eye + ridge_eye)
    try:
        step = -np.linalg.solve(M, g[:, :, None])[..., 0]
    except np.linalg.LinAlgError:
        step = -np.array([np.linalg.lstsq(m, v, rcond=None)[0] for m, v in zip(M, g)])
    return np.where(np.isfinite(step), step, 0.0)


def _dense_solve(J, h, r, lam, ridge):
    JtH = J.transpose(0, 2, 1) * h[:, None, :]
    g = (JtH @ r[:, :, None])[..., 0]
    return damped_solve(JtH @ J, g, lam, ridge), g


def _rows(x, keep):
    """Rows ``keep`` of an array or of each array of a tuple."""
    return tuple(v[keep] for v in x) if isinstance(x, tuple) else x[keep]


def _pick(accept, new, old):
    """Per problem (leading axis): ``new`` where ``accept``, else ``old`` (arrays or tuples of arrays)."""
    if isinstance(new, tuple):
        return tuple(_pick(accept, n, o) for n, o in zip(new, old))
    return np.where(accept.reshape((-1,) + (1,) * (np.ndim(new) - 1)), new, old)


def _as_taken(x):
    """``x`` laid out in memory as ``x[rows]`` would be (what a solve of the active rows got before
    they were kept apart): the array itself where it is C-contiguous, else such a copy."""
    if isinstance(x, tuple):
        return tuple(_as_taken(v) for v in x)
    return x if x.flags.c_contiguous else x[np.arange(len(x))]


def fit_batch(residuals, theta0, weights=None, delta=None, max_iter=200, tol=1e-10,
              ridge=1e-9, solve=None) -> BatchResult:
    """Minimise B weighted (Huber) least-squares problems from starting points ``theta0`` (B, P).

    ``residuals(theta, idx)`` returns (r, J) for the problems ``idx`` (rows of ``theta``);
    only unfinished problems are evaluated.  ``weights`` is (n,) or (B, n) (bootstrap counts,
    0 = point left out).  A problem stops when an accepted step lowers its objective by less
    than ``tol`` (relative), when its weighted gradient vanishes, or when steps keep failing
    after the objective has stopped moving (relative change <= 1e-6: converged) or before
    (damping runs away: not converged).  ``solve``: see the module docstring (structured Jacobians).

    The unfinished problems' state is kept apart, in arrays of their own, and rebuilt only when
    some finish; each problem's arithmetic does not depend on which others are in the batch.
    """
    solve = solve or _dense_solve
    theta = np.array(theta0, dtype=float, copy=True)
    B, P = theta.shape
    a = np.arange(B)  # the unfinished problems, and their state below
    r, J = residuals(theta, a)
    w = np.ones_like(r) if weights is None else np.array(np.broadcast_to(np.asarray(weights, float), r.shape))
    f = _objective(r, w, delta)
    r, w = np.ascontiguousarray(r), np.ascontiguousarray(w)  # (as selections of their rows are)
    lam = np.full(B, 1e-3)
    flat = np.zeros(B, bool)  # gradient vanished
    rel = np.full(B, np.inf)  # relative decrease of the last accepted step
    out_theta, out_f, out_flat, out_rel = theta, f.copy(), flat.copy(), rel.copy()
    th, wa, lam_a, flat_a, rel_a = theta.copy(), w, lam, flat, rel
    it = 0
    for it in range(1, max_iter + 1):
        if a.size == 0:
            break
        h = wa if delta is None else wa * np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-300))
        ok = np.isfinite(r)
        h, ra = np.where(ok, h, 0.0), np.where(ok, r, 0.0)
        step, g = solve(_as_taken(J), h, ra, lam_a, ridge)
        scale = np.abs(f) + 1e-12
        is_flat = np.abs(g).max(axis=1) <= 1e-12 * (1.0 + scale)
        cand = th + step
        with np.errstate(all="ignore"):
            r_new, J_new = residuals(cand, a)
        f_new = _objective(r_new, wa, delta)
        r_new = np.ascontiguousarray(r_new)
        accept = (f_new < f) & ~is_flat
        rel_a = np.where(accept, (f - f_new) / scale, rel_a)
        if accept.all():
            th, r, f, J = cand, r_new, f_new, J_new
        elif accept.any():
            th, r, f = _pick(accept, cand, th), _pick(accept, r_new, r), np.where(accept, f_new, f)
            J = _pick(accept, J_new, J)
        lam_a = np.where(accept, np.maximum(lam_a / 3.0, 1e-12), lam_a * 4.0)
        flat_a = flat_a | is_flat
        stuck = ~accept & (rel_a <= 1e-6)
        done = is_flat | (accept & (rel_a <= tol)) | stuck | (lam_a > 1e10)
        if done.any():
            fin = a[done]
            out_theta[fin], out_f[fin], out_flat[fin], out_rel[fin] = th[done], f[done], flat_a[done], rel_a[done]
            keep = ~done
            a, th, r, f, wa, lam_a, flat_a, rel_a = (a[keep], th[keep], r[keep], f[keep], wa[keep], lam_a[keep],
                                                     flat_a[keep], rel_a[keep])
            J = _rows(J, keep)
    out_theta[a], out_f[a], out_flat[a], out_rel[a] = th, f, flat_a, rel_a
    converged = (out_flat | (out_rel <= 1e-6)) & np.isfinite(out_f)
    return BatchResult(out_theta, out_f, converged, it)


def best_of(result: BatchResult) -> tuple[np.ndarray, float, bool]:
    """The lowest-objective finite fit of a multi-start batch: (theta, loss, converged)."""
    loss = np.where(np.isfinite(result.loss), result.loss, np.inf)
    i = int(np.argmin(loss))
    return result.theta[i].copy(), float(loss[i]), bool(result.converged[i] and np.isfinite(loss[i]))
