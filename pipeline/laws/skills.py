"""Skill law: a few latent skills per model, each a function of (N, D) shifted by the model's
family, read out by every benchmark (Polo et al. 2024, "Sloth: scaling laws for LLM skills to
predict multi-benchmark performance across families", arXiv:2412.06540).

Model i of family f has k skills (k = 1..4, chosen by nested validation, below)

    theta_i = alpha_f + B z_i,   z_i = (n_i, d_i, n_i * d_i),

n, d = log10 N, log10 D centred on the training units; ``alpha_f`` (k values) is the family's
*efficiency* (its shift), B (k x 3) is shared by every family.  Benchmark j reads the skills
through a monotone link with its chance level as floor and 1 as ceiling,

    y_ij = c_j + (1 - c_j) * sigmoid(lambda_j . theta_i + b_j),

c_j = chance, or fitted in (0, chance) where the training scores sit below it (the floor rule
of :func:`pipeline.laws.base.floor_is_free`).  All benchmarks of all training models are fitted
jointly (least squares on the scores, missing cells skipped), so a family with a single
training model gets its shift from that model's benchmarks, and the shared B carries the rest of
the family's scaling.  The joint fit is the same for every target benchmark of the same rows: it
is fitted once and cached (with its refits), and each target reads its own link.

Identification: the skills are defined up to an affine map; capcast fixes it by (a) the shift
of a reference family (the one with most training units) at 0 and (b) one *anchor* benchmark
per skill whose loading is that skill's unit vector (the benchmark with the largest loading on
each principal direction of the training scores), so skill s is measured in logits of its
anchor benchmark.  Predictions do not depend on these choices; reported shifts are relative to
a named family, and compute ratios are invariant to them for k = 1.

Regularisation: a Gaussian prior on B, written as a penalty rho * sum_s [(B_sN - B_sD)^2 + B_sND^2]:
where the rows cannot tell parameters from tokens (families that train every size on the same
tokens, or a fixed tokens-per-parameter recipe), the skill falls back to depending on compute
(N D) alone, with no curvature.

Nested choice (training rows only): k in 1..``max_skills`` and rho in ``penalties`` are chosen by
the same protocol the backtest applies to the whole table: each training family with at least
three models is held out in turn except for its smallest model, the candidates are fitted on the
rest, and the pooled absolute error on the held-out models' benchmarks decides.  Families with
fewer models, or tables with one family, fall back to holding out the top third of compute.

Fitting: a Gauss-Newton / Levenberg-Marquardt solve (:func:`pipeline.laws.optim.fit_batch`) with
the normal equations assembled from the model's structure (each score touches one family's
shift, one benchmark's link and B), for all bootstrap and holdout weightings at once, started
from a reduced-rank regression of the logit scores on (z, family) for full and inner fits and
warm-started from the full fit for refits.  Deterministic; no random starts.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from typing import Literal

import numpy as np
import pandas as pd

from pipeline import scores
from pipeline.errors import FitError
from pipeline.laws import data
from pipeline.laws.base import Law, floor_is_free
from pipeline.laws.data import Metric
from pipeline.laws.link import require_accuracy
from pipeline.laws.skill_model import Layout, Objective, Problem, anchors_for, design, predict, principal_directions, \
    sigmoid, skills, start

FIT_ITER, INNER_ITER, REFIT_ITER = 200, 30, 12
MIN_INNER_MODELS = 3  # a family is an inner fold when it has this many models (one kept, two scored)
MAX_INNER_FOLDS = 8
_CACHE = data.KeyCache(64)  # joint fits and refits, shared by every target of the same training rows


# ------------------------------------------------------------------- nested choice
def inner_folds(units: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Training masks (R, n) of the inner splits: each family with >= MIN_INNER_MODELS models
    (the MAX_INNER_FOLDS largest) held out but for its smallest model; else the top third of
    compute held out.  Returns (masks, names)."""
    fam = units["family"].astype(str).to_numpy()
    models = units.drop_duplicates("model")
    size = models.groupby(models["family"].astype(str))["model"].nunique()
    eligible = sorted((f for f in size.index if size[f] >= MIN_INNER_MODELS), key=lambda f: (-size[f], f))
    masks, names = [], []
    for f in sorted(eligible[:MAX_INNER_FOLDS]):
        own = models[models["family"].astype(str) == f].sort_values(["params", "compute_flops", "model"])
        keep = str(own["model"].iloc[0])
        masks.append(~((fam == f) & (units["model"].astype(str).to_numpy() != keep)))
        names.append(f"family:{f}")
    if len(masks) < 2:
        c = units["compute_flops"].to_numpy(float)
        top = c > np.quantile(c, 2 / 3)
        if top.any() and (~top).sum() >= 3:
            masks, names = [~top], ["top third of compute"]
    return np.array(masks, float).reshape(len(masks), len(units)), names


@dataclass
class JointFit:
    """The chosen joint fit of one set of training rows."""

    problem: Problem
    layout: Layout
    theta: np.ndarray  # (P,)
    rho: tuple  # (shape penalty, shift penalty)
    inner_errors: dict  # "k=..,shape=..,shift=.." -> pooled inner MAE (points)
    inner_folds: list
    sigma: float  # residual sd of the training scores around the fit


def _label(k, rho) -> str:
    return f"k={k},shape={rho[0]:g},shift={rho[1]:g}"


def fit_joint(problem: Problem, units: pd.DataFrame, ks, rhos) -> JointFit:
    """Choose k and the penalties on the inner folds, then fit on every training unit.

    ``rhos``: candidate (shape, shift) penalty pairs.  k grows until the inner error stops falling.
    """
    masks, names = inner_folds(units)
    _, V = principal_directions(problem)
    rhos = [tuple(map(float, r)) for r in rhos]
    errors, best = {}, None
    for k in ks:
        layout = Layout(k, problem.J, problem.F, anchors_for(V[0], k), tuple(bool(f) for f in problem.free))
        if not len(masks):
            best = best or (np.nan, layout, rhos[len(rhos) // 2])
            break
        err = _inner_errors(problem, layout, masks, rhos)
        errors.update({_label(k, r): round(100 * e, 4) for r, e in zip(rhos, err)})
        i = int(np.argmin(err))
        if best is not None and not err[i] < best[0] - 1e-9:
            break  # one more skill does not help inside the training rows: stop
        best = (err[i], layout, rhos[i])
    _, layout, rho = best
    res = Objective(problem, layout, [rho]).fit(start(problem, layout), np.ones((1, problem.n)), FIT_ITER)
    if not np.isfinite(res.loss[0]):
        raise FitError("skills: the joint fit of the training benchmarks did not converge; check the rows")
    resid = (predict(problem, layout, res.theta)[0] - problem.Y) * problem.M
    sigma = float(np.sqrt((resid ** 2).sum() / max(problem.M.sum() - layout.size, 1.0)))
    return JointFit(problem, layout, res.theta[0], rho, errors, names, sigma)


def _inner_errors(problem: Problem, layout: Layout, masks, rhos) -> list[float]:
    """Pooled MAE on the held-out cells of every inner fold, for each penalty pair."""
    R, c = len(masks), len(rhos)
    theta0 = np.repeat(start(problem, layout, masks), c, axis=0)
    W = np.repeat(masks, c, axis=0)
    res = Objective(problem, layout, np.tile(np.array(rhos), (R, 1))).fit(theta0, W, INNER_ITER, tol=1e-8)
    yhat = predict(problem, layout, res.theta)
    held = (W == 0)[:, :, None] * problem.M[None]
    err = np.abs(yhat - problem.Y[None]) * held
    out = []
    for i in range(c):
        e = err[i::c]
        out.append(float(e.sum() / max(held[i::c].sum(), 1)) if np.isfinite(e).all() else np.inf)
    return out


# -------------------------------------------------------------------------- the law
class Skills(Law):
    """``target`` read from k latent skills fitted jointly on every training benchmark.

    ``benchmarks``: TASK:METRIC list of the joint fit (default: every accuracy metric in the
    training rows); the target is always one of them.  ``n_skills``: "auto" (nested choice in
    1..``max_skills``) or a number; ``penalty``: "auto" (nested choice among ``penalties``) or a
    number; ``params``: which parameter count is N ("total", "non_embedding", "auto").
    """

    method = "skills"
    # the law makes its own nested choice (k, shift prior) on leave-one-family-out folds, the check that
    # matches what it is for; the base class's top-rung check (pipeline.laws.nested) is not run for it
    folds = 0

    def __init__(self, target, benchmarks=None, n_skills: int | str = "auto", max_skills: int = 4,
                 shape_penalty: float | str = 1e-4, shape_penalties=(1e-5, 1e-4, 1e-3),
                 shift_penalty: float | str = "auto", shift_penalties=(1e-2, 1e-1, 1.0, 10.0),
                 params: str = "total", skip_fraction: float = 0.1, floor: str = "auto", chance: float | None = None,
                 rows: Literal["all", "final", "frontier"] = "all", n_bootstrap: int = 200, level: float = 0.9,
                 random_state: int = 0):
        super().__init__(target, n_bootstrap, level, random_state)
        self.rows = rows
        self.benchmarks, self.n_skills, self.max_skills = benchmarks, n_skills, max_skills
        self.shape_penalty, self.shape_penalties = shape_penalty, shape_penalties
        self.shift_penalty, self.shift_penalties, self.params = shift_penalty, shift_penalties, params
        self.skip_fraction, self.floor, self.chance = skip_fraction, floor, chance

    # -- the joint fit -------------------------------------------------------------------
    def _benchmarks(self, rows) -> list[Metric]:
        target = self.target_
        if self.benchmarks:
            given = self.benchmarks.split(",") if isinstance(self.benchmarks, str) else list(self.benchmarks)
            out = [Metric.parse(b, "benchmarks") for b in given]
        else:
            pairs = sorted({(t, m) for t, m in zip(rows["task"], rows["metric"]) if scores.metric_kind(m) == "accuracy"})
            out = [Metric(t, m) for t, m in pairs]
        if target not in out:
            out.append(target)
        bad = [str(b) for b in out if b.kind != "accuracy"]
        if bad:
            raise FitError(f"skills: {', '.join(bad)} is not an accuracy in [0, 1]; drop it from benchmarks")
        return sorted(out, key=str)

    def _joint_units(self, rows, benchmarks) -> pd.DataFrame:
        """One row per training unit with a value and a stderr column per benchmark (NaN where the
        unit was not evaluated on it)."""
        label = (rows["task"].astype(str) + ":" + rows["metric"].astype(str)).to_numpy(object)
        names = [str(b) for b in benchmarks]
        mask = np.isin(label, names)
        sel, which = rows.loc[mask], label[mask]
        key = (sel["model"].astype(str) + "@" + sel["step"].astype("string").fillna("")).to_numpy(object)
        for b in benchmarks:  # absent or ambiguous benchmarks: the one-line errors of data.values
            if not (which == str(b)).any() or pd.Series(key[which == str(b)]).duplicated().any():
                data.values(rows, b, self.method)
        units = data._sorted(sel.drop_duplicates(data.UNIT)[data.UNIT + data.SCALE])
        row = pd.Index(units["model"].astype(str) + "@" + units["step"].astype("string").fillna("")).get_indexer(key)
        col = pd.Index(names).get_indexer(which)
        for what in ("value", "stderr"):
            grid = np.full((len(units), len(names)), np.nan)
            grid[row, col] = sel[what].to_numpy(float)
            for j, n in enumerate(names):
                units[f"{what}::{n}"] = grid[:, j]
        return data.skip_early(data.with_extra(units, rows), self.skip_fraction)

    def _ks(self) -> list[int]:
        if self.n_skills == "auto":
            return list(range(1, _whole(self.max_skills, "max_skills") + 1))
        return [_whole(self.n_skills, "n_skills")]

    def _rhos(self) -> list[tuple]:
        """Candidate (shape, shift) penalty pairs."""
        pairs = []
        for name, value, grid in (("shape_penalty", self.shape_penalty, self.shape_penalties),
                                  ("shift_penalty", self.shift_penalty, self.shift_penalties)):
            values = list(grid) if value == "auto" else [value]
            if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values):
                raise FitError(f"skills: {name} must be a number > 0 or 'auto' (choose among {name}s, all > 0), "
                               f"not {value!r} with {name}s {grid!r}")
            pairs.append([float(v) for v in values])
        return [(a, b) for a in pairs[0] for b in pairs[1]]

    def _prepare(self, rows):
        """(benchmarks, joint units, problem, key of the joint fit) of the training rows."""
        benchmarks = self._benchmarks(rows)
        units = self._joint_units(rows, benchmarks)
        cols = [f"value::{b}" for b in benchmarks]
        ks = self._usable_ks(benchmarks)
        data.need(units["model"].nunique(), 3, self.method, "models")
        param_kind = data.param_kind(units, self.params)
        problem = self._problem(rows, units, benchmarks, param_kind)
        return benchmarks, units, problem, param_kind, _key(units, cols, problem, ks, self._rhos(), param_kind)

    def _usable_ks(self, benchmarks) -> list[int]:
        ks = [k for k in self._ks() if k <= len(benchmarks)]  # one anchor benchmark per skill
        if not ks:
            raise FitError(f"skills: {len(benchmarks)} benchmark(s) in the training rows; k skills need at least "
                           f"k (name more with benchmarks: [...] or lower n_skills)")
        return ks

    def _fit(self, rows):
        target = self.target_
        require_accuracy(target, self.method)
        # every target of the same rows shares the preparation and the joint fit
        # (named benchmarks get the target added, and a chance option is the target's: both per target)
        per_target = str(target) if self.benchmarks or self.chance is not None else None
        options = (self.benchmarks, self.params, self.skip_fraction, self.floor, self.n_skills, self.max_skills,
                   self._rhos(), self.chance, per_target)
        prep = _CACHE.get("rows:" + _rows_digest(rows, options), lambda: self._prepare(rows))
        benchmarks, units, problem, self.param_kind_, self._key = prep
        ks = self._usable_ks(benchmarks)
        joint = _CACHE.get(self._key, lambda: fit_joint(problem, units, ks, self._rhos()))
        self._joint, self._units_all = joint, units
        self.benchmarks_, self.families_ = [str(b) for b in benchmarks], list(problem.families)
        self.n_skills_, (self.shape_penalty_, self.shift_penalty_) = joint.layout.k, joint.rho
        self.form_ = _label(joint.layout.k, joint.rho)
        self.anchors_ = [self.benchmarks_[j] for j in joint.layout.anchors]
        self.skill_inner_errors_, self.skill_folds_ = joint.inner_errors, joint.inner_folds
        self._j = benchmarks.index(target)
        self.state_ = {"theta": joint.theta[None], "present": np.ones((1, problem.F), bool)}
        train = units[data.UNIT + data.SCALE + [c for c in ("params_non_embedding",) if c in units]].copy()
        train["value"] = units[f"value::{target}"].to_numpy(float)
        train["stderr"] = units[f"stderr::{target}"].to_numpy(float)
        return train

    def _problem(self, rows, units, benchmarks, param_kind) -> Problem:
        Y = units[[f"value::{b}" for b in benchmarks]].to_numpy(float)
        se = units[[f"stderr::{b}" for b in benchmarks]].to_numpy(float)
        log_n = np.log10(data.param_counts(units, param_kind))
        log_d = np.log10(units["tokens"].to_numpy(float))
        center = np.array([log_n.mean(), log_d.mean()])
        families = sorted(units["family"].astype(str).unique())
        fam = np.array([families.index(f) for f in units["family"].astype(str)], dtype=int)
        chance = np.array([b.chance(rows) if b != self.target_ else self._chance(rows) for b in benchmarks])
        seen = np.isfinite(Y)
        free = np.array([floor_is_free(self.floor, Y[seen[:, j], j], se[seen[:, j], j], chance[j])
                         for j in range(len(benchmarks))])
        return Problem(design(log_n, log_d, center), fam, np.nan_to_num(Y), seen.astype(float), chance, free,
                       families, center)

    def _refit(self, weights):
        joint, units = self._joint, self._units_all

        def compute():
            W = weights(units)
            obj = Objective(joint.problem, joint.layout, np.tile(joint.rho, (len(W), 1)))
            res = obj.fit(np.repeat(joint.theta[None], len(W), axis=0), W, REFIT_ITER, tol=1e-7)
            ok = np.isfinite(res.loss) & np.isfinite(res.theta).all(axis=1)
            theta = np.where(ok[:, None], res.theta, np.nan)
            draws = np.ones(len(W), bool)  # the plain refit of each holdout set stays a point estimate
            for _, rows in getattr(weights, "groups", []):
                draws[rows.start] = False
            theta = shift_draws(obj, theta, W, draws, joint.sigma, self._seed(3) + [_digest_int(weights.key)])
            return {"theta": theta, "present": (W @ joint.problem.onehot) > 0}

        return _CACHE.get(self._key + weights.key, compute)

    # -- prediction ----------------------------------------------------------------------
    def _skills(self, state, units) -> np.ndarray:
        """Skills (B, m, k) of ``units`` under each state row.  A family the fit has not seen is
        placed at the prior mean (the average family); a seen family absent from a resample has
        no skills under it (NaN)."""
        joint = self._joint
        z = design(np.log10(data.param_counts(units, self.param_kind_)), np.log10(units["tokens"].to_numpy(float)),
                   joint.problem.center)
        S, alpha = joint.layout.expand(state["theta"])
        idx = np.array([self.families_.index(f) if f in self.families_ else -1
                        for f in units["family"].astype(str)], dtype=int)
        alpha = np.concatenate([alpha, np.zeros_like(alpha[:, :1])], axis=1)  # index -1: the average family
        Th = skills(joint.layout, S, alpha, z, idx)
        absent = ~np.concatenate([state["present"], np.ones_like(state["present"][:, :1])], axis=1)[:, idx]
        Th[absent] = np.nan
        return Th

    def _predict_state(self, state, units):
        joint, j = self._joint, self._j
        Th = self._skills(state, units)
        S = joint.layout.expand(state["theta"])[0]
        _, Lam, b, phi = joint.layout.split(S)
        c = joint.problem.chance[j]
        floor = np.where(joint.problem.free[j], c * sigmoid(phi[:, j]), c)[:, None]
        eta = np.einsum("bmk,bk->bm", Th, Lam[:, j, :]) + b[:, j][:, None]
        return floor + (1.0 - floor) * sigmoid(eta)

    def _extra_columns(self, units) -> dict:
        return {"n_components": self.n_skills_}

    # -- the family comparison -------------------------------------------------------------
    def family_table(self, reference: str, params: float, tokens: float) -> pd.DataFrame:
        """Each training family's efficiency against ``reference``, skill by skill, with ``level``
        intervals from the bootstrap refits: the shift alpha_f - alpha_ref (in logits of the
        skill's anchor benchmark) and the compute multiplier k: family f needs k times the
        reference's compute to reach the skill the reference has at (``params``, ``tokens``),
        both scaled along the reference's tokens-per-parameter ratio (k > 1: f is less efficient).
        """
        if not hasattr(self, "state_"):
            raise FitError("skills: family_table called before fit")
        if reference not in self.families_:
            raise FitError(f"skills: reference family {reference!r} has no training models (families: "
                           f"{', '.join(self.families_)})")
        point = self._efficiency(self.state_["theta"], reference, params, tokens)
        draws = None
        if self.boot_ is not None:
            draws = self._efficiency(self.boot_["theta"], reference, params, tokens)
            missing = ~self.boot_["present"]  # a resample without the family says nothing about it
            draws = {key: np.where(missing[:, :, None], np.nan, v) for key, v in draws.items()}
        lo_q, hi_q = (1 - self.level) / 2, (1 + self.level) / 2
        models = self._units_all.drop_duplicates("model")["family"].astype(str).value_counts()
        rows = []
        for f, fam in enumerate(self.families_):
            for s in range(self.n_skills_):
                row = {"family": fam, "reference": reference, "skill": s + 1, "anchor": self.anchors_[s],
                       "models": int(models.get(fam, 0))}
                for key in ("shift", "log10_k"):
                    row[key] = float(point[key][0, f, s])
                    vals = draws[key][:, f, s] if draws is not None else np.array([np.nan])
                    ok = np.isfinite(vals)
                    row[f"{key}_lower"] = float(np.quantile(vals[ok], lo_q)) if ok.sum() >= 2 else np.nan
                    row[f"{key}_upper"] = float(np.quantile(vals[ok], hi_q)) if ok.sum() >= 2 else np.nan
                rows.append(row)
        out = pd.DataFrame(rows)
        for key in ("", "_lower", "_upper"):
            out[f"k{key}"] = 10.0 ** out[f"log10_k{key}"]
        return out

    def _efficiency(self, theta, reference: str, params: float, tokens: float) -> dict:
        """Shifts against the reference (B, F, k) and log10 compute multipliers (B, F, k)."""
        joint = self._joint
        S, alpha = joint.layout.expand(theta)
        G = joint.layout.split(S)[0]  # (B, 3, k): per decade of N, of D, and of their product
        shift = alpha - alpha[:, [self.families_.index(reference)], :]
        a0 = np.log10(params) - joint.problem.center[0]
        b0 = np.log10(tokens) - joint.problem.center[1]
        c2 = G[:, 2] / 4.0  # skill along the recipe: shift + c1 u + c2 u^2, u = log10 compute ratio
        c1 = (G[:, 0] + G[:, 1]) / 2.0 + G[:, 2] * (a0 + b0) / 2.0
        return {"shift": shift, "log10_k": _rising_root(c2[:, None, :], c1[:, None, :], shift)}


def _rising_root(c2, c1, c0) -> np.ndarray:
    """u with c0 + c1 u + c2 u^2 = 0 on the branch where the skill rises (c1 + 2 c2 u > 0),
    nearest 0; NaN where there is none (the skill does not rise with compute there)."""
    with np.errstate(all="ignore"):
        linear = np.where(c1 > 0, -c0 / c1, np.nan)
        disc = c1 * c1 - 4 * c2 * c0
        root = np.sqrt(np.where(disc >= 0, disc, np.nan))
        # the root on the rising branch: (-c1 + sqrt(disc)) / (2 c2) has slope +sqrt(disc) > 0
        quad = (-c1 + root) / (2 * c2)
        quad = np.where(np.isfinite(quad), quad, -2 * c0 / (c1 + root))  # same root, stable near c2 = 0
    return np.where(np.abs(c2) < 1e-12, linear, quad)


def _whole(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 8:
        raise FitError(f"skills: {name} must be 'auto' or a whole number from 1 to 8, not {value!r}")
    return value


def shift_draws(obj: Objective, theta, W, draws, sigma: float, seed) -> np.ndarray:
    """Each draw's family shifts plus a sample of their conditional posterior given the rest of
    the fit (Laplace: covariance sigma^2 (J_f^T J_f + rho I)^-1 per family).  The cluster bootstrap
    moves a shift only by resampling its family's models; a family known from one small model,
    whose scores sit near chance, has a shift the data barely pin down, and this says so."""
    ok = np.isfinite(theta).all(axis=1) & draws
    if not ok.any() or not sigma > 0:
        return theta
    idx = np.flatnonzero(ok)
    Jt = obj.residuals(theta[idx], idx)[1]
    Aaa = obj.shift_precision(Jt, obj.weights(W[idx]))
    L = np.linalg.cholesky(np.linalg.inv(Aaa + 1e-12 * np.eye(obj.L.k)))
    eps = np.random.default_rng(seed).standard_normal((len(idx),) + Aaa.shape[1:3])
    S, alpha = obj.L.expand(theta[idx])
    out = theta.copy()
    out[idx] = obj.L.pack(S, alpha + sigma * (L @ eps[..., None])[..., 0])
    return out


def _rows_digest(rows: pd.DataFrame, options) -> str:
    cols = [c for c in ("suite", "model", "family", "params", "params_non_embedding", "tokens", "compute_flops", "step",
                        "task", "metric", "value", "stderr", "num_fewshot", "chance") if c in rows.columns]
    h = hashlib.sha1(pd.util.hash_pandas_object(rows[cols], index=False).to_numpy().tobytes())
    h.update(repr(options).encode())
    return h.hexdigest()


def _digest_int(text: str) -> int:
    return int(hashlib.sha1(text.encode()).hexdigest()[:8], 16)


def _key(units, cols, problem: Problem, ks, rhos, param_kind) -> str:
    h = hashlib.sha1(units[data.UNIT + data.SCALE + cols].to_csv(index=False).encode())
    h.update(repr((tuple(cols), tuple(np.round(problem.chance, 9)), tuple(problem.free), tuple(ks), tuple(rhos),
                   param_kind)).encode())
    return h.hexdigest()
