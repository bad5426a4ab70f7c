"""Auto's interval and gate against the variants tried and not kept, on the committed forecast table.

Every variant is judged as :mod:`pipeline.ladders.lolo` judges the one in use: each ladder group
left out in turn (the leave-one-ladder-out table) and each simulated design left out whole (the
new-design table), its weights and intervals learned without it.

* ``mixture``: auto's interval as it is, the stacking mixture of the candidates' calibrated
  intervals (:meth:`pipeline.laws.policy.Policy.auto_interval`);
* ``own_errors``: a normalised conformal model of auto's own errors instead (the same scale model
  and localisation as a candidate's), nested: the calibration forecasts of the other groups are
  auto forecasts whose weights were learned without the left-out group too, so nothing of it
  reaches its interval (one gate fit per pair of groups: the slow one);
* ``mixture_factor``: the mixture in use, its link-space half-width rescaled by a local conformal
  factor: the (1 - alpha) quantile, over the ``conformal.NEIGHBOURS`` nearest auto forecasts of the
  other groups, of |actual - the mixture's centre| over its half-width (each scored with its own
  out-of-group interval: one level of nesting, which favours the variant);
* ``floor_below_chance``: the link's floor moved from chance to chance - 2 x the ladder's noise
  (median stderr) for every forecast, in place of the measurement band (``conformal.measurement_band``,
  then also applied, has nothing left to widen below the floor): the other way to let an interval
  reach measured values below chance;
* ``signed_tails``: each candidate's interval from the lower and upper conformal quantiles of its
  neighbours' signed errors, in place of a centre (their median) and one quantile of the distances
  from it (:meth:`pipeline.laws.conformal.Conformal.interval`);
* ``quantile_average``: auto's interval as the same weights' average of the candidates' calibrated
  bounds in link space (Vincentization: averaging quantiles rather than probabilities, Lichtendahl,
  Grushka-Cockayne & Winkler 2013), in place of their mixture: as wide as the candidates are, not
  as wide as their disagreement;
* ``gate_interactions``: the gate (auto's weights) reads, beside the features it has, their
  products with the distance (distance x level, x |slope|, x curvature), so that how far a
  forecast goes can change which candidate a flat, near-chance or bending ladder trusts;
* ``local_stacking``: the gate's weights half of what they are, half the stacking weights
  (:func:`pipeline.laws.policy.stack`) of the forecast's ``LOCAL_K`` nearest calibration forecasts
  in the gate's standardised features: a nonparametric gate that can follow a kind of ladder the
  softmax of a linear function cannot (K and the half chosen on the leave-one-ladder-out table
  among K = 50, 100, 300 and shares 0.5, 1: its new-design rows are the ones that judge it);
* ``ridge=R``: the gate's ridge on its feature slopes (``policy.GATE_RIDGE``) set to R; the
  interval as in use;
* ``neighbours=K``: each candidate's local conformal quantile taken over its K nearest calibration
  forecasts (``conformal.NEIGHBOURS``) instead of the number in use: fewer is more local (a class
  of ladders gets nearer its own coverage) and noisier.

Printed per variant, table (lolo / new_design), class (real, emergent, ALL; ``--classes all``: every
ladder class) and holdout factor:
auto's forecasts n, MAE (points), coverage of the 90% interval, median width and interval score
(points; Gneiting & Raftery 2007).  Every number here is a development number: the table the
variants are judged on is the one the policy in use was developed on (docs/ladders.md).

    .venv/bin/python benchmarks/interval_variants.py [--variants mixture,signed_tails,ridge=0.03,neighbours=50]
        [--classes all]

About 8 minutes for the default variants on one core.
"""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pipeline  # noqa: E402,F401  (pins the numerical kernels before numpy does any work)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from pipeline.ladders import calibration, lolo, scoring  # noqa: E402
from pipeline.laws import conformal, policy  # noqa: E402
from pipeline.laws.policy import AUTO, link_errors, with_spread  # noqa: E402

VARIANTS = ("mixture", "own_errors", "mixture_factor", "floor_below_chance", "signed_tails", "quantile_average",
            "gate_interactions", "local_stacking", "ridge=0.03", "ridge=0.3")
# the variants that are library code alone (the others also change the table or post-process it)
CODE_VARIANTS = ("mixture", "signed_tails", "quantile_average", "gate_interactions", "local_stacking")
CLASSES = ("real", "emergent", "ALL")
LEVEL = 0.9


def design_groups(table: pd.DataFrame) -> pd.DataFrame:
    """The grouping of :func:`pipeline.ladders.lolo.new_design`: a simulated design is one group."""
    return table.assign(group=np.where(table["kind"] == "real", table["group"], "design:" + table["kind"].astype(str)))


def own_error_intervals(judged: pd.DataFrame, candidates: list[str], grouped: pd.DataFrame) -> pd.DataFrame:
    """``judged`` with auto's intervals from a conformal model of auto's errors on the other groups
    of ``grouped`` (candidate rows, with spread), forecast with weights learned without both groups."""
    out = judged.copy()
    auto = judged.loc[(judged["candidate"] == AUTO) & (judged["status"] == "ok")]
    for group in sorted(auto["group"].unique()):
        others = lolo.auto_forecasts(grouped.loc[grouped["group"] != group], candidates, LEVEL)
        cal = link_errors(others.loc[others["status"] == "ok"])
        model = conformal.Conformal.fit(cal["e"], cal["nz"], conformal.design(cal), LEVEL, policy._group_weights(cal))
        mine = auto.loc[auto["group"] == group]
        floor = mine["floor"].to_numpy(float)
        point = np.clip(mine["predicted"].to_numpy(float), floor, 1.0)
        noise = conformal.link_noise(point, mine["noise"].to_numpy(float), floor)
        out.loc[mine.index, "lower"], out.loc[mine.index, "upper"] = model.interval(point, floor, noise,
                                                                                    conformal.design(mine))
    return out


def factor_intervals(judged: pd.DataFrame) -> pd.DataFrame:
    """``judged`` with auto's mixture intervals rescaled, group by group, by the local conformal
    factor of the other groups' auto forecasts (their |error| over their half-width, in link space)."""
    out = judged.copy()
    auto = judged.loc[(judged["candidate"] == AUTO) & (judged["status"] == "ok") & judged["lower"].notna()]
    floor = auto["floor"].to_numpy(float)
    zl, zu = conformal.to_link(auto["lower"], floor), conformal.to_link(auto["upper"], floor)
    centre, half = (zl + zu) / 2, np.maximum((zu - zl) / 2, 1e-3)
    scores = np.abs(conformal.to_link(auto["actual"], floor) - centre) / half
    phi, weights = conformal.design(auto), policy._group_weights(auto)
    k = conformal.NEIGHBOURS
    for group in sorted(auto["group"].unique()):
        mine = (auto["group"] == group).to_numpy()
        cal = phi[~mine]
        mean, sd = cal.mean(axis=0), np.where(cal.std(axis=0) > 0, cal.std(axis=0), 1.0)
        psi = (cal - mean) / sd
        q = np.array([conformal._quantile(scores[~mine][near], weights[~mine][near], LEVEL)
                      for near in (np.argpartition(((psi - row) ** 2).sum(axis=1), k - 1)[:k]
                                   for row in (np.clip(phi[mine], cal.min(axis=0), cal.max(axis=0)) - mean) / sd)])
        point = auto["predicted"].to_numpy(float)[mine]
        lo = conformal.from_link(centre[mine] - q * half[mine], floor[mine])
        hi = conformal.from_link(centre[mine] + q * half[mine], floor[mine])
        out.loc[auto.index[mine], "lower"], out.loc[auto.index[mine], "upper"] = np.minimum(lo, point), np.maximum(hi, point)
    return out


def signed_interval(self, point, floor, noise_z, phi):
    """Conformal.interval with a lower and an upper tail quantile of the neighbours' signed scores."""
    sigma = self.sigma(noise_z, phi)
    low, high = np.empty(len(phi)), np.empty(len(phi))
    tail = 1 - (1 - self.level) / 2
    for i, near in enumerate(self.neighbours(phi)):
        s, w = self.scores[near], self.weights[near]
        high[i], low[i] = conformal._quantile(s, w, tail), -conformal._quantile(-s, w, tail)
    z, p = conformal.to_link(point, floor), np.asarray(point, float)
    return (np.minimum(conformal.from_link(z + low * sigma, floor), p),
            np.maximum(conformal.from_link(z + high * sigma, floor), p))


def quantile_average_interval(self, point, feats, P, W=None):
    """Policy.auto_interval with the weighted average of the candidates' link-space bounds."""
    floor = feats["floor"].to_numpy(float)
    lower, upper = self.candidate_intervals(feats, P)
    zl, zu = conformal.to_link(lower, floor[:, None]), conformal.to_link(upper, floor[:, None])
    W = self.weights(feats) if W is None else W
    w = np.where(np.isfinite(zl) & np.isfinite(zu), W, 0.0)
    total = w.sum(axis=1)
    w = np.divide(w, total[:, None], out=np.zeros_like(w), where=total[:, None] > 0)
    lo = np.where(total > 0, conformal.from_link(np.nansum(w * np.nan_to_num(zl), axis=1), floor), np.nan)
    hi = np.where(total > 0, conformal.from_link(np.nansum(w * np.nan_to_num(zu), axis=1), floor), np.nan)
    p = np.asarray(point, float)
    return conformal.measurement_band(np.minimum(lo, p), np.maximum(hi, p), p, feats["noise"].to_numpy(float),
                                      self.level)


INTERACTING = ("level", "abs_slope", "curvature")  # gate_interactions: features multiplied by the distance


def gate_design(feats: pd.DataFrame) -> np.ndarray:
    """conformal.design with the distance's products with :data:`INTERACTING` appended."""
    phi = conformal.design(feats)
    d = phi[:, conformal.PHI.index("distance")]
    return np.hstack([phi, np.column_stack([d * phi[:, conformal.PHI.index(f)] for f in INTERACTING])])


learn_gate_interacting = partial(policy.learn_gate, design=gate_design)  # the gate on :func:`gate_design`


_learn_gate = policy.learn_gate  # the library's, before a variant patches it
LOCAL_K, LOCAL_SHARE = 50, 0.5  # local_stacking: neighbours, and the share of the weight their stacking gets


class LocalGate(policy.Gate):
    """local_stacking's gate: the softmax gate's weights blended with the stacking weights of each
    forecast's LOCAL_K nearest calibration forecasts (in the softmax's standardised features)."""

    def weights(self, phi: np.ndarray) -> np.ndarray:
        W = super().weights(phi)
        psi, k = self.psi(phi)[:, 1:], min(LOCAL_K, len(self.cal_psi))
        local = {}
        for i, row in enumerate(psi):
            key = row.tobytes()
            if key not in local:  # the forecasts of one ladder and distance share their features
                near = np.argpartition(np.sum((self.cal_psi - row) ** 2, axis=1), k - 1)[:k]
                local[key] = policy.stack(self.cal_P[near], self.cal_y[near], self.cal_w[near])
            W[i] = (1 - LOCAL_SHARE) * W[i] + LOCAL_SHARE * local[key]
        return W


def learn_gate_local(data: pd.DataFrame, candidates: list[str], design=conformal.design) -> LocalGate:
    """policy.learn_gate's gate as a :class:`LocalGate` that keeps the calibration forecasts it learned from."""
    gate = _learn_gate(data, candidates, design)
    units, P = policy.gate_units(data, candidates)
    local = LocalGate(**vars(gate))
    local.cal_psi, local.cal_P = gate.psi(design(units))[:, 1:], P
    local.cal_y, local.cal_w = units["actual"].to_numpy(float), policy._group_weights(units)
    return local


@contextmanager
def variant_code(variant: str):
    """The library code as the variant has it, for the duration of the block."""
    if variant == "signed_tails":
        with mock.patch.object(conformal.Conformal, "interval", signed_interval):
            yield
    elif variant == "quantile_average":
        with mock.patch.object(policy.Policy, "auto_interval", quantile_average_interval):
            yield
    elif variant == "gate_interactions":
        with mock.patch.object(policy, "learn_gate", learn_gate_interacting), \
                mock.patch.object(policy.Policy, "weights", lambda self, feats: self.gate.weights(gate_design(feats))):
            yield
    elif variant == "local_stacking":
        with mock.patch.object(policy, "learn_gate", learn_gate_local):
            yield
    elif variant.startswith("ridge="):
        ridge, fit = float(variant.split("=", 1)[1]), policy.Gate.fit.__func__
        with mock.patch.object(policy.Gate, "fit", classmethod(lambda cls, P, y, phi, w: fit(cls, P, y, phi, w, ridge))):
            yield
    elif variant.startswith("neighbours="):
        with mock.patch.object(conformal, "NEIGHBOURS", int(variant.split("=", 1)[1])):
            yield
    else:
        yield


def judge(table: pd.DataFrame, candidates: list[str], variant: str) -> dict[str, pd.DataFrame]:
    """The leave-one-ladder-out and new-design forecasts of ``variant``, auto's intervals included.

    Where the variant leaves the table and the gate as they are, the leave-one-ladder-out auto
    points are the table's own, as ``python -m pipeline ladders`` scores them (the ``mixture`` row
    is then reports/ladders/lolo.csv's); else auto is forecast again from the table's rounded
    predictions (a point moves by up to 0.1 of a point)."""
    keeps_auto = variant not in ("floor_below_chance", "gate_interactions", "local_stacking") and not variant.startswith("ridge=")
    stored = table
    table = table.loc[table["candidate"] != AUTO]
    if variant == "floor_below_chance":
        floor, noise = table["floor"].to_numpy(float), table["noise"].fillna(0.0).to_numpy(float)
        table = table.assign(floor=np.where(floor > 0, np.maximum(floor - 2 * noise, 0.0), floor))
    with variant_code(variant):
        judged = {"lolo": (lolo.out_of_group_intervals(stored, candidates, LEVEL) if keeps_auto
                           else lolo.evaluate(table, candidates, LEVEL)),
                  "new_design": lolo.new_design(table, candidates, LEVEL)}
    if variant == "mixture_factor":
        judged = {name: factor_intervals(rows) for name, rows in judged.items()}
    if variant == "own_errors":
        rows = with_spread(table)
        judged = {"lolo": own_error_intervals(judged["lolo"], candidates, rows),
                  "new_design": own_error_intervals(judged["new_design"], candidates, design_groups(rows))}
    return judged


def summary(judged: dict[str, pd.DataFrame], variant: str, classes=CLASSES) -> pd.DataFrame:
    out = []
    for name, rows in judged.items():
        rows = rows.loc[rows["candidate"] == AUTO]
        rows = rows.assign(ladder_class=np.where(rows["kind"] == "real", "real", rows["kind"]))
        for cls in (sorted(rows["ladder_class"].unique()) + ["ALL"] if classes == "all" else classes):
            mine = rows if cls == "ALL" else rows.loc[rows["ladder_class"] == cls]
            for factor, g in mine.groupby("factor"):
                out.append({"variant": variant, "table": name, "class": cls, "factor": factor, **scoring.score(g, LEVEL)})
    return pd.DataFrame(out)


def _numbered(variant: str) -> bool:
    """Whether ``variant`` is ridge=R (R >= 0) or neighbours=K (K >= 1)."""
    name, _, value = variant.partition("=")
    try:
        return (name == "ridge" and float(value) >= 0) or (name == "neighbours" and int(value) >= 1)
    except ValueError:
        return False


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--table", default=str(calibration.DEFAULT_PATH))
    ap.add_argument("--classes", choices=["some", "all"], default="some",
                    help="some: real, emergent and ALL; all: every ladder class")
    args = ap.parse_args(argv)
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS and not _numbered(v)]
    if unknown:
        ap.error(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)} (or ridge=R, neighbours=K with K >= 1)")
    table = calibration.read(args.table)
    candidates = list(calibration.DEFAULT_CANDIDATES)
    classes = "all" if args.classes == "all" else CLASSES
    result = pd.concat([summary(judge(table, candidates, v), v, classes) for v in variants], ignore_index=True)
    print(result.drop(columns=["failed"]).round(3).to_string(index=False))  # 3 decimals: the docs round once
    return 0


if __name__ == "__main__":
    sys.exit(main())
