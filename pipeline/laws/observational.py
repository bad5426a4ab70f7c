"""Observational scaling law (Ruan, Maddison, Hashimoto 2024, "Observational Scaling Laws and the
Predictability of Language Model Performance", arXiv:2405.10938; code ryoungj/ObsScaling).

Models differ in how efficiently they turn compute into a few *capabilities*; a downstream
metric is a sigmoid of those capabilities.  Following their code (docs: anchors.md section 1):

1. Benchmark matrix: one row per training unit (model, step), one column per feature
   (TASK:METRIC).  Missing cells are imputed by iterative rank-1 PCA on standardised columns
   (``pca_impute``: mean start, reconstruct, overwrite only missing cells, until they stop
   moving), fitted on the training units only, and clipped to [0, 1] for accuracies.
   With ``matrix="target"`` (default, as in their code, where the matrix holds the models
   evaluated on the target) the training units are those with a target value; ``"all"`` uses
   every training unit with any feature.
2. PCA (centred, not scaled) on the training units; the capabilities S are the first k PC
   scores.  k is chosen on the training units alone: the smallest k whose components explain
   ``variance`` (95%) of the variance, at most ``max_components`` (3, their default), and at
   most n_train - 2 so the link stays determined.  It is reported as ``n_components_``.
3. Link: the target, min-max normalised to y' = (y - chance) / (1 - chance) ("minmax_norm"
   with the random-guess floor), is sigmoid(w0 + w . S), fitted with Huber delta = 1 (their
   emergent-capability notebooks).  Floor = chance, ceiling = 1.
4. Family lines: within family f every capability is linear in log10 compute with the family's
   own intercept (its compute efficiency) and a slope shared by all families,
   S_j = slope_j * log10 C + intercept_{f,j}.  ``mode="compute"`` predicts a unit from its
   compute alone through its family's line (the family must have training units), and may then
   use the training units' own target scores as a feature (the default features include the
   target there); ``mode="features"`` (default) from its own observed benchmarks.

Uncertainty: a cluster bootstrap over training models refits imputation, PCA, family lines
and link on every resample (the links of all resamples in one batch), plus the link's misfit
scatter and the binomial noise of the target, calibrated as in :mod:`pipeline.laws.intervals`.
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
from pipeline.laws.curves import Logistic
from pipeline.laws.data import Metric

_CAPS_CACHE = data.KeyCache(64)  # imputation, PCA and family lines per rows and weights
_WIDE = data.IdentityCache(128)
_MATRIX = data.IdentityCache(128)  # feature matrices of unit frames
FEATURE = "feature::"  # prefix of the feature-value columns carried on unit frames


@dataclass
class Capabilities:
    """Fitted imputation + PCA of a benchmark matrix for R weightings at once (the full fit: R = 1).

    Arrays carry a leading axis R; ``p`` features, ``rank`` imputation components.
    """

    mean: np.ndarray  # (R, p) column means (standardisation)
    scale: np.ndarray  # (R, p) column sds
    impute_mu: np.ndarray  # (R, p) mean of the standardised matrix in the imputation PCA
    impute_basis: np.ndarray  # (R, rank, p) imputation components
    lower: np.ndarray  # (p,) clip bounds per column
    upper: np.ndarray
    pca_mean: np.ndarray  # (R, p)
    components: np.ndarray  # (R, p, p) rows = components
    explained: np.ndarray  # (R, p) explained-variance ratio per component

    def impute(self, F: np.ndarray) -> np.ndarray:
        """(R, m, p) imputed copies of raw rows ``F`` (m, p) (NaN = missing)."""
        Z = (F[None] - self.mean[:, None]) / self.scale[:, None]
        miss = np.broadcast_to(~np.isfinite(F)[None], Z.shape)
        Z = _impute_loop(np.where(miss, 0.0, Z), miss, self.impute_mu, self.impute_basis)
        return np.clip(Z * self.scale[:, None] + self.mean[:, None], self.lower, self.upper)

    def transform(self, F: np.ndarray) -> np.ndarray:
        """PC scores (R, m, p) of rows of raw feature values."""
        return np.einsum("rmp,rkp->rmk", self.impute(F) - self.pca_mean[:, None], self.components)


def _impute_loop(Z, miss, mu, basis, max_iter: int = 1000, tol: float = 1e-6):
    """Overwrite missing cells with their rank-r reconstruction until they stop moving."""
    if not miss.any():
        return Z
    for _ in range(max_iter):
        C = Z - mu[:, None]
        recon = mu[:, None] + np.einsum("rmk,rkp->rmp", np.einsum("rmp,rkp->rmk", C, basis), basis)
        change = np.abs(np.where(miss, recon - Z, 0.0)).max()
        Z = np.where(miss, recon, Z)
        if change < tol:
            break
    return Z


def _wmean(X, W):
    """Weighted column means (R, p) of X (R, n, p) with weights W (R, n)."""
    return (W[..., None] * X).sum(axis=1) / np.maximum(W.sum(axis=1), 1e-300)[:, None]


def fit_capabilities(F: np.ndarray, W: np.ndarray, lower, upper, rank: int = 1, max_iter: int = 1000,
                     tol: float = 1e-6) -> Capabilities:
    """Weighted (bootstrap counts, holdout masks) iterative-PCA imputation, then PCA, for every row
    of ``W`` (R, n) at once; a weight is the number of copies of a row (0 = left out)."""
    R, (n, p) = len(W), F.shape
    finite = np.isfinite(F)
    F0 = np.where(finite, F, 0.0)
    cw = W[:, :, None] * finite[None]  # weights of observed cells
    cnt = cw.sum(axis=1)
    mean = np.where(cnt > 0, (cw * F0[None]).sum(axis=1) / np.maximum(cnt, 1e-300), 0.0)
    var = (cw * (F0[None] - mean[:, None]) ** 2).sum(axis=1) / np.maximum(cnt, 1e-300)
    sd = np.where((cnt > 0) & (var > 1e-24), np.sqrt(var), 1.0)
    miss = np.broadcast_to(~finite[None], (R, n, p))
    Z = np.where(miss, 0.0, (F0[None] - mean[:, None]) / sd[:, None])
    sw = np.sqrt(W)[..., None]
    for _ in range(max_iter):
        mu = _wmean(Z, W)
        basis = np.linalg.svd(sw * (Z - mu[:, None]), full_matrices=False)[2][:, :rank]
        if not miss.any():
            break
        Z_new = _impute_loop(Z, miss, mu, basis, max_iter=1)
        change = np.abs(Z_new - Z).max()
        Z = Z_new
        if change < tol:
            break
    imputed = np.clip(Z * sd[:, None] + mean[:, None], lower, upper)
    pca_mean = _wmean(imputed, W)
    _, sv, vt = np.linalg.svd(sw * (imputed - pca_mean[:, None]), full_matrices=False)
    vt = vt * np.where(vt.sum(axis=2) < 0, -1.0, 1.0)[..., None]  # PC1 up = more capable
    explained = sv**2 / np.maximum((sv**2).sum(axis=1, keepdims=True), 1e-300)
    if vt.shape[1] < p:  # fewer rows than features: pad with null components
        vt = np.concatenate([vt, np.zeros((R, p - vt.shape[1], p))], axis=1)
        explained = np.concatenate([explained, np.zeros((R, p - explained.shape[1]))], axis=1)
    return Capabilities(mean, sd, mu, basis, lower, upper, pca_mean, vt, explained)


def family_lines(S: np.ndarray, log_c: np.ndarray, family: np.ndarray, W: np.ndarray, families: list[str]):
    """Weighted least squares S = slope * log10 C + intercept[family], per row of W:
    (slopes (R, k), intercepts (R, F, k)) from scores S (R, n, k)."""
    onehot = (family[:, None] == np.array(families)[None, :]).astype(float)
    A = np.column_stack([np.nan_to_num(log_c), onehot])  # (n, 1 + F)
    w = np.where(np.isfinite(log_c)[None], W, 0.0)
    sw = np.sqrt(w)[..., None]
    coef = np.array([np.linalg.lstsq(sw[r] * A, sw[r] * S[r], rcond=None)[0] for r in range(len(W))])
    return coef[:, 0], coef[:, 1:]


def _unit_keys(units, rows=None) -> list:
    """MODEL@STEP of each unit (of the positions ``rows``; STEP empty for a final checkpoint): the key
    that matches a unit's rows across frames."""
    model, step = units["model"].to_numpy(object), units["step"]
    if pd.api.types.is_integer_dtype(step.dtype):
        step = step.to_numpy(object, na_value=None)
        step = ["" if v is None else str(int(v)) for v in (step if rows is None else step[rows])]
    else:
        step = step.astype("string").fillna("").to_numpy(object)
        step = step if rows is None else step[rows]
    return [f"{m}@{s}" for m, s in zip(model if rows is None else model[rows], step)]


def _strings(column: pd.Series) -> np.ndarray:
    """A text column's values as Python strings (object array)."""
    if isinstance(column.dtype, pd.StringDtype) and not column.isna().any():
        return column.to_numpy(object)
    return column.astype(str).to_numpy(object)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _bounds(features: list[Metric]):
    lower = np.array([0.0 if f.kind == "accuracy" else -np.inf for f in features])
    upper = np.array([1.0 if f.kind == "accuracy" else np.inf for f in features])
    return lower, upper


class Observational(Law):
    """``target`` from the capabilities in ``features`` (list of TASK:METRIC; default: every other
    task's metrics that all training units have)."""

    @property
    def method(self) -> str:
        return "observational_compute" if self.mode == "compute" else "observational"

    def __init__(self, target, features=None, mode: str = "features", matrix: str = "target", n_components="auto",
                 variance: float = 0.95, max_components: int = 3, impute_rank: int = 1, floor: str = "auto",
                 chance: float | None = None, huber_delta: float = 1.0,
                 rows: Literal["all", "final", "frontier"] = "all", n_bootstrap: int = 200,
                 level: float = 0.9, random_state: int = 0):
        super().__init__(target, n_bootstrap, level, random_state)
        self.features, self.mode, self.matrix, self.floor, self.chance = features, mode, matrix, floor, chance
        self.rows = rows
        self.n_components, self.variance = n_components, variance
        self.max_components, self.impute_rank, self.huber_delta = max_components, impute_rank, huber_delta

    # -- fitting ---------------------------------------------------------------------
    def _fit(self, rows):
        if self.mode not in ("features", "compute"):
            raise FitError(f"observational: mode must be 'features' or 'compute', not {self.mode!r}")
        if self.matrix not in ("target", "all"):
            raise FitError(f"observational: matrix must be 'target' or 'all', not {self.matrix!r}")
        target = self.target_
        tgt = data.values(rows, target, self.method)
        self.features_ = self._features(rows, target)
        units = self._with_features(rows, None)
        at = {k: i for i, k in enumerate(_unit_keys(tgt))}  # (a left merge on model and step)
        at = np.array([at.get(k, len(at)) for k in _unit_keys(units)], dtype=int)
        pad = lambda c: np.append(tgt[c].to_numpy(float), np.nan)[at]  # noqa: E731
        units = units.assign(value=pad("value"), stderr=pad("stderr")).reset_index(drop=True)
        if self.matrix == "target":
            units = units.loc[units["value"].notna()].reset_index(drop=True)
        link = units["value"].notna().to_numpy()
        F = self._F(units)
        self._key = self._caps_key(units, F)
        full = self._capabilities(units, F, None)
        self.families_ = full["families"]
        k = self._choose_k(full["caps"].explained[0], int(link.sum()))
        self.n_components_, self.explained_variance_ratio_ = k, full["caps"].explained[0, :k].copy()
        self.slope_, self.family_intercepts_ = full["slope"][0][:k], full["intercepts"][0][:, :k]
        train = units.loc[link].reset_index(drop=True)
        y = train["value"].to_numpy(float)
        self.lo_, self.hi_ = self._target_bounds(target, y, train["stderr"].to_numpy(float), rows)
        self.curve_ = Logistic(k, self.huber_delta)
        data.need(len(y), self.curve_.n_params + 1, self.method, f"models with {target}")
        y_norm = (y - self.lo_) / (self.hi_ - self.lo_)
        X = self._scores(full, train)
        theta, _, ok = self.curve_.fit(X[0], y_norm)
        if not ok:
            raise FitError(f"observational: the sigmoid link of {target} on {k} capabilities did not converge "
                           f"({len(y)} training models); check --features")
        self.theta_ = theta
        self.state_ = {**full, "link": theta[None]}
        self._train = (units, F, train, y_norm)
        return train

    def _refit(self, weights):
        units, F, train, y_norm = self._train
        caps = self._capabilities(units, F, weights)
        W = weights(train)
        X = self._scores(caps, train)
        placed = np.isfinite(X).all(axis=-1)  # compute mode: a resample without a unit's family
        W, X = np.where(placed, W, 0.0), np.where(placed[..., None], X, 0.0)
        return {**caps, "link": self.curve_.refit(X, y_norm, self.state_["link"], W)}

    def _predict_state(self, state, units):
        S = self._scores(state, units)
        return self.lo_ + (self.hi_ - self.lo_) * self.curve_.predict(state["link"], S)

    def _units(self, rows):
        units = self._with_features(rows, data.targets_to_predict(rows, self.target_))
        if self.mode == "features":
            none = ~np.isfinite(self._F(units)).any(axis=1)
            if none.any():
                raise FitError(f"observational: {units.loc[none, 'model'].iloc[0]} has none of the features "
                               f"({', '.join(map(str, self.features_))}) in the rows to predict; add them or use "
                               f"--mode compute")
        elif not units["family"].astype(str).isin(self.families_).any():
            raise FitError(f"observational (compute mode): family {units['family'].iloc[0]} has no training models, "
                           f"so it has no compute line; add some of its models to --train or use --mode features")
        return units

    def _extra_columns(self, units) -> dict:
        return {"n_components": self.n_components_}

    # -- the capability matrix -------------------------------------------------------------
    def _features(self, rows, target: Metric) -> list[Metric]:
        """The capability matrix's columns.  In features mode a unit is placed by its own benchmarks,
        so the target cannot be one of them; in compute mode units are placed by compute and the
        training units' target scores may shape the capabilities (and do by default)."""
        own_task_ok = self.mode == "compute"
        if self.features:
            given = self.features.split(",") if isinstance(self.features, str) else list(self.features)
            feats = [Metric.parse(f, "--features") for f in given]
            if target in feats and not own_task_ok:
                raise FitError(f"observational: the target {target} cannot also be a feature in features mode; "
                               f"drop it from --features (or use --mode compute)")
            return feats
        keys = _unit_keys(rows)
        have = {}  # (task, metric) -> the units it has rows for
        for t, m, u in zip(rows["task"].to_numpy(object), rows["metric"].to_numpy(object), keys):
            if not (pd.isna(t) or pd.isna(m)):
                have.setdefault((t, m), set()).add(u)
        every = len(set(keys))
        feats = [Metric(t, m) for (t, m) in sorted(have)
                 if (own_task_ok or t != target.task) and len(have[t, m]) == every and scores.metric_kind(m) != "loss"]
        if not feats:
            raise FitError(f"observational: no task:metric other than {target.task}'s is present for every training "
                           f"model; name the features with --features TASK:METRIC,...")
        return sorted(feats, key=str)

    def _with_features(self, rows, units):
        """``units`` (default: every unit with any feature) with one column of values per feature
        (cached: every law of a backtest fold and its nested fits widen the same rows)."""
        return _WIDE.get((rows, units), tuple(map(str, self.features_)), lambda: self._widen(rows, units))

    def _widen(self, rows, units):
        cols = [FEATURE + str(f) for f in self.features_]
        names = list(dict.fromkeys(cols))  # a feature named twice is one column (the last match wins below)
        task, metric = rows["task"].to_numpy(object), rows["metric"].to_numpy(object)
        which = np.full(len(rows), -1)
        for f, c in zip(self.features_, cols):
            which[(task == f.task) & (metric == f.metric)] = names.index(c)
        pick = np.flatnonzero(which >= 0)
        which = which[pick]
        keys = _unit_keys(rows, pick)
        index = {}  # unit key -> row of the wide matrix, in order of first appearance
        unit = np.array([index.setdefault(k, len(index)) for k in keys], dtype=int)
        if units is None:
            if not pick.size:
                raise FitError(f"observational: none of the features {', '.join(map(str, self.features_))} "
                               f"has training rows")
            first = np.unique(unit, return_index=True)[1]  # drop_duplicates on (model, step): first rows
            units = data._sorted(rows.iloc[pick[first]][data.UNIT + data.SCALE])
        out = units.drop(columns=[c for c in cols if c in units]).copy()
        if not pick.size:
            for c in cols:
                out[c] = np.nan
            return out
        cell = unit * len(names) + which
        if len(np.unique(cell)) < len(cell):
            seen, i = set(), 0
            for i, c in enumerate(cell.tolist()):
                if c in seen:
                    break
                seen.add(c)
            raise FitError(f"observational: {names[which[i]][len(FEATURE):]} has several rows for "
                           f"{keys[i]} (different suites or num_fewshot); narrow the query")
        wide = np.full((len(index) + 1, len(names)), np.nan)  # last row: units without any feature row
        wide[unit, which] = rows["value"].to_numpy(float)[pick]
        at = np.array([index.get(k, len(index)) for k in _unit_keys(out)], dtype=int)
        grid = wide[at]
        if out.index.is_unique and not set(names) & set(out.columns):
            return pd.concat([out, pd.DataFrame(grid, columns=names, index=out.index)], axis=1)
        for j, c in enumerate(names):
            out[c] = grid[:, j]
        return out

    def _F(self, units) -> np.ndarray:
        """The feature matrix of ``units`` (cached by the frame's identity: read-only)."""
        cols = [FEATURE + str(f) for f in self.features_]
        return _MATRIX.get((units,), tuple(cols), lambda: _readonly(units[cols].to_numpy(float)))

    def _caps_key(self, units, F) -> str:
        h = hashlib.sha1(np.ascontiguousarray(F).tobytes())
        h.update("\0".join(_unit_keys(units) + units["family"].astype(str).tolist()).encode())
        h.update(units[["params", "tokens", "compute_flops"]].to_numpy(float).tobytes())
        h.update(repr((self.impute_rank, list(map(str, self.features_)))).encode())
        return h.hexdigest()

    def _capabilities(self, units, F, weights) -> dict:
        """Imputation, PCA and family lines for each row of ``weights`` (None: the full fit), cached."""
        key = self._key + ("" if weights is None else weights.key)

        def compute():
            W = np.ones((1, len(units))) if weights is None else weights(units)
            return self._fit_capabilities(units, F, W)

        return _CAPS_CACHE.get(key, compute)

    def _fit_capabilities(self, units, F, W) -> dict:
        lower, upper = _bounds(self.features_)
        fam = _strings(units["family"])
        families = sorted(set(fam))
        log_c = np.log10(np.where(units["compute_flops"] > 0, units["compute_flops"], np.nan).astype(float))
        caps = fit_capabilities(F, W, lower, upper, self.impute_rank)
        slope, intercepts = family_lines(caps.transform(F), log_c, fam, W, families)
        present = (W @ (fam[:, None] == np.array(families)[None, :])) > 0
        return {"caps": caps, "slope": slope, "intercepts": intercepts, "present": present, "families": families}

    def _choose_k(self, explained, n_train) -> int:
        if self.n_components != "auto":
            k = int(self.n_components)
        else:
            k = int(np.searchsorted(np.cumsum(explained), self.variance - 1e-12) + 1)
            k = min(k, int(self.max_components))
        return max(1, min(k, len(explained), n_train - 2))

    def _target_bounds(self, target: Metric, y, stderr, rows) -> tuple[float, float]:
        """Min-max normalisation bounds: (chance, 1) for accuracies (floor 0 instead when the
        training accuracies sit below chance, see ``floor_is_free``), (0, 100) for BLEU, else the
        training range widened by its width above (so the ceiling is not the best seen so far)."""
        if target.kind == "accuracy":
            chance = self._chance(rows)
            return (0.0 if floor_is_free(self.floor, y, stderr, chance) else chance), 1.0
        if target.metric.split(",")[0] == "bleu":
            return 0.0, 100.0
        lo, hi = float(np.min(y)), float(np.max(y))
        return min(lo, 0.0), hi + max(hi - lo, 1e-9)

    def _scores(self, state, units) -> np.ndarray:
        """Capabilities (B, m, k) of ``units`` under each state row: from their features, or
        (compute mode) from their family's line; NaN where a state cannot place a unit."""
        k = self.n_components_ if hasattr(self, "n_components_") else None
        if self.mode == "features":
            return state["caps"].transform(self._F(units))[..., :k]
        where = {f: i for i, f in enumerate(self.families_)}
        idx = np.array([where.get(f, -1) for f in _strings(units["family"])], dtype=int)
        log_c = np.log10(units["compute_flops"].to_numpy(float))
        S = state["slope"][:, None, :k] * log_c[None, :, None] + state["intercepts"][:, np.maximum(idx, 0), :k]
        S[:, idx < 0, :] = np.nan
        S[~state["present"][:, np.maximum(idx, 0)]] = np.nan  # a resample without the unit's family
        return S
