"""The skill model's arithmetic: scores from skills, its least-squares objective with the normal
equations built from the model's structure, and a closed-form start.  The law around it (data,
nested choice, intervals) is :mod:`pipeline.laws.skills`.

Unit i of family f(i), benchmark j:

    theta_i = alpha_f(i) + G^T z_i                     (k skills; z = (n, d, n d))
    y_ij    = c_j + (1 - c_j) * sigmoid(lambda_j . theta_i + b_j)

Parameters: the *shared* vector S = [G (3 x k), Lambda (J x k), b (J), phi (J)] (phi: free floors,
c_j = chance_j * sigmoid(phi_j)) and the family shifts alpha (F x k).  Fixed entries of S: the
anchor benchmarks' loadings (one unit vector per skill: the gauge of rotation and scale) and
the floors held at chance.  The shifts carry a Gaussian prior centred on 0 (the average family,
whose level the intercepts b absorb), which also fixes the gauge of translation.

Each score depends on G, one family's shift and one benchmark's link, so J^T H J is assembled
blockwise and the shifts (one k x k block per family) are eliminated by a Schur complement
before the dense solve: the solve is over ~4k + J(k + 2) parameters, not F k more.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from pipeline.laws.optim import fit_batch

LOGIT_CLIP = 0.02  # normalised scores clipped to [0.02, 0.98] for the logit start


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@dataclass
class Problem:
    """The joint training matrix: n units x J benchmarks, their design and floors."""

    Z: np.ndarray  # (n, 3) z features
    fam: np.ndarray  # (n,) family index
    Y: np.ndarray  # (n, J) scores, 0 where missing
    M: np.ndarray  # (n, J) 1.0 where observed
    chance: np.ndarray  # (J,)
    free: np.ndarray  # (J,) floor fitted in (0, chance)
    families: list  # F names, in index order
    center: np.ndarray  # (2,) training means of log10 N, log10 D

    @property
    def n(self) -> int:
        return self.Y.shape[0]

    @property
    def J(self) -> int:
        return self.Y.shape[1]

    @property
    def F(self) -> int:
        return len(self.families)

    @property
    def onehot(self) -> np.ndarray:
        return (self.fam[:, None] == np.arange(self.F)[None, :]).astype(float)


def design(log_n, log_d, center) -> np.ndarray:
    """z = (n, d, n d) with n, d = log10 N, log10 D minus the training centre."""
    n, d = np.asarray(log_n, float) - center[0], np.asarray(log_d, float) - center[1]
    return np.column_stack([n, d, n * d])


@dataclass(frozen=True)
class Layout:
    """Where each parameter sits.  The fitted vector is [S[shared_free], alpha.ravel()]."""

    k: int
    J: int
    F: int
    anchors: tuple
    free_floor: tuple

    @property
    def shared_size(self) -> int:
        return 3 * self.k + self.J * self.k + 2 * self.J

    def offsets(self):
        """Start of G, Lambda, b, phi in S."""
        g, lam = 0, 3 * self.k
        return g, lam, lam + self.J * self.k, lam + self.J * self.k + self.J

    def shared_template(self) -> np.ndarray:
        """S with every free entry 0 and the anchor loadings set (read-only, made once per layout)."""
        return _template(self)

    def shared_free(self) -> np.ndarray:
        """Positions in S of the fitted entries (read-only, made once per layout)."""
        return _free(self)

    @property
    def n_shared(self) -> int:
        return len(self.shared_free())

    @property
    def size(self) -> int:
        return self.n_shared + self.F * self.k

    def expand(self, theta):
        """theta (B, size) -> (S (B, shared_size), alpha (B, F, k))."""
        theta = np.atleast_2d(theta)
        S = np.repeat(self.shared_template()[None], len(theta), axis=0)
        S[:, self.shared_free()] = theta[:, : self.n_shared]
        return S, theta[:, self.n_shared:].reshape(len(theta), self.F, self.k)

    def pack(self, S, alpha) -> np.ndarray:
        return np.concatenate([S[:, self.shared_free()], alpha.reshape(len(S), -1)], axis=1)

    def split(self, S):
        """S -> G (B, 3, k), Lambda (B, J, k), b (B, J), phi (B, J)."""
        B, (o_g, o_lam, o_b, o_phi) = len(S), self.offsets()
        return (S[:, o_g:o_lam].reshape(B, 3, self.k), S[:, o_lam:o_b].reshape(B, self.J, self.k),
                S[:, o_b:o_phi], S[:, o_phi:])

    def shape_rows(self) -> np.ndarray:
        """(2k, shared_size): G_Ns - G_Ds and G_NDs for each skill s."""
        P = np.zeros((2 * self.k, self.shared_size))
        for s in range(self.k):
            P[2 * s, s], P[2 * s, self.k + s] = 1.0, -1.0
            P[2 * s + 1, 2 * self.k + s] = 1.0
        return P


@functools.lru_cache(maxsize=256)
def _template(layout: Layout) -> np.ndarray:
    S = np.zeros(layout.shared_size)
    o = layout.offsets()[1]
    for s, j in enumerate(layout.anchors):
        S[o + j * layout.k + s] = 1.0
    S.flags.writeable = False
    return S


@functools.lru_cache(maxsize=256)
def _free(layout: Layout) -> np.ndarray:
    fixed = np.zeros(layout.shared_size, bool)
    _, o_lam, _, o_phi = layout.offsets()
    for j in layout.anchors:
        fixed[o_lam + j * layout.k: o_lam + (j + 1) * layout.k] = True
    fixed[o_phi: o_phi + layout.J] = ~np.asarray(layout.free_floor, bool)
    out = np.flatnonzero(~fixed)
    out.flags.writeable = False
    return out


def skills(layout: Layout, S, alpha, Z, fam) -> np.ndarray:
    """Skills (B, m, k) of design rows ``Z`` (m, 3) in families ``fam`` (m,)."""
    G = layout.split(S)[0]
    return Z @ G + alpha[:, fam, :]


def link(problem: Problem, layout: Layout, S, Th):
    """Scores (B, m, J) from skills, with d score / d eta and d score / d phi."""
    _, Lam, b, phi = layout.split(S)
    s = sigmoid(Th @ Lam.transpose(0, 2, 1) + b[:, None, :])
    fs = sigmoid(phi)
    free = np.asarray(layout.free_floor, bool)
    floor = np.where(free, problem.chance * fs, problem.chance)[:, None, :]
    G = (1.0 - floor) * s * (1.0 - s)
    Dphi = np.where(free, problem.chance * fs * (1.0 - fs), 0.0)[:, None, :] * (1.0 - s)
    return floor + (1.0 - floor) * s, G, Dphi


def predict(problem: Problem, layout: Layout, theta) -> np.ndarray:
    """Scores (B, n, J) of the training units under each parameter row."""
    S, alpha = layout.expand(theta)
    return link(problem, layout, S, skills(layout, S, alpha, problem.Z, problem.fam))[0]


def _view(a: np.ndarray, shape) -> np.ndarray:
    """``a`` reshaped without a copy (an error where that is impossible): a target for ``out=``."""
    v = a.view()
    v.shape = shape
    return v


class Objective:
    """Residuals and structured Gauss-Newton steps of the joint least-squares fit, B weightings.

    Residuals: the n x J score residuals (0 where missing, with weight 0), then the priors'
    rows sqrt(rho_shape) * P S (2k) and sqrt(rho_shift) * alpha (F k).  ``rho`` (B, 2).
    """

    def __init__(self, problem: Problem, layout: Layout, rho):
        self.p, self.L = problem, layout
        self.rho = np.asarray(rho, float).reshape(-1, 2)
        self.P = layout.shape_rows()
        self.PtP = self.P.T @ self.P
        self.free = layout.shared_free()
        O = problem.onehot
        self.O = O
        self.ZZ = np.einsum("iq,ir->iqr", problem.Z, problem.Z).reshape(problem.n, 9)
        self.ZO = (problem.Z[:, :, None] * O[:, None, :]).reshape(problem.n, -1)
        self._layout = self._compact()

    def weights(self, W) -> np.ndarray:
        """(B, n) unit weights -> weights of every residual (priors: 1)."""
        cells = (W[:, :, None] * self.p.M[None]).reshape(len(W), -1)
        return np.concatenate([cells, np.ones((len(W), len(self.P) + self.L.F * self.L.k))], axis=1)

    def residuals(self, theta, idx):
        S, alpha = self.L.expand(theta)
        Th = skills(self.L, S, alpha, self.p.Z, self.p.fam)
        yhat, G, Dphi = link(self.p, self.L, S, Th)
        rho = self.rho[idx]
        r = ((yhat - self.p.Y) * self.p.M).reshape(len(S), -1)
        shape = np.sqrt(rho[:, :1]) * (S @ self.P.T)
        shift = np.sqrt(rho[:, 1:]) * alpha.reshape(len(S), -1)
        Lam = self.L.split(S)[1]
        return np.concatenate([r, shape, shift], axis=1), (G, Dphi, Th, Lam, alpha, rho)

    def _compact(self):
        """Where the free shared parameters sit in the compact vector the solve works on (the order
        of ``Layout.shared_free``): G (3k), the loadings of the non-anchor benchmarks ``jf`` (k
        each), every intercept b (J), the free floors ``pf``; and index pairs of the per-benchmark
        blocks of J^T H J in it."""
        L = self.L
        k, J = L.k, L.J
        jf = np.array([j for j in range(J) if j not in L.anchors], dtype=int)
        pf = np.flatnonzero(np.asarray(L.free_floor, bool))
        o_lam = 3 * k
        o_b = o_lam + len(jf) * k
        o_phi = o_b + J
        u, t, v = np.meshgrid(np.arange(len(jf)), np.arange(k), np.arange(k), indexing="ij")
        ll = (o_lam + u * k + t).ravel(), (o_lam + u * k + v).ravel()
        u2, t2 = np.meshgrid(np.arange(len(jf)), np.arange(k), indexing="ij")
        lb = (o_lam + u2 * k + t2).ravel(), (o_b + jf[u2]).ravel()
        at = {j: v for v, j in enumerate(pf.tolist())}
        both = np.array([u for u, j in enumerate(jf.tolist()) if j in at], dtype=int)  # jf with a free floor
        lp = (np.array([o_lam + u * k + t for u in both for t in range(k)], dtype=int),
              np.array([o_phi + at[int(jf[u])] for u in both for _ in range(k)], dtype=int))
        bp = o_b + pf, o_phi + np.arange(len(pf))
        assert o_phi + len(pf) == L.n_shared
        return jf, pf, (o_lam, o_b, o_phi), (ll, lb, lp, bp, both)

    def _data_blocks(self, Jt, h):
        hc = h[:, : self.p.n * self.p.J].reshape(len(h), self.p.n, self.p.J)
        G = Jt[0]
        return hc, hc * G * G

    def shift_precision(self, Jt, h) -> np.ndarray:
        """The shifts' blocks (B, F, k, k) of J^T H J, prior included (those of :meth:`solve`)."""
        G, Dphi, Th, Lam, alpha, rho = Jt
        B, F, k, J = len(G), self.L.F, self.L.k, self.p.J
        D = self._data_blocks(Jt, h)[1]
        M = D @ (Lam[:, :, :, None] * Lam[:, :, None, :]).reshape(B, J, k * k)
        return (self.O.T[None] @ M).reshape(B, F, k, k) + rho[:, 1, None, None, None] * np.eye(k)

    def _blocks(self, Jt, h, r):
        """J^T H J and J^T H r by blocks, over the free shared parameters (the compact vector of
        :meth:`_compact`): shared x shared (B, Ps, Ps), shifts x shared (B, F, k, Ps), shifts
        (B, F, k, k); gradients (B, Ps), (B, F, k).  Entries of fixed parameters (anchor loadings,
        floors held at chance) are never formed."""
        G, Dphi, Th, Lam, alpha, rho = Jt
        p, L = self.p, self.L
        B, n, J, k, F = len(G), p.n, p.J, L.k, L.F
        jf, pf, (o_lam, o_b, o_phi), (ll, lb, lp, bp, both) = self._layout
        Ps, nf = o_phi + len(pf), len(jf)
        nc = n * J
        hc, D = self._data_blocks(Jt, h)
        rc = r[:, :nc].reshape(B, n, J)
        Rg = hc * rc * G
        Z, O = p.Z, self.O
        # A, C and gs are laid out in memory as the selections A[:, i, i], C[..., i], gs[:, i] of the full
        # shared vector were (the parameter axes outermost): the solve's products then take the same
        # code paths, and the same rounding, as before the fixed entries were dropped
        A = np.zeros((Ps, Ps, B)).transpose(2, 0, 1)
        M = D @ (Lam[:, :, :, None] * Lam[:, :, None, :]).reshape(B, J, k * k)  # (B, n, k*k)
        A[:, :o_lam, :o_lam] = (self.ZZ.T[None] @ M).reshape(B, 3, 3, k, k).transpose(0, 1, 3, 2, 4).reshape(
            B, 3 * k, 3 * k)
        DT = np.empty((B, n, J, k))  # D_ij theta_it
        for t in range(k):
            np.multiply(D, Th[:, :, t, None], out=DT[..., t])
        DT = DT.reshape(B, n, J * k)
        LamT1 = Lam.transpose(0, 2, 1)[:, None]  # (B, 1, k, J)
        ZDT = (Z.T[None] @ DT).reshape(B, 3, 1, J, k)
        np.multiply(ZDT[:, :, :, jf, :], LamT1[:, :, :, jf, None], out=_view(A[:, :o_lam, o_lam:o_b], (B, 3, k, nf, k)))
        A[:, :o_lam, o_b:o_phi] = ((Z.T[None] @ D)[:, :, None, :] * LamT1).reshape(B, 3 * k, J)
        LL = D.transpose(0, 2, 1) @ (Th[:, :, :, None] * Th[:, :, None, :]).reshape(B, n, k * k)  # (B, J, k*k)
        Lb = (Th.transpose(0, 2, 1) @ D).transpose(0, 2, 1)  # (B, J, k)
        A[:, ll[0], ll[1]] = LL[:, jf].reshape(B, -1)
        A[:, lb[0], lb[1]] = Lb[:, jf].reshape(B, -1)
        ib = np.arange(o_b, o_phi)
        A[:, ib, ib] = D.sum(1)
        if len(pf):  # free floors: their rows (with the chance-held floors, d score / d phi is 0)
            Hgp, Dpp = hc * G * Dphi, hc * Dphi * Dphi
            A[:, :o_lam, o_phi:] = ((Z.T[None] @ Hgp)[:, :, None, :] * LamT1)[..., pf].reshape(B, 3 * k, len(pf))
            Lp = (Th.transpose(0, 2, 1) @ Hgp).transpose(0, 2, 1)
            A[:, lp[0], lp[1]] = Lp[:, jf[both]].reshape(B, -1)
            ip = np.arange(o_phi, Ps)
            A[:, bp[0], bp[1]], A[:, ip, ip] = Hgp.sum(1)[:, pf], Dpp.sum(1)[:, pf]
        A[:, o_lam:, :o_lam] = A[:, :o_lam, o_lam:].transpose(0, 2, 1)
        for idx in (lb, lp, bp):  # mirror the off-diagonal entries of the per-benchmark blocks
            A[:, idx[1], idx[0]] = A[:, idx[0], idx[1]]
        A[:, :o_lam, :o_lam] += rho[:, 0, None, None] * self.PtP[None, :o_lam, :o_lam]  # the prior is on G only
        # shifts x shared, laid out (B, F, k, Ps): row (f, s) = d/d alpha_fs, built in place
        OD = O.T[None] @ D  # (B, F, J)
        ODT = (O.T[None] @ DT).reshape(B, F, 1, J, k)  # sum over the family's units of D_ij theta_it
        LamT = Lam.transpose(0, 2, 1)  # (B, k, J)
        Cm = np.empty((Ps, B, F, k))  # C's memory: Cm[i, b, f, s] = C[b, f, s, i]
        C = Cm.transpose(1, 2, 3, 0)
        _view(Cm[:o_lam], (3, k, B, F, k))[...] = (self.ZO.T[None] @ M).reshape(B, 3, F, k, k).transpose(1, 3, 0, 2, 4)
        LamJ = LamT.transpose(2, 0, 1)  # (J, B, k)
        np.multiply(ODT.reshape(B, F, J, k)[:, :, jf, :].transpose(2, 3, 0, 1)[..., None], LamJ[jf][:, None, :, None, :],
                    out=_view(Cm[o_lam:o_b], (nf, k, B, F, k)))
        np.multiply(OD.transpose(2, 0, 1)[..., None], LamJ[:, :, None, :], out=Cm[o_b:o_phi])
        Aaa = (O.T[None] @ M).reshape(B, F, k, k) + rho[:, 1, None, None, None] * np.eye(k)
        # gradients (data, then priors: weights 1)
        gs = np.empty((Ps, B)).T
        gs[:, :o_lam] = ((Z.T[None] @ Rg) @ Lam).reshape(B, 3 * k)
        gs[:, o_lam:o_b] = (Rg.transpose(0, 2, 1) @ Th)[:, jf].reshape(B, nf * k)
        gs[:, o_b:o_phi] = Rg.sum(1)
        if len(pf):
            OH = O.T[None] @ Hgp
            np.multiply(OH.transpose(2, 0, 1)[pf][..., None], LamJ[pf][:, :, None, :], out=Cm[o_phi:])
            gs[:, o_phi:] = (hc * rc * Dphi).sum(1)[:, pf]
        S_pen = r[:, nc: nc + len(self.P)] * h[:, nc: nc + len(self.P)]
        gs += ((np.sqrt(rho[:, :1]) * S_pen) @ self.P)[:, self.free]
        ga = (O.T[None] @ Rg) @ Lam + rho[:, 1, None, None] * alpha
        return A, C, Aaa, gs, ga

    def solve(self, Jt, h, r, lam, ridge):
        """Damped Gauss-Newton step with the shifts eliminated (Schur complement)."""
        A, C, Aaa, gs, ga = self._blocks(Jt, h, r)
        B, F, k, Ps = C.shape
        eye_s, eye_k = np.eye(Ps), np.eye(k)
        A = A + lam[:, None, None] * (np.einsum("bii->bi", A)[:, :, None] * eye_s + ridge * eye_s)
        da = np.einsum("bfii->bfi", Aaa)
        Aaa = Aaa + lam[:, None, None, None] * (da[..., None] * eye_k + ridge * eye_k)
        KT = (np.linalg.inv(Aaa) @ C).reshape(B, F * k, Ps)  # (Aaa^-1 C^T) per family
        Cf = C.reshape(B, F * k, Ps)
        Sc = A - Cf.transpose(0, 2, 1) @ KT
        rhs = -gs + (KT.transpose(0, 2, 1) @ ga.reshape(B, F * k, 1))[..., 0]
        try:
            ds = np.linalg.solve(Sc, rhs[..., None])[..., 0]
        except np.linalg.LinAlgError:
            ds = np.array([np.linalg.lstsq(m, v, rcond=None)[0] for m, v in zip(Sc, rhs)])
        da = np.linalg.solve(Aaa, (-ga - (C @ ds[:, None, :, None])[..., 0])[..., None])[..., 0]
        step = np.concatenate([ds, da.reshape(B, -1)], axis=1)
        return np.where(np.isfinite(step), step, 0.0), np.concatenate([gs, ga.reshape(B, -1)], axis=1)

    def fit(self, theta0, W, max_iter, tol=1e-10):
        return fit_batch(self.residuals, theta0, self.weights(W), None, max_iter, tol, solve=self.solve)


# ----------------------------------------------------------------------- starting points
def _floor_start(problem: Problem) -> np.ndarray:
    """Starting floors: chance, or (free floors) just below the lowest training score."""
    lowest = np.where(problem.M > 0, problem.Y, np.inf).min(axis=0)
    return np.where(problem.free, np.clip(0.9 * lowest, 1e-3, problem.chance * 0.999), problem.chance)


def _logits(problem: Problem) -> np.ndarray:
    floor = _floor_start(problem)
    y = np.clip((problem.Y - floor) / (1.0 - floor), LOGIT_CLIP, 1 - LOGIT_CLIP)
    return np.log(y / (1 - y))


def _wmean(X, W):
    return (W[..., None] * X).sum(-2) / np.maximum(W.sum(-1), 1e-12)[..., None]


def principal_directions(problem: Problem, W=None):
    """Reduced-rank regression of the logit scores on (z, family) for each weighting (R, n):
    fitted logits (R, n, J) and right singular vectors of their centred values (R, J, J)."""
    W = np.ones((1, problem.n)) if W is None else np.asarray(W, float)
    U = _logits(problem)
    obs = problem.M[None] * W[:, :, None]
    mean = (obs * U).sum(1) / np.maximum(obs.sum(1), 1e-12)
    Uf = np.where(problem.M[None] > 0, U[None], mean[:, None, :])  # missing cells: column mean
    X = np.column_stack([problem.Z, problem.onehot])  # the one-hot columns sum to the intercept
    XtW = X.T[None] * W[:, None, :]
    coef = np.linalg.solve(XtW @ X + 1e-6 * np.eye(X.shape[1]), XtW @ Uf)
    fitted = X @ coef
    centred = fitted - _wmean(fitted, W)[:, None, :]
    _, _, vt = np.linalg.svd(np.sqrt(W)[:, :, None] * centred, full_matrices=False)
    return fitted, vt.transpose(0, 2, 1)


def anchors_for(V: np.ndarray, k: int) -> tuple:
    """One anchor benchmark per skill: the largest |loading| on each leading direction, distinct."""
    chosen = []
    for s in range(k):
        order = np.argsort(-np.abs(V[:, s]), kind="stable")
        chosen.append(int(next(j for j in order if j not in chosen)))
    return tuple(chosen)


def start(problem: Problem, layout: Layout, W=None) -> np.ndarray:
    """Starting parameters (R, size) per weighting: the leading directions of the reduced-rank
    fit as skills, shifts centred on 0, in the layout's gauge (anchor loadings = unit vectors)."""
    fitted, V = principal_directions(problem, W)
    W = np.ones((1, problem.n)) if W is None else np.asarray(W, float)
    R, k = len(W), layout.k
    Vk = V[:, :, :k]
    mu = _wmean(fitted, W)
    T = (fitted - mu[:, None, :]) @ Vk  # (R, n, k) scores on the leading directions
    X = np.column_stack([problem.Z, problem.onehot])
    XtW = X.T[None] * W[:, None, :]
    coef = np.linalg.solve(XtW @ X + 1e-6 * np.eye(X.shape[1]), XtW @ T)
    G, alpha = coef[:, :3], coef[:, 3:]
    present = (W @ problem.onehot) > 0
    centre = (alpha * present[..., None]).sum(1) / np.maximum(present.sum(1), 1)[:, None]
    alpha = np.where(present[..., None], alpha - centre[:, None, :], 0.0)
    Th = problem.Z @ G + alpha[:, problem.fam, :]
    b = mu - np.einsum("rk,rjk->rj", _wmean(Th, W), Vk)  # fitted = mu + (Th - mean Th) Vk^T
    A = Vk[:, list(layout.anchors), :]  # (R, k, k): the anchors' loadings
    Lam = Vk @ np.linalg.inv(A + 1e-9 * np.eye(k))
    At = A.transpose(0, 2, 1)
    G, alpha = G @ At, alpha @ At
    ratio = np.clip(_floor_start(problem) / np.where(problem.chance > 0, problem.chance, 1.0), 1e-3, 0.999)
    phi = np.log(ratio / (1 - ratio))
    S = np.concatenate([G.reshape(R, -1), Lam.reshape(R, -1), b, np.repeat(phi[None], R, 0)], axis=1)
    return layout.pack(S, alpha)
