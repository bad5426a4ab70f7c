"""Where a curve crosses chance + margin: the emergence routes of the trends stage.

Three routes estimate the scale (log10 compute) where a family's accuracy reaches chance +
margin, from different evidence:

* ``loss``: a continuous signal of the same task (task loss or p(correct); Schaeffer et al.
  2023/2024) in two steps: accuracy against the signal over every (model, step), the signal
  against compute over the family's models;
* ``pc``: the observational capability PCs of a benchmark matrix (Ruan, Maddison & Hashimoto
  2024): accuracy against the PCs over every family, the family's PCs against compute;
* ``fit``: the curve's own forecast form (:mod:`pipeline.trends.fit`).

Intervals resample both fits of a two-fit route (nonparametric bootstrap over points) and come
from the forecast's law band for ``fit``.  The crossing backtest (:mod:`pipeline.trends.backtest`)
checks all three on curves that cross inside their data.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline import scores
from pipeline.trends import banks
from pipeline.trends.curves import family_map, final_rows, to_compute_params


def setting_key(suite, task, metric, shots) -> tuple:
    """Cache key of one evaluation setting: NaN shots (unknown) compare unequal, so they get a sentinel."""
    shots = -1.0 if shots is None or (isinstance(shots, float) and np.isnan(shots)) else float(shots)
    return (suite, task, metric, shots)


def _logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def fit_link(X: np.ndarray, y: np.ndarray, floor: float, W: np.ndarray, iters: int = 25) -> np.ndarray:
    """Least squares of y = floor + (1 − floor)·σ(X·β), for every row of multiplicities W (B, n)
    at once (Levenberg–Marquardt, vectorised over replicates).  Returns β (B, p)."""
    B, n = W.shape
    p = X.shape[1]
    q = np.clip((y - floor) / (1 - floor), 0.02, 0.98)
    z0 = _logit(q)
    beta = np.linalg.lstsq(X, z0, rcond=None)[0]
    beta = np.tile(beta, (B, 1))
    lam = np.full(B, 1e-2)

    def sse_of(bt):
        mu = floor + (1 - floor) * banks.sigmoid(bt @ X.T)
        return np.einsum("bn,bn->b", W, (y[None, :] - mu) ** 2), mu

    cur, mu = sse_of(beta)
    eye = np.eye(p)
    for _ in range(iters):
        sg = (mu - floor) / (1 - floor)
        J = ((1 - floor) * sg * (1 - sg))[:, :, None] * X[None, :, :]  # (B, n, p)
        JW = J * W[:, :, None]
        A = np.einsum("bnp,bnq->bpq", JW, J)
        g = np.einsum("bnp,bn->bp", JW, y[None, :] - mu)
        diag = np.einsum("bpp->bp", A)
        ridge = lam[:, None] * diag + 1e-8 * (diag.mean(axis=1, keepdims=True) + 1e-12)
        step = np.linalg.solve(A + ridge[:, :, None] * eye[None], g[:, :, None])[..., 0]
        cand = beta + step
        new, mu_new = sse_of(cand)
        better = new < cur
        beta = np.where(better[:, None], cand, beta)
        mu = np.where(better[:, None], mu_new, mu)
        cur = np.where(better, new, cur)
        lam = np.where(better, lam / 3, lam * 4)
    return beta


def resample_weights(n: int, B: int, rng: np.random.Generator) -> np.ndarray:
    """Multiplicities of a nonparametric bootstrap (B, n); row 0 is the original sample."""
    W = np.zeros((B, n))
    idx = rng.integers(0, n, size=(B, n))
    np.add.at(W, (np.repeat(np.arange(B), n), idx.ravel()), 1.0)
    W[0] = 1.0
    return W


def ols_rows(t: np.ndarray, Y: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted OLS of each column of Y (n, k) on t, for each multiplicity row of W (B, n):
    slopes and intercepts (B, k); nan where a replicate has one distinct t."""
    sw = W.sum(axis=1)
    tm = (W @ t) / sw
    dt = t[None, :] - tm[:, None]
    sxx = np.einsum("bn,bn->b", W, dt ** 2)
    ym = (W @ Y) / sw[:, None]
    sxy = np.einsum("bn,bn,nk->bk", W, dt, Y)
    slope = np.where(sxx[:, None] > 1e-12, sxy / np.where(sxx > 1e-12, sxx, 1.0)[:, None], np.nan)
    inter = ym - slope * tm[:, None]
    return slope, inter


def crossing_summary(t_pt: float, t_bs: np.ndarray, t_cap: float, interval: float) -> tuple[float, float, float]:
    """Point and percentile interval of crossing scales; beyond t_cap counts as never (inf)."""
    t_bs = np.where(np.isfinite(t_bs) & (t_bs <= t_cap), t_bs, np.inf)
    if not (np.isfinite(t_pt) and t_pt <= t_cap):
        t_pt = np.inf
    if not len(t_bs):
        return float(t_pt), np.nan, np.nan
    q = (1 - interval) / 2
    lo, hi = np.quantile(np.where(np.isinf(t_bs), 1e300, t_bs), [q, 1 - q], method="inverted_cdf")
    return float(t_pt), float(np.inf if lo >= 1e300 else lo), float(np.inf if hi >= 1e300 else hi)


class PCRoute:
    """Observational capability PCs (Ruan, Maddison & Hashimoto 2024), self-contained and small.

    PCA of the benchmark matrix of ``pc_suite`` (final checkpoints, models with at least half the
    benchmarks; missing cells filled by an iterative low-rank imputation; signs fixed so loadings
    sum positive).  For a target (suite, task, metric): y = chance + (1 − chance)·σ(β₀ + βᵀS) over
    every model with a score, all families together; a family's PCs are linear in log10 compute.
    The crossing of chance + margin then has a closed form; intervals resample models (link) and
    the family's models (trajectory).  When the target is itself one of the PCA's benchmarks it is
    left out of that PCA.  The PCA itself is not resampled."""

    def __init__(self, table: pd.DataFrame, cfg: dict, final: pd.DataFrame | None = None):
        """``final``: the table's final-checkpoint rows when the caller has them already."""
        ecfg = cfg["emergence"]
        self.cfg, self.ecfg = cfg, ecfg
        self.final = final
        rows = (final if final is not None else final_rows(table))
        rows = rows[rows["suite"] == ecfg["pc_suite"]]
        rows = rows[~rows["task"].isin(ecfg.get("pc_exclude") or [])]
        self.rows = rows.assign(col=rows["task"] + ":" + rows["metric"])
        self.pcas: dict = {}
        self.links: dict = {}
        self._targets = None
        self._drop: set = set()

    def without(self, models: set) -> "PCRoute":
        """This route with ``models`` gone from every suite (a backtest); the PCAs are reused
        where none of those models is in the benchmark matrix."""
        new = PCRoute.__new__(PCRoute)
        new.cfg, new.ecfg, new.final = self.cfg, self.ecfg, self.final
        in_matrix = self.rows["model"].isin(models)
        new.rows = self.rows[~in_matrix]
        new.pcas = {} if in_matrix.any() else self.pcas
        new.links, new._drop = {}, set(models) | self._drop
        new._targets = self.target_rows(None)
        return new

    def target_rows(self, table) -> dict:
        """Final rows per setting key (built once)."""
        if self._targets is None:
            fin = self.final if self.final is not None else final_rows(table)
            self._targets = {setting_key(*k): g for k, g in
                             fin.groupby(["suite", "task", "metric", "num_fewshot"], sort=False, dropna=False)}
        return self._targets

    def pca(self, exclude: str | None):
        """(scores DataFrame, explained ratios, meta) or (None, why) for the matrix without ``exclude``."""
        if exclude in self.pcas:
            return self.pcas[exclude]
        rows = self.rows[self.rows["col"] != exclude] if exclude else self.rows
        k = int(self.ecfg["n_pcs"])
        res: tuple
        if rows.empty:
            res = (None, f"no {self.ecfg['pc_suite']} rows")
        else:
            M = rows.pivot_table(index="model", columns="col", values="value", aggfunc="first")
            M = M.loc[M.notna().mean(axis=1) >= 0.5]
            if len(M) < max(10, k + 2) or M.shape[1] <= k:
                res = (None, f"{self.ecfg['pc_suite']}: too few models/benchmarks for {k} PCs")
            else:
                X = M.to_numpy(dtype=float)
                miss = np.isnan(X)
                Xf = np.where(miss, np.nanmean(X, axis=0), X)
                for _ in range(30):  # low-rank imputation
                    mu = Xf.mean(axis=0)
                    U, S, Vt = np.linalg.svd(Xf - mu, full_matrices=False)
                    Xf = np.where(miss, (U[:, :k] * S[:k]) @ Vt[:k] + mu, X)
                mu = Xf.mean(axis=0)
                U, S, Vt = np.linalg.svd(Xf - mu, full_matrices=False)
                sign = np.sign(Vt[:k].sum(axis=1))
                sign[sign == 0] = 1
                scores = pd.DataFrame((Xf - mu) @ (Vt[:k].T * sign), index=M.index,
                                      columns=[f"PC{i + 1}" for i in range(k)])
                meta = rows.groupby("model").agg(family=("family", "first"), compute=("compute_flops", "first"))
                res = (scores, (S ** 2 / np.sum(S ** 2))[:k], meta.loc[scores.index])
        self.pcas[exclude] = res
        return res

    def link(self, table: pd.DataFrame, suite: str, task: str, metric: str, shots, chance: float, seed: int):
        """The link of one (suite, task, metric, shots) setting over every family, cached per setting
        (two shot settings of a task are different data and get different links)."""
        key = setting_key(suite, task, metric, shots)
        if key in self.links:
            return self.links[key]
        exclude = f"{task}:{metric}" if suite == self.ecfg["pc_suite"] else None
        pca = self.pca(exclude)
        if pca[0] is None:
            self.links[key] = (None, pca[1])
            return self.links[key]
        scores, explained, meta = pca
        rows = self.target_rows(table).get(key)
        rows = rows[rows["model"].isin(scores.index) & ~rows["model"].isin(self._drop)] if rows is not None else None
        if rows is None or len(rows) < self.ecfg["min_link_models"]:
            res = (None, f"fewer than {self.ecfg['min_link_models']} models with both PCs and {task}")
        else:
            S = scores.loc[rows["model"]].to_numpy()
            X = np.column_stack([np.ones(len(S)), S])
            y = rows["value"].to_numpy(dtype=float)
            W = resample_weights(len(y), int(self.ecfg["bootstrap"]), np.random.default_rng(seed))
            res = ((fit_link(X, y, chance, W), len(y), scores, explained, meta), "")
        self.links[key] = res
        return res

    def trajectory(self, pca_id, scores, meta, family: str, B: int, seed: int):
        """Bootstrap fits of the family's PCs vs log10 compute: (t, slopes (B, k), intercepts (B, k))."""
        key = (pca_id, family, B)
        if not hasattr(self, "_traj"):
            self._traj = {}
        if key not in self._traj:
            fam = meta[meta["family"] == family]
            if fam["compute"].nunique() < 3:
                self._traj[key] = None
            else:
                t = np.log10(fam["compute"].to_numpy(dtype=float))
                P = scores.loc[fam.index].to_numpy()
                W = resample_weights(len(t), B, np.random.default_rng(seed + 7))
                self._traj[key] = (t, *ols_rows(t, P, W))
        return self._traj[key]

    def crossing(self, table, key: dict, chance: float, level: float, seed: int):
        """((t_point, t_lo, t_hi), detail) in log10 compute where the family crosses level, or (None, why)."""
        lk, why = self.link(table, key["suite"], key["task"], key["metric"], key["num_fewshot"], chance, seed)
        if lk is None:
            return None, why
        beta, n_link, scores, explained, meta = lk
        traj = self.trajectory(id(scores), scores, meta, key["family"], len(beta), seed)
        if traj is None:
            return None, f"family {key['family']}: <3 models in {self.ecfg['pc_suite']}"
        t, theta, nu = traj
        zstar = _logit((level - chance) / (1 - chance))
        slope = np.einsum("bk,bk->b", beta[:, 1:], theta)
        inter = beta[:, 0] + np.einsum("bk,bk->b", beta[:, 1:], nu)
        with np.errstate(divide="ignore", invalid="ignore"):
            tc = np.where(slope > 0, (zstar - inter) / slope, np.inf)
        tc = np.where(np.isnan(tc), np.inf, tc)
        cap = t.max() + self.ecfg["max_decades"]
        pt, lo, hi = crossing_summary(tc[0], tc[1:], cap, self.cfg["interval"])
        ev = "+".join(f"{e:.0%}" for e in explained)
        return (pt, lo, hi), (f"{len(explained)} PCs ({ev} of variance), link on {n_link} models, "
                              f"family on {len(t)}")


def loss_route(by_task: dict, key: dict, chance: float, level: float, cfg: dict, seed: int):
    """Two-step crossing from a continuous signal of the same task (task loss or p(correct)).

    Link: accuracy = chance + (1 − chance)·σ(β₀ + β₁·g(m)) over every (model, step) of the suite
    with both numbers (all families, all checkpoints); g = log for losses, logit for
    probabilities.  Trajectory: g(m) linear in log10 compute over the family's final checkpoints.
    Returns ((t, lo, hi), detail) or (None, why)."""
    ecfg = cfg["emergence"]
    sub = by_task.get((key["suite"], key["task"]))
    if sub is None:
        return None, "no task loss / p(correct) rows"
    if not pd.isna(key["num_fewshot"]):
        sub = sub[sub["num_fewshot"] == key["num_fewshot"]]
    have = set(sub["metric"])
    cont = next((m for m in ecfg["continuous_metrics"] if m in have and m != key["metric"]), None)
    if cont is None:
        return None, "no task loss / p(correct) rows"
    ids = ["model", "step"]
    acc = sub[sub["metric"] == key["metric"]][ids + ["value"]]
    sig = sub[sub["metric"] == cont][ids + ["value", "family", "compute_flops"]]
    both = acc.merge(sig, on=ids, suffixes=("_acc", "_m"))
    both = both[np.isfinite(both["value_m"])]
    prob = scores.metric_kind(cont) == "accuracy"
    g = (lambda v: _logit(v)) if prob else (lambda v: np.log(np.maximum(v, 1e-12)))
    if len(both) < ecfg["min_link_models"]:
        return None, f"{cont}: fewer than {ecfg['min_link_models']} points with accuracy and {cont}"
    fam = final_rows(sub[(sub["metric"] == cont) & (sub["family"] == key["family"])])
    if fam["compute_flops"].nunique() < 3:
        return None, f"{cont}: <3 models of the family"
    rng = np.random.default_rng(seed)
    B = int(ecfg["bootstrap"])
    X = np.column_stack([np.ones(len(both)), g(both["value_m"].to_numpy(dtype=float))])
    beta = fit_link(X, both["value_acc"].to_numpy(dtype=float), chance, resample_weights(len(both), B, rng))
    t = np.log10(fam["compute_flops"].to_numpy(dtype=float))
    gm = g(fam["value"].to_numpy(dtype=float))
    slope, inter = ols_rows(t, gm[:, None], resample_weights(len(t), B, rng))
    slope, inter = slope[:, 0], inter[:, 0]
    zstar = _logit((level - chance) / (1 - chance))
    with np.errstate(divide="ignore", invalid="ignore"):
        gstar = (zstar - beta[:, 0]) / beta[:, 1]
        tc = (gstar - inter) / slope
        # the signal must move toward the crossing as compute grows
        tc = np.where((slope * beta[:, 1] > 0) & np.isfinite(tc), tc, np.inf)
    cap = t.max() + ecfg["max_decades"]
    pt, lo, hi = crossing_summary(tc[0], tc[1:], cap, cfg["interval"])
    return (pt, lo, hi), f"{cont}: link on {len(both)} (model, step) points, family on {len(t)} models"


CROSS_COLUMNS = ["cross_compute", "cross_compute_lo", "cross_compute_hi", "cross_params", "cross_params_lo",
                 "cross_params_hi"]


class Routes:
    """The emergence routes over one table (the PCA and the task index are built once)."""

    def __init__(self, table: pd.DataFrame, final: pd.DataFrame, cfg: dict):
        self.table, self.final, self.cfg = table, final, cfg
        self._by_task = self._pc = None
        self._drop: set = set()

    def without(self, models: set) -> "Routes":
        """These routes with ``models`` gone from every suite (the crossing backtest)."""
        new = Routes(self.table, self.final, self.cfg)
        new._by_task, new._pc, new._drop = self.by_task(), self.pc().without(models), set(models)
        return new

    def by_task(self) -> dict:
        if self._by_task is None:
            self._by_task = {k: g for k, g in self.table.groupby(["suite", "task"], sort=False)}
        return self._by_task

    def pc(self) -> PCRoute:
        if self._pc is None:
            self._pc = PCRoute(self.table, self.cfg, final=self.final)
        return self._pc

    def estimates(self, key: dict, chance: float, level: float, res: dict, seed: int) -> list[tuple[str, tuple]]:
        """Every route's crossing ((t, lo, hi) in log10 scale: compute for loss and pc, the curve's
        axis for fit) or None and why, in order of preference: the curve's own forecast first where
        it is emergent (it crossed inside its own data), else loss, pc, fit."""
        fit = ((res["cross_fit"], f"forecast form {res.get('forecast_form')} "
                                  f"(extrapolation {res.get('extrapolation_rate', 0):.3g}/decade), its law's interval")
               if "cross_fit" in res else (None, res.get("cross_why") or f"{res['label']}: no forecast toward the level"))
        by_task = self.by_task()
        if self._drop:
            sub = by_task.get((key["suite"], key["task"]))
            by_task = {} if sub is None else {(key["suite"], key["task"]): sub[~sub["model"].isin(self._drop)]}
        loss = loss_route(by_task, key, chance, level, self.cfg, seed)
        pc = self.pc().crossing(self.table, key, chance, level, seed)
        if res["label"] == "emergent":
            return [("fit", fit), ("loss", loss), ("pc", pc)]
        return [("loss", loss), ("pc", pc), ("fit", fit)]

    def crossings(self, key: dict, pts: pd.DataFrame, chance: float, level: float, res: dict, x: str,
                  seed: int) -> tuple[list[dict], dict | None]:
        """(one emergence-table row per route, the first route with a number or None)."""
        fmap = family_map(pts)
        rows, primary = [], None
        for name, (val, detail) in self.estimates(key, chance, level, res, seed):
            row = dict(key, label=res["label"], method=name, level=level, detail=detail)
            if val is not None:
                c_pt, p_pt = to_compute_params(np.array(val, dtype=float), "compute" if name != "fit" else x, fmap)
                row.update(zip(CROSS_COLUMNS, [*c_pt, *p_pt]))
                primary = primary or row
            rows.append(row)
        return rows, primary
