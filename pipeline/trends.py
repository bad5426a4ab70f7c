"""trends stage: label every (family, task, metric) curve's shape over scale and forecast it.

    python -m pipeline trends --scores FILE --out trends.csv [--x params|compute] [--train "QUERY"]

A *curve* is one (suite, family, task, metric, num_fewshot) over the family's models at their
final checkpoint (the largest step, or the stepless row).  Each curve gets one label:

``positive``     better with scale (a significant trend)
``emergent``     the smallest scales jointly within noise of chance, then a significant rise
``inverse``      worse with scale (a significant decline: inverse scaling, McKenzie et al. 2023)
``u_shaped``     worse, then better: the one-break fit turns inside the data (Wei et al. 2022b)
``inverted_u``   better, then worse
``flat``         no form beats a constant (or chance) and the constant fits within noise
``noisy``        no form beats a constant, and the constant does not fit the stated errors
``insufficient: <reason>``  fewer than 4 scales, or no stderr (never guessed)

Directions are in *performance*: higher accuracy is better, lower loss is better.  The tests,
forms and thresholds are described in :mod:`pipeline.shapes` and docs/trends.md; every knob is
in params.yaml ``trends:``.

Forecasts: each labelled curve is predicted at 2x, 10x and 100x its largest scale with a 90%
predictive interval (parametric bootstrap from the per-point stderr, the form re-chosen in
every replicate, plus a new measurement's noise).  Emergent and at-chance curves get the scale
where accuracy crosses chance + margin, from (in order of preference) the task loss or the
probability of the correct answer (two-step: loss vs compute, accuracy vs loss; Schaeffer et
al. 2023/2024), the observational capability PCs (Ruan et al. 2024), and the accuracy fit
itself.  Inverse curves get a turn test (does a one-break fit that turns back up inside the
forecast range fit better, worse or no differently than one that does not?).

Curves across checkpoints (one model over training steps, x = compute) are labelled too, into a
separate table.  The backtest (splits in params.yaml) fits on small models and predicts larger
ones, reporting label agreement and interval coverage as DVC metrics.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import query, scores, shapes
from pipeline.errors import CapcastError

CURVE_KEY = ["suite", "family", "task", "metric", "num_fewshot"]
LABELS = ("positive", "emergent", "inverse", "u_shaped", "inverted_u", "flat", "noisy")

DEFAULTS = {
    "x": "compute",
    "min_scales": 4,
    "bootstrap": 200,
    "seed": 0,
    "interval": 0.9,
    "horizons": [2, 10, 100],
    "tau_trend": 6.0,
    "tau_break": 6.0,
    "alpha_gof": 0.01,
    "alpha_chance": 0.05,
    "min_flat_points": 2,
    "z_rise": 3.0,
    "z_turn": 2.0,
    "turn_crit": 3.84,
    "break_f": [0.25],
    "break_min_points": 6,
    "min_stderr": 0.001,
    "refine_rounds": 3,
    "checkpoints": {"min_step": 1000, "min_points": 4, "refine_rounds": 0},
    "emergence": {
        "margin": 0.1,
        "max_decades": 3.0,
        "continuous_metrics": ["prob_correct", "bpb", "nll", "nll_char", "nll_token"],
        "pc_suite": "obsscaling",
        "pc_exclude": ["gsm8k"],
        "n_pcs": 3,
        "min_link_models": 10,
        "bootstrap": 200,
        "report_suites": ["obsscaling_emergent"],
    },
    "backtest": [],
}


class TrendsError(CapcastError):
    """Bad input to the trends stage; the message says what to change."""


# ----------------------------------------------------------------------------- configuration
def load_config(path: str | Path = "params.yaml") -> dict:
    """The ``trends:`` section of params.yaml over the built-in defaults (same values)."""
    from pipeline import params

    cfg = json.loads(json.dumps(DEFAULTS))
    p = Path(path)
    if p.exists():
        section = params.read(p).get("trends") or {}  # checked against the schema (pipeline/config.py)
        for key, val in section.items():
            if isinstance(val, dict) and isinstance(cfg.get(key), dict):
                cfg[key].update(val)
            else:
                cfg[key] = val
    if cfg["x"] not in ("compute", "params"):
        raise TrendsError(f"trends.x must be 'compute' or 'params', got {cfg['x']!r}")
    return cfg


def settings(cfg: dict) -> shapes.Settings:
    names = {f.name for f in fields(shapes.Settings)}
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items() if k in names}
    return shapes.Settings(**kw)


# ----------------------------------------------------------------------------- curves
def x_column(x: str) -> str:
    return "compute_flops" if x == "compute" else "params"


def final_rows(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (suite, model, task, metric, shots): the largest step (a stepless row only
    where the model has no numbered checkpoint)."""
    keys = ["suite", "model", "task", "metric", "num_fewshot"]
    s = table["step"].astype("float64").fillna(-1.0).to_numpy()
    order = table.iloc[np.argsort(s, kind="mergesort")]
    return order.groupby(keys, dropna=False, sort=False).tail(1).sort_index()


def plain(table: pd.DataFrame) -> pd.DataFrame:
    """The scores table with plain numpy dtypes (object strings, float steps/shots): grouping and
    slicing thousands of small curves is several times faster than on Arrow-backed columns."""
    out = table.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.StringDtype):
            out[c] = out[c].astype(object).where(out[c].notna(), None)
    for c in ("step", "num_fewshot"):
        out[c] = out[c].astype("float64")
    return out


def group_curves(rows: pd.DataFrame, keys: list[str]) -> list[tuple[dict, pd.DataFrame]]:
    out = []
    for key, g in rows.groupby(keys, dropna=False, sort=True):
        out.append((dict(zip(keys, key)), g))
    return out


@dataclass
class Prepared:
    curve: shapes.Curve | None
    reason: str | None  # insufficient: ...
    note: str  # e.g. chance unknown
    x: np.ndarray
    y: np.ndarray


def metric_orientation(task: str, metric: str, values: np.ndarray) -> tuple[float, bool, float | None, str]:
    """(orient, bounded, chance, note) for a (task, metric)."""
    kind = scores.metric_kind(metric)
    note = ""
    if kind == "loss":
        return -1.0, False, None, note
    if kind == "accuracy":
        bounded = bool(np.all((values >= 0) & (values <= 1)))
        try:
            ch = scores.chance(task, metric.split(",")[0])
        except scores.ScoresError:
            ch, note = None, "chance unknown: emergence not testable"
        return 1.0, bounded, (ch if bounded else None), note
    return 1.0, False, None, "metric kind unknown: higher taken as better"


def prepare(task: str, metric: str, pts: pd.DataFrame, xcol: str, cfg: dict) -> Prepared:
    """Points of one curve → a :class:`shapes.Curve`, or the reason it cannot be labelled."""
    x = pts[xcol].to_numpy(dtype=float)
    order = np.lexsort((pts["model"].to_numpy(dtype=object).astype(str), x))
    x = x[order]
    y = pts["value"].to_numpy(dtype=float)[order]
    se = pts["stderr"].to_numpy(dtype=float)[order]
    orient, bounded, ch, note = metric_orientation(task, metric, y)
    reasons = []
    n_scales = len(np.unique(x))
    if n_scales < cfg["min_scales"]:
        reasons.append(f"<{cfg['min_scales']} scales ({n_scales})")
    missing = int(np.isnan(se).sum())
    if missing == len(se):
        reasons.append("no stderr")
    elif missing:
        reasons.append(f"no stderr for {missing} of {len(se)} points")
    if reasons:
        return Prepared(None, "insufficient: " + "; ".join(reasons), note, x, y)
    s_eff, n_items = shapes.effective_stderr(y, se, bounded, cfg["min_stderr"])
    if orient < 0 and np.all(y > 0):
        # a loss: fitted as ln(value) (a power law is linear there; ln ppl is the token loss)
        curve = shapes.Curve(np.log10(x), np.log(y), s_eff / y, ch, orient, False, None, log=True)
        note = "; ".join(filter(None, [note, "fitted on ln(value)"]))
    else:
        curve = shapes.Curve(np.log10(x), y, s_eff, ch, orient, bounded, n_items)
    return Prepared(curve, None, note, x, y)


def family_map(pts: pd.DataFrame) -> tuple[float, float] | None:
    """log10 params = a + b·log10 compute over a family's models (its tokens-per-parameter recipe)."""
    lc = np.log10(pts["compute_flops"].to_numpy(dtype=float))
    ln = np.log10(pts["params"].to_numpy(dtype=float))
    if len(np.unique(lc)) < 2:
        return None
    b, a = np.polyfit(lc, ln, 1)
    return float(a), float(b)


def to_compute_params(t: np.ndarray, x: str, fmap) -> tuple[np.ndarray, np.ndarray]:
    """Scale(s) t = log10(x) → (compute, params), through the family map where needed."""
    t = np.asarray(t, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):
        if x == "compute":
            comp = 10.0 ** t
            par = 10.0 ** (fmap[0] + fmap[1] * t) if fmap else np.full_like(t, np.nan)
        else:
            par = 10.0 ** t
            comp = 10.0 ** ((t - fmap[0]) / fmap[1]) if fmap and fmap[1] else np.full_like(t, np.nan)
    return comp, par


# ----------------------------------------------------------------------------- one curve
def analyse(prep: Prepared, cfg: dict, st: shapes.Settings, t_targets: np.ndarray | None = None,
            want_cross: bool = True, seed: int = 0) -> dict:
    """Label, evidence and forecasts of one prepared curve.

    Returns a dict with label, evidence, form, horizon forecasts (pred/lo/hi per horizon),
    forecasts at ``t_targets`` (for the backtest), the accuracy-fit crossing and the turn test."""
    out: dict = {"n_points": len(prep.y), "x_min": float(np.min(prep.x)), "x_max": float(np.max(prep.x))}
    if prep.curve is None:
        out.update(label=prep.reason, evidence=prep.note, form="")
        return out
    c = prep.curve
    an = shapes.classify(c, st, x_label=lambda t: f"{10 ** t:.3g}")
    evidence = an.evidence + (f"; {prep.note}" if prep.note else "")
    out.update(label=an.label, form=an.form, evidence=evidence, tau=an.tau)
    horizons = np.asarray(cfg["horizons"], dtype=float)
    t_max = float(c.t.max())
    t_h = t_max + np.log10(horizons)
    t_tg = np.asarray(t_targets if t_targets is not None else [], dtype=float)
    ext = cfg["emergence"]["max_decades"]
    tt = shapes.dense(c, ext, step=0.02)
    t_all = np.concatenate([t_h, t_tg, tt])
    point, lo, hi, bs = shapes.forecast(c, an, t_all, st, int(cfg["bootstrap"]), seed, cfg["interval"])
    nh, nt = len(t_h), len(t_tg)
    out["horizons"] = [(h, point[i], lo[i], hi[i]) for i, h in enumerate(horizons)]
    out["targets"] = [(point[nh + i], lo[nh + i], hi[nh + i]) for i in range(nt)]
    if an.label == "emergent" and want_cross and c.chance is not None:
        level = c.chance + cfg["emergence"]["margin"]
        bank, fit = an.fits[an.form]
        dense_pt = shapes.predict_unnorm(bank, fit, tt)
        if c.bounded:
            dense_pt = np.clip(dense_pt, 0, 1)
        t_pt = shapes.first_crossing(dense_pt, tt, level, 1.0)[0]
        t_bs = shapes.first_crossing(bs.chosen[:, nh + nt:], tt, level, 1.0)
        out["cross_fit"] = crossing_summary(t_pt, t_bs, t_max + ext, cfg["interval"])
    if an.label == "inverse":
        tr = shapes.turn_test(c, an, st, float(np.log10(horizons.max())), cfg["turn_crit"])
        out["turn"] = tr
    return out


# ----------------------------------------------------------------------------- emergence routes
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
        mu = floor + (1 - floor) * shapes.sigmoid(bt @ X.T)
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

    def link(self, table: pd.DataFrame, suite: str, task: str, metric: str, chance: float, seed: int):
        key = (suite, task, metric)
        if key in self.links:
            return self.links[key]
        exclude = f"{task}:{metric}" if suite == self.ecfg["pc_suite"] else None
        pca = self.pca(exclude)
        if pca[0] is None:
            self.links[key] = (None, pca[1])
            return self.links[key]
        scores, explained, meta = pca
        if self._targets is None:
            fin = self.final if self.final is not None else final_rows(table)
            self._targets = {k: g for k, g in fin.groupby(["suite", "task", "metric"], sort=False)}
        rows = self._targets.get(key)
        rows = rows[rows["model"].isin(scores.index)].drop_duplicates("model") if rows is not None else None
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
        lk, why = self.link(table, key["suite"], key["task"], key["metric"], chance, seed)
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


# ----------------------------------------------------------------------------- the tables
def curve_row(key: dict, res: dict, x: str) -> dict:
    row = dict(key)
    row.update(x=x, label=res["label"], evidence=res.get("evidence", ""), n_points=res["n_points"],
               x_min=res["x_min"], x_max=res["x_max"], form=res.get("form", ""))
    for h, p, lo, hi in res.get("horizons", []):
        tag = f"{h:g}x"
        row[f"pred_{tag}"], row[f"lo_{tag}"], row[f"hi_{tag}"] = p, lo, hi
    tr = res.get("turn")
    if tr is not None:
        row["turn"] = tr.verdict
        row["turn_x"] = 10 ** tr.t if np.isfinite(tr.t) else np.nan
        row["turn_dchi2"] = tr.dchi2
    return row


def analyse_table(table: pd.DataFrame, cfg: dict, seed: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every final-checkpoint curve of ``table`` → (curves table, emergence table)."""
    st = settings(cfg)
    x = cfg["x"]
    xcol = x_column(x)
    seed = cfg["seed"] if seed is None else seed
    table = plain(table)
    final = final_rows(table)
    pc = by_task = None
    rows, erows = [], []
    margin = cfg["emergence"]["margin"]
    for i, (key, pts) in enumerate(group_curves(final, CURVE_KEY)):
        prep = prepare(key["task"], key["metric"], pts, xcol, cfg)
        res = analyse(prep, cfg, st, seed=seed + i)
        row = curve_row(key, res, x)
        # emergence: crossing of chance + margin
        orient, bounded, ch, _ = metric_orientation(key["task"], key["metric"], prep.y)
        label = res["label"]
        # emergent curves, and curves still below chance + margin that are flat or unlabelled
        candidate = ch is not None and bounded and (
            label == "emergent" or ((label == "flat" or label.startswith("insufficient"))
                                    and float(np.max(prep.y)) < ch + margin))
        if candidate:
            level = ch + margin
            fmap = family_map(pts)
            methods = []
            if by_task is None:
                by_task = {k: g for k, g in table.groupby(["suite", "task"], sort=False)}
            lr = loss_route(by_task, key, ch, level, cfg, seed + i)
            methods.append(("loss", lr))
            if pc is None:
                pc = PCRoute(table, cfg, final=final)
            methods.append(("pc", pc.crossing(table, key, ch, level, seed + i)))
            if "cross_fit" in res:
                methods.append(("fit", (res["cross_fit"], f"accuracy fit ({res['form']}), parametric bootstrap")))
            primary = None
            for name, (val, detail) in methods:
                er = dict(key, label=label, method=name, level=level, detail=detail)
                if val is not None:
                    pt, lo, hi = val
                    axis = "compute" if name in ("loss", "pc") else x
                    c_pt, p_pt = to_compute_params(np.array([pt, lo, hi]), axis, fmap)
                    er.update(cross_compute=c_pt[0], cross_compute_lo=c_pt[1], cross_compute_hi=c_pt[2],
                              cross_params=p_pt[0], cross_params_lo=p_pt[1], cross_params_hi=p_pt[2])
                    if primary is None:
                        primary = er
                erows.append(er)
            row["cross_level"] = level
            if primary is not None:
                for k in ("cross_compute", "cross_compute_lo", "cross_compute_hi", "cross_params",
                          "cross_params_lo", "cross_params_hi"):
                    row[k] = primary[k]
                row["cross_method"] = primary["method"]
            else:
                row["cross_method"] = "none: " + "; ".join(f"{n}: {d}" for n, (v, d) in methods)
        rows.append(row)
    curves = pd.DataFrame(rows)
    curves = _order_columns(curves, cfg)
    em = pd.DataFrame(erows)
    return curves, em


def _order_columns(df: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    cols = CURVE_KEY + ["x", "label", "evidence", "n_points", "x_min", "x_max", "form"]
    for h in cfg["horizons"]:
        tag = f"{float(h):g}x"
        cols += [f"pred_{tag}", f"lo_{tag}", f"hi_{tag}"]
    cols += ["cross_level", "cross_compute", "cross_compute_lo", "cross_compute_hi", "cross_params",
             "cross_params_lo", "cross_params_hi", "cross_method", "turn", "turn_x", "turn_dchi2"]
    for c in cols:
        if c not in df.columns:
            df[c] = np.nan
    return df[cols]


def analyse_checkpoints(table: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """Label one model's curve over its checkpoints (x = compute) for every (suite, model, task,
    metric, shots) with enough numbered steps at or past ``checkpoints.min_step``."""
    cc = cfg["checkpoints"]
    st = settings({**cfg, "refine_rounds": cc.get("refine_rounds", cfg.get("refine_rounds", 3))})
    table = plain(table)
    rows = table[table["step"].notna() & (table["step"] >= cc["min_step"]) & (table["compute_flops"] > 0)]
    out = []
    keys = CURVE_KEY[:2] + ["model"] + CURVE_KEY[2:]
    for key, pts in group_curves(rows, keys):
        if pts["step"].nunique() < cc["min_points"]:
            continue
        prep = prepare(key["task"], key["metric"], pts, "compute_flops", {**cfg, "min_scales": cc["min_points"]})
        row = dict(key, x="compute", n_points=len(pts), step_min=int(pts["step"].min()),
                   step_max=int(pts["step"].max()), x_min=float(pts["compute_flops"].min()),
                   x_max=float(pts["compute_flops"].max()))
        if prep.curve is None:
            row.update(label=prep.reason, evidence=prep.note)
        else:
            an = shapes.classify(prep.curve, st, x_label=lambda t: f"{10 ** t:.3g}")
            row.update(label=an.label, evidence=an.evidence + (f"; {prep.note}" if prep.note else ""))
        out.append(row)
    cols = keys + ["x", "label", "evidence", "n_points", "step_min", "step_max", "x_min", "x_max"]
    return pd.DataFrame(out, columns=cols)


# ----------------------------------------------------------------------------- backtest / held-out
def select(table: pd.DataFrame, query_text: str, what: str) -> pd.DataFrame:
    """Rows matching a query (:mod:`pipeline.query`); one-line TrendsError when it is invalid or selects nothing."""
    return query.select(table, query_text, what, error=TrendsError)


def holdout(universe: pd.DataFrame, train: pd.DataFrame, cfg: dict, name: str, seed: int = 0) -> pd.DataFrame:
    """For every curve: label from the training rows, label from all rows, and for each model in
    ``universe`` but not in ``train`` (final checkpoint) the forecast, its interval and the actual."""
    st = settings(cfg)
    x = cfg["x"]
    xcol = x_column(x)
    fin_all = final_rows(plain(universe))
    fin_train = final_rows(plain(train))
    def hkey(k: dict) -> tuple:  # NaN shots compare unequal: key them by a sentinel
        return tuple(-1 if (isinstance(v, float) and np.isnan(v)) else v for v in k.values())

    train_curves = {hkey(k): g for k, g in group_curves(fin_train, CURVE_KEY)}
    out = []
    for i, (key, pts_all) in enumerate(group_curves(fin_all, CURVE_KEY)):
        pts_tr = train_curves.get(hkey(key))
        test = pts_all[~pts_all["model"].isin(set(pts_tr["model"]) if pts_tr is not None else set())]
        if test.empty:
            continue
        prep_all = prepare(key["task"], key["metric"], pts_all, xcol, cfg)
        label_all = shapes.classify(prep_all.curve, st).label if prep_all.curve is not None else prep_all.reason
        test = test.sort_values(xcol, kind="mergesort")
        t_test = np.log10(test[xcol].to_numpy(dtype=float))
        if pts_tr is None:
            label_small, res = "insufficient: no training rows", None
        else:
            prep_tr = prepare(key["task"], key["metric"], pts_tr, xcol, cfg)
            res = analyse(prep_tr, cfg, st, t_targets=t_test, want_cross=False, seed=seed + i)
            label_small = res["label"]
        for j, (_, r) in enumerate(test.iterrows()):
            row = dict(split=name, **key, label_small=label_small, label_all=label_all,
                       model=r["model"], params=r["params"], x_value=r[xcol], actual=r["value"],
                       actual_stderr=r["stderr"])
            if res is not None and "targets" in res:
                p, lo, hi = res["targets"][j]
                row.update(pred=p, lo=lo, hi=hi, hit=bool(lo <= r["value"] <= hi))
            out.append(row)
    cols = ["split"] + CURVE_KEY + ["label_small", "label_all", "model", "params", "x_value", "actual",
                                    "actual_stderr", "pred", "lo", "hi", "hit"]
    df = pd.DataFrame(out)
    for c in cols:
        if c not in df.columns:
            df[c] = np.nan
    return df[cols]


def emergence_backtest(full: pd.DataFrame, cfg: dict, seed: int = 0) -> pd.DataFrame:
    """Can the observational-PC route see a take-off coming?  For every curve of the report
    suites whose family crosses chance + margin inside the data, after at least 3 models below
    it: drop that family's models at and above the crossing (every suite's rows, so neither the
    PCA, the link nor the trajectory sees them), forecast the crossing, and compare it with the
    observed one (log10 compute interpolated between the last model below and the first above)."""
    ecfg = cfg["emergence"]
    table = plain(full)
    fin = final_rows(table)
    sub = fin[fin["suite"].isin(ecfg.get("report_suites") or [])]
    out = []
    for (suite, task, metric, nf), g in sub.groupby(["suite", "task", "metric", "num_fewshot"], dropna=False, sort=True):
        _, bounded, ch, _ = metric_orientation(task, metric, g["value"].to_numpy(dtype=float))
        if ch is None or not bounded:
            continue
        level = ch + ecfg["margin"]
        for fam, gf in g.groupby("family", sort=True):
            gf = gf.sort_values(["compute_flops", "model"], kind="mergesort")
            v = gf["value"].to_numpy(dtype=float)
            tc = np.log10(gf["compute_flops"].to_numpy(dtype=float))
            above = np.nonzero(v >= level)[0]
            if not len(above) or above[0] < 3 or tc[above[0]] <= tc[above[0] - 1]:
                continue
            j = above[0]
            t_obs = tc[j - 1] + (level - v[j - 1]) / (v[j] - v[j - 1]) * (tc[j] - tc[j - 1])
            gone = set(fin.loc[(fin["family"] == fam) & (fin["compute_flops"] >= 10 ** tc[j]), "model"])
            train = fin[~fin["model"].isin(gone)]
            key = dict(suite=suite, family=fam, task=task, metric=metric, num_fewshot=nf)
            val, detail = PCRoute(train, cfg, final=train).crossing(train, key, ch, level, seed)
            row = dict(key, level=level, models_below=int(j), observed_compute=10 ** t_obs, detail=detail)
            if val is not None:
                pt, lo, hi = val
                row.update(pred_compute=10 ** pt if np.isfinite(pt) else np.inf,
                           lo_compute=10 ** lo if np.isfinite(lo) else np.inf,
                           hi_compute=10 ** hi if np.isfinite(hi) else np.inf,
                           log10_error=pt - t_obs if np.isfinite(pt) else np.inf, hit=bool(lo <= t_obs <= hi))
            out.append(row)
    cols = CURVE_KEY + ["level", "models_below", "observed_compute", "pred_compute", "lo_compute", "hi_compute",
                        "log10_error", "hit", "detail"]
    df = pd.DataFrame(out)
    for c in cols:
        if c not in df.columns:
            df[c] = np.nan
    return df[cols]


def emergence_metrics(eb: pd.DataFrame) -> dict:
    done = eb[eb["pred_compute"].notna()]
    err = done["log10_error"].abs()
    return {
        "cases": int(len(eb)),
        "forecast": int(len(done)),
        "interval_hits": _ratio(done["hit"].astype(bool).sum(), len(done)),
        "median_abs_log10_error": round(float(err.median()), 4) if len(done) else None,
    }


def _valid(label) -> bool:
    return isinstance(label, str) and label in LABELS


def backtest_metrics(bt: pd.DataFrame) -> dict:
    """Label agreement (curves labelled by both, neither noisy), 90% interval coverage, and the
    forecasts' errors on accuracies in points (x100, the unit of the scaling-law backtest)."""
    def summary(d: pd.DataFrame) -> dict:
        curves = d.drop_duplicates(["split"] + CURVE_KEY)
        both = curves[curves["label_small"].map(_valid) & curves["label_all"].map(_valid)]
        clean = both[(both["label_small"] != "noisy") & (both["label_all"] != "noisy")]
        strict = both[both["label_all"] != "noisy"]
        pts = d[d["pred"].notna()]
        acc = pts[pts["metric"].map(lambda m: scores.metric_kind(m) == "accuracy")]
        err = (acc["pred"] - acc["actual"]).abs() * 100  # accuracy points
        return {
            "label_agreement": _ratio((clean["label_small"] == clean["label_all"]).sum(), len(clean)),
            "label_agreement_curves": int(len(clean)),
            "label_agreement_incl_noisy_small": _ratio((strict["label_small"] == strict["label_all"]).sum(),
                                                       len(strict)),
            "label_agreement_all_labelled": _ratio((both["label_small"] == both["label_all"]).sum(), len(both)),
            "curves": int(len(curves)),
            "curves_insufficient": int(len(curves) - len(both)),
            "interval_coverage": _ratio(pts["hit"].astype(bool).sum(), len(pts)),
            "heldout_points": int(len(pts)),
            "mae_accuracy": round(float(err.mean()), 4) if len(acc) else None,
            "max_abs_error_accuracy": round(float(err.max()), 4) if len(acc) else None,
            "accuracy_points": int(len(acc)),
        }

    out = summary(bt)
    out["splits"] = {name: summary(g) for name, g in bt.groupby("split", sort=True)}
    return out


def dvc_metrics(metrics: dict) -> dict:
    """The DVC metrics file: a few flat numbers over every split (details: :func:`summary_frame`).

    Same names and units as the scaling-law backtest's (reports/metrics/): mae in accuracy points,
    coverage a fraction, n the held-out points.
    """
    em = metrics.get("emergence_pc") or {}
    out = {"label_agreement": metrics["label_agreement"], "coverage": metrics["interval_coverage"],
           "mae": metrics["mae_accuracy"], "n": metrics["heldout_points"],
           "emergence_coverage": em.get("interval_hits"), "emergence_log10_error": em.get("median_abs_log10_error")}
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}


SUMMARY_COLUMNS = ["split", "label_agreement", "label_agreement_curves", "label_agreement_incl_noisy_small",
                   "label_agreement_all_labelled", "curves", "curves_insufficient", "coverage", "heldout_points",
                   "mae", "max_error", "accuracy_points"]


def summary_frame(metrics: dict) -> pd.DataFrame:
    """reports/trends_backtest_summary.csv: the backtest numbers, split ALL (every split) then each split."""
    def row(name, m):
        return {"split": name, **{k: v for k, v in m.items() if not isinstance(v, dict)},
                "coverage": m["interval_coverage"], "mae": m["mae_accuracy"], "max_error": m["max_abs_error_accuracy"]}

    rows = [row("ALL", metrics)] + [row(k, v) for k, v in (metrics.get("splits") or {}).items()]
    return pd.DataFrame(rows).reindex(columns=SUMMARY_COLUMNS)


def _ratio(a, b):
    return round(float(a) / b, 6) if b else None


# ----------------------------------------------------------------------------- writing
def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    scores.atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, float_format="%.6g", lineterminator="\n"))


def markdown(curves: pd.DataFrame, em: pd.DataFrame, ck: pd.DataFrame, metrics: dict | None, cfg: dict) -> str:
    """The report's trends section."""
    lines = ["## Trends: shape of every curve over scale", ""]
    lab = curves["label"].where(curves["label"].isin(LABELS), curves["label"].str.split(":").str[0])
    counts = lab.value_counts().reindex(list(LABELS) + ["insufficient"]).dropna().astype(int)
    lines.append("Labels (final checkpoints, x = " + cfg["x"] + "): " +
                 ", ".join(f"{k} {v}" for k, v in counts.items()) + ".")
    reasons = curves.loc[~curves["label"].isin(LABELS), "label"].value_counts()
    if len(reasons):
        lines.append("Not labelled: " + "; ".join(f"{v} × {k}" for k, v in reasons.items()) + ".")
    lines.append("")
    if metrics:
        lines += [f"Backtest: label agreement small vs all models {_pct(metrics['label_agreement'])} "
                  f"({metrics['label_agreement_curves']} curves, neither noisy); 90% interval coverage "
                  f"{_pct(metrics['interval_coverage'])} ({metrics['heldout_points']} held-out points); "
                  f"MAE {metrics['mae_accuracy']} points on {metrics['accuracy_points']} accuracy values.", ""]
    tab = curves[curves["label"].isin(LABELS)]
    h = [f"{float(v):g}x" for v in cfg["horizons"]]
    head = "| suite | family | task | metric | shots | label | evidence | n | " + " | ".join(h) + " | crossing / turn |"
    lines += [head, "|" + "---|" * (9 + len(h))]
    for _, r in tab.iterrows():
        fc = [f"{r[f'pred_{t}']:.3g} [{r[f'lo_{t}']:.3g}, {r[f'hi_{t}']:.3g}]" for t in h]
        extra = ""
        if isinstance(r.get("turn"), str):
            extra = f"turn: {r['turn']}" + (f" at {r['turn_x']:.3g}" if pd.notna(r["turn_x"]) else "")
        if pd.notna(r.get("cross_compute")):
            extra = (f"{r['cross_level']:.3g} at C={r['cross_compute']:.3g} "
                     f"[{r['cross_compute_lo']:.3g}, {r['cross_compute_hi']:.3g}] ({r['cross_method']})")
        shots = "" if pd.isna(r["num_fewshot"]) else int(r["num_fewshot"])
        lines.append(f"| {r['suite']} | {r['family']} | {r['task']} | {r['metric']} | {shots} | {r['label']} | "
                     f"{r['evidence']} | {r['n_points']} | " + " | ".join(fc) + f" | {extra} |")
    lines.append("")
    show = em
    if len(em):
        keep = em["label"].isin(LABELS) | em["suite"].isin(cfg["emergence"].get("report_suites") or [])
        show = em[keep & em["cross_compute"].notna()] if "cross_compute" in em else em.iloc[:0]
    if len(show):
        lines += ["### Emergence: where accuracy crosses chance + margin", "",
                  f"Labelled curves, and the suites {cfg['emergence'].get('report_suites') or []}; every curve and "
                  "every method (with the reason where one does not apply) is in reports/trends_emergence.csv. "
                  "inf: not within 1000x the family's largest compute.", "",
                  "| suite | family | task | metric | shots | label | method | level | compute [90%] | params [90%] "
                  "| detail |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for _, r in show.iterrows():
            if pd.notna(r.get("cross_compute")):
                cc = f"{r['cross_compute']:.3g} [{r['cross_compute_lo']:.3g}, {r['cross_compute_hi']:.3g}]"
                pp = f"{r['cross_params']:.3g} [{r['cross_params_lo']:.3g}, {r['cross_params_hi']:.3g}]"
            else:
                cc = pp = "—"
            shots = "" if pd.isna(r["num_fewshot"]) else int(r["num_fewshot"])
            lines.append(f"| {r['suite']} | {r['family']} | {r['task']} | {r['metric']} | {shots} | {r['label']} | "
                         f"{r['method']} | {r['level']:.3g} | {cc} | {pp} | {r['detail']} |")
        lines.append("")
    if len(ck):
        lab = ck["label"].where(ck["label"].isin(LABELS), "insufficient")
        lines.append("Across checkpoints (one model over training, x = compute): " +
                     ", ".join(f"{k} {v}" for k, v in lab.value_counts().sort_index().items()) +
                     " (reports/trends_checkpoints.csv).")
        lines.append("")
    return "\n".join(lines)


def _pct(v):
    return "n/a" if v is None else f"{100 * v:.1f}%"


# ----------------------------------------------------------------------------- CLI
def _clean_temps(paths) -> None:
    """Remove what an interrupted atomic write of these outputs left beside them."""
    for p in filter(None, paths):
        scores.clean_stale_temps(Path(p).parent, names=[Path(p).name])


def check_scale(table: pd.DataFrame, xcol: str, origin: str, what: str = "") -> None:
    """TrendsError naming the first row that is a curve's final checkpoint with a scale of 0
    (a checkpoint at initialisation): curves are fitted on a log scale."""
    fin = final_rows(table)
    bad = fin.index[~(fin[xcol].to_numpy(dtype=float) > 0)]
    if len(bad):
        raise TrendsError(f"{scores.where(table, bad[0], origin)}: {xcol} {table.loc[bad[0], xcol]:g} at the final "
                          f"checkpoint of its curve{what}; curves are fitted over log scale, so it needs > 0: "
                          "drop the row or give the model's tokens")


def run(args) -> int:
    if not args.out:
        raise TrendsError("give --out FILE.csv: where to write the table of curves (FILE_emergence.csv and "
                          "FILE_checkpoints.csv go beside it); the pipeline's own reports/trends*.csv are "
                          "written by `dvc repro`")
    cfg = load_config(args.params)
    if args.x:
        cfg["x"] = args.x
    table = scores.read(args.scores)
    check_scale(table, x_column(cfg["x"]), str(args.scores))
    full = table
    if args.train:
        table = select(table, args.train, "--train")
        check_scale(table, x_column(cfg["x"]), str(args.scores), " among the --train rows")
    out = Path(args.out)
    stem = out.with_suffix("")
    _clean_temps([out, args.emergence_out or f"{stem}_emergence.csv", args.checkpoints_out or f"{stem}_checkpoints.csv",
                  f"{stem}_heldout.csv", args.backtest_out, args.metrics_out, args.markdown_out,
                  args.backtest_out and Path(args.backtest_out).with_name(Path(args.backtest_out).stem + "_emergence.csv")])
    curves, em = analyse_table(table, cfg)
    write_csv(curves, out)
    em_path = Path(args.emergence_out or f"{stem}_emergence.csv")
    if len(em) == 0:
        em = pd.DataFrame(columns=CURVE_KEY + ["label", "method", "level", "cross_compute"])
    write_csv(em, em_path)
    ck = analyse_checkpoints(table, cfg)
    write_csv(ck, Path(args.checkpoints_out or f"{stem}_checkpoints.csv"))
    metrics = None
    if args.train:
        ho = holdout(full, table, cfg, "train-query", seed=cfg["seed"])
        write_csv(ho, Path(f"{stem}_heldout.csv"))
    if args.backtest_out:
        parts = []
        for split in cfg.get("backtest") or []:
            uni = select(full, split["universe"], f"backtest {split['name']} universe")
            tr = select(uni, split["train"], f"backtest {split['name']} train")
            parts.append(holdout(uni, tr, cfg, split["name"], seed=cfg["seed"]))
        if not parts:
            raise TrendsError("--backtest-out given but params.yaml trends.backtest lists no splits")
        bt = pd.concat(parts, ignore_index=True)
        write_csv(bt, args.backtest_out)
        metrics = backtest_metrics(bt)
        eb = emergence_backtest(full, cfg, seed=cfg["seed"])
        write_csv(eb, Path(args.backtest_out).with_name(Path(args.backtest_out).stem + "_emergence.csv"))
        metrics["emergence_pc"] = emergence_metrics(eb)
        if args.metrics_out:
            text = json.dumps(dvc_metrics(metrics), indent=2) + "\n"
            scores.atomic_write(args.metrics_out, lambda tmp: Path(tmp).write_text(text))
            write_csv(summary_frame(metrics), Path(args.metrics_out).with_name("trends_backtest_summary.csv"))
    if args.markdown_out:
        text = markdown(curves, em, ck, metrics, cfg)
        scores.atomic_write(args.markdown_out, lambda tmp: Path(tmp).write_text(text))
    labelled = curves["label"].isin(LABELS)
    msg = (f"wrote {out}: {len(curves)} curves, {int(labelled.sum())} labelled "
           f"({', '.join(f'{k} {v}' for k, v in curves.loc[labelled, 'label'].value_counts().sort_index().items())})")
    if metrics:
        msg += (f"; backtest agreement {_pct(metrics['label_agreement'])}, "
                f"coverage {_pct(metrics['interval_coverage'])}")
    print(msg)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline trends", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scores", default="data/scores.parquet", help="scores table (CSV or Parquet)")
    p.add_argument("--x", choices=["params", "compute"], default=None, help="scale axis (default: params.yaml)")
    p.add_argument("--train", default=None,
                   help="query selecting the rows to fit (e.g. \"params <= 1.5e9\"); the other final "
                        "checkpoints of the same curves are predicted into <out>_heldout.csv")
    p.add_argument("--out", default=None, help="required: one row per curve (label, evidence, forecasts); the "
                                            "other tables go beside it")
    p.add_argument("--emergence-out", default=None, help="default: <out>_emergence.csv")
    p.add_argument("--checkpoints-out", default=None, help="default: <out>_checkpoints.csv")
    p.add_argument("--backtest-out", default=None, help="run the params.yaml backtest splits and write here")
    p.add_argument("--metrics-out", default=None, help="DVC metrics JSON of the backtest (a few flat numbers; "
                                                       "every split's in trends_backtest_summary.csv beside it)")
    p.add_argument("--markdown-out", default=None, help="the report's trends section (markdown)")
    p.add_argument("--params", default="params.yaml")
    return p


def _main(argv) -> int:
    return run(parser().parse_args(argv))


def main(argv=None) -> int:
    from pipeline.__main__ import run_cli

    return run_cli(_main, argv)
