"""The inverse question: how big must a model of this family be to reach a goal, and how sure is that?

    python -m pipeline reach --scores FILE --family F --goal TASK:METRIC=VALUE [--tokens D | --tokens-per-param R]

The law (auto by default, or ``--method``) is fitted on the family's rows as the family forecast
fits it (:mod:`pipeline.forecasting.family`: the same rows, suite, shots and chance level), and
predicts a log grid of compute along the recipe -- a fixed D, or D = R x N; by default the
ladder's own (one D for every size, else its median D/N) -- from the family's smallest model to
``10^4`` x its largest.  The answer is the smallest compute C (and N, D on the recipe) at which
the point forecast reaches the goal, and a ``level`` interval on C and N read off the forecast's
own band: where the upper bound first reaches the goal is the interval's lower end, where the
lower bound first reaches it its upper end ("beyond 10^4x" where the lower bound never does).
Where the point forecast never reaches the goal the answer is "not reached within 10^4x the
largest model", with why (the law levels off below the goal, or rises too slowly).

Its backtest on the family's own ladder, after the trends stage's crossing-point backtest
(:func:`pipeline.trends.backtest.crossing_backtest`): the top rung is held out
(:func:`pipeline.laws.nested.inner_splits`), the goal is the value its final checkpoint reached,
and the compute at which that goal is reached is predicted from the lower rungs alone (along the
top rung's own recipe, with a policy learned without the family's ladders), then scored in
decades of compute against the top rung's and by whether its interval holds it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from pipeline import scores
from pipeline.errors import CapcastError
from pipeline.forecasting import caveats, family
from pipeline.forecasting import targets as forecast
from pipeline.laws import nested
from pipeline.laws.data import Metric

MAX_FACTOR = 1e4  # the grid ends at this multiple of the family's largest compute
PER_DECADE = 40  # grid points per decade of compute
FAR_FACTOR = 1e8  # the "ceiling": the forecast this far out (beyond the grid) says where the law levels off
COLUMNS = ["family", "suite", "task", "metric", "num_fewshot", "goal", "method", "level", "recipe", "reached",
           "compute_flops", "params", "tokens", "compute_lower", "compute_upper", "params_lower", "params_upper",
           "factor", "largest_compute", "at_max_factor", "ceiling", "extrapolation", "caveats", "note",
           "backtest_heldout", "backtest_goal", "backtest_compute_true", "backtest_compute", "backtest_lower",
           "backtest_upper", "backtest_error_decades", "backtest_hit", "backtest_note"]
_GOAL = re.compile(r"\s*([^\s:=]+):([^\s:=]+)\s*=\s*(\S+)\s*")


# ---------------------------------------------------------------------------------- the question
@dataclass(frozen=True)
class Goal:
    task: str
    metric: str
    value: float

    def __str__(self) -> str:
        return f"{self.task}:{self.metric}={self.value:g}"


def parse_goal(text: str, flag: str = "--goal") -> Goal:
    """``arc_challenge:acc=0.6`` -> Goal; one-line CapcastError for anything else."""
    m = _GOAL.fullmatch(str(text))
    if not m:
        raise CapcastError(f"{flag} {text!r}: write TASK:METRIC=VALUE, e.g. {flag} arc_challenge:acc=0.6")
    task, metric, raw = m.groups()
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value):
        raise CapcastError(f"{flag} {text!r}: {raw!r} is not a number; write TASK:METRIC=VALUE, e.g. "
                           f"{flag} {task}:{metric}=0.6")
    if scores.metric_kind(metric) != "accuracy":
        raise CapcastError(f"{flag} {text!r}: {metric!r} is not an accuracy; reach forecasts accuracies (acc, "
                           "acc_norm, exact_match, ...), the metric the laws extrapolate")
    if not 0 <= value <= 1:
        hint = f" (percent? write {value / 100:g})" if 1 < value <= 100 else ""
        raise CapcastError(f"{flag} {text!r}: an accuracy goal must lie in [0, 1], got {value:g}{hint}")
    return Goal(task, metric, value)


@dataclass(frozen=True)
class Recipe:
    """How N and D grow with compute C = 6ND: a fixed D (``tokens``), or D = ``ratio`` x N."""

    tokens: float | None = None
    ratio: float | None = None

    def target(self, name: str, fam: str, suite: str, compute: float) -> forecast.Target:
        """The recipe's model at ``compute`` (a forecast target)."""
        if self.tokens is not None:
            return forecast.Target(name, fam, suite, compute / (6.0 * self.tokens), self.tokens, "tokens")
        n = math.sqrt(compute / (6.0 * self.ratio))
        return forecast.Target(name, fam, suite, n, self.ratio * n, "ratio")

    def __str__(self) -> str:
        return f"D={self.tokens:.3g} tokens" if self.tokens is not None else f"D={self.ratio:.3g}xN"


def ladder_recipe(rows: pd.DataFrame) -> Recipe:
    """The ladder's own recipe: one D for every size (within 1%), else the median D/N of its runs."""
    final = rows.loc[rows["tokens"] > 0].sort_values("tokens", kind="mergesort").drop_duplicates("model", keep="last")
    if final.empty:
        raise CapcastError("the family's rows have no checkpoint with tokens > 0; give --tokens or --tokens-per-param")
    d = final["tokens"].to_numpy(float)
    if final["params"].nunique() < 2 or d.max() <= 1.01 * d.min():
        return Recipe(tokens=float(np.median(d)))
    return Recipe(ratio=float(np.median(d / final["params"].to_numpy(float))))


@dataclass
class Crossing:
    """Where a forecast reaches the goal along the recipe (log10 compute; NaN: never within the grid)."""

    point: float
    lower: float  # the upper bound's crossing
    upper: float  # the lower bound's crossing (NaN: beyond the grid)
    largest: float  # log10 of the family's largest compute
    at_max: float  # the point forecast at the grid's end
    ceiling: float  # the point forecast at FAR_FACTOR x the largest compute
    start: float = float("nan")  # log10 C of the grid's first point: the smallest final model's


def first_reach(log_c: np.ndarray, y: np.ndarray, goal: float) -> float:
    """The smallest log10 C where ``y`` reaches ``goal`` (linear between grid points); NaN if never."""
    ok = np.isfinite(y)
    log_c, y = log_c[ok], y[ok]
    hit = np.flatnonzero(y >= goal)
    if not len(hit):
        return float("nan")
    i = hit[0]
    if i == 0:
        return float(log_c[0])
    t = (goal - y[i - 1]) / (y[i] - y[i - 1])
    return float(log_c[i - 1] + t * (log_c[i] - log_c[i - 1]))


def crossing(rows: pd.DataFrame, goal: Goal, req: family.Request, recipe: Recipe, policy, cfg: dict) -> Crossing:
    """Fit ``req.method`` on ``rows`` (one family, one suite) and find where it reaches ``goal``."""
    final = scores.final_checkpoints(rows[(rows["task"] == goal.task) & (rows["metric"] == goal.metric)])
    final = final[final["compute_flops"] > 0]
    if final.empty:
        raise CapcastError(f"{req.source}: {goal.task}:{goal.metric} of family {req.family!r} has no checkpoint with "
                           "compute > 0 to start from")
    largest = float(np.log10(final["compute_flops"].max()))
    suite = str(rows["suite"].iloc[0])
    top = recipe.target(f"reach {goal}", req.family, suite, 10 ** largest * MAX_FACTOR)
    lo = float(np.log10(final["compute_flops"].min()))
    points = int(np.ceil((np.log10(top.compute_flops) - lo) * PER_DECADE)) + 1
    units = forecast.target_units(rows, top, {"curve_points": points})
    far = forecast.target_units(rows, recipe.target(f"reach {goal} far", req.family, suite,
                                                    10 ** largest * FAR_FACTOR), {"curve_points": 2}).iloc[:1]
    units = pd.concat([units.iloc[1:], far], ignore_index=True)  # the grid (rising compute), then the far unit
    _, pred = forecast.fit_predict(rows, top, goal.task, req.method, family.options(req.method, req), cfg, units,
                                   req.level, policy)
    pred = pred.set_index("model").loc[units["model"]].reset_index()  # a law returns units in its own order
    grid, far_pred = pred.iloc[:-1], pred.iloc[-1]
    log_c = np.log10(grid["compute_flops"].to_numpy(float))
    y, lo_b, hi_b = (grid[c].to_numpy(float) for c in ("predicted", "lower", "upper"))
    return Crossing(first_reach(log_c, y, goal.value), first_reach(log_c, hi_b, goal.value),
                    first_reach(log_c, lo_b, goal.value), largest, float(y[-1]), float(far_pred["predicted"]),
                    float(log_c[0]))


# ------------------------------------------------------------------------------------ the answer
def _request(req: family.Request, goal: Goal) -> family.Request:
    return replace(req, tasks=(goal.task,), metric=goal.metric)


def _cfg(rows: pd.DataFrame, goal: Goal, req: family.Request) -> dict:
    shots = rows.loc[(rows["task"] == goal.task) & (rows["metric"] == goal.metric), "num_fewshot"].iloc[0]
    return {"metric": goal.metric, "num_fewshot": None if pd.isna(shots) else int(shots), "seed": req.seed}


def reach(table: pd.DataFrame, goal: Goal, req: family.Request, recipe: Recipe | None = None,
          with_backtest: bool = True) -> dict:
    """One goal's answer and (``with_backtest``) its backtest, as a row of :data:`COLUMNS`."""
    req = _request(req, goal)
    rows, suite = family.family_rows(table, req)
    family.family_tasks(rows, req, fix="--goal")
    family.check_loss(rows, req)
    family.check_task(rows, goal.task, req)
    recipe = recipe or ladder_recipe(rows)
    cfg = _cfg(rows, goal, req)
    policy, held_out_policy = family.policies(req, req.family)
    base = {"family": req.family, "suite": suite, "task": goal.task, "metric": goal.metric,
            "num_fewshot": cfg["num_fewshot"], "goal": goal.value, "method": req.method, "level": req.level,
            "recipe": str(recipe)}
    notes = caveats.ladder(rows, goal.task, goal.metric)
    if req.method in ("auto", "two_step"):
        notes += caveats.task_losses(rows, goal.task, req.loss)
    out = {**base, **answer(rows, goal, req, recipe, policy, cfg)}
    if with_backtest:
        out.update(backtest(rows, goal, req, recipe, held_out_policy, cfg))
    out["caveats"] = caveats.join(notes)
    return out


def answer(rows: pd.DataFrame, goal: Goal, req: family.Request, recipe: Recipe, policy, cfg: dict) -> dict:
    """The answer columns of one goal (reached, C, N, D, the interval, why not)."""
    try:
        cr = crossing(rows, goal, req, recipe, policy, cfg)
    except CapcastError as exc:
        return {"reached": False, "note": f"{req.method}: {exc}" if not str(exc).startswith(req.method) else str(exc)}
    out = {"largest_compute": 10 ** cr.largest, "at_max_factor": cr.at_max, "ceiling": cr.ceiling,
           "reached": bool(np.isfinite(cr.point))}
    for key, lc in (("", cr.point), ("_lower", cr.lower), ("_upper", cr.upper)):
        c = 10 ** lc if np.isfinite(lc) else (np.inf if key == "_upper" else np.nan)
        t = recipe.target("", req.family, "", c) if np.isfinite(c) else None
        out[f"compute{key or '_flops'}"] = c
        out[f"params{key}"] = t.params if t is not None else c
        if not key:
            out["tokens"] = t.tokens if t is not None else np.nan
    if out["reached"]:
        out["factor"] = 10 ** (cr.point - cr.largest)
        out["extrapolation"] = forecast.extrapolation(rows, f"{goal.task}:{goal.metric}", out["compute_flops"],
                                                      policy, out["params"], out["tokens"])["extrapolation"]
        # the extrapolation words already say "interpolation" inside the ladder; the note adds only
        # that a goal met from the grid's start is met by the smallest model (not found there)
        out["note"] = ("already reached by the family's smallest model: the goal lies at or below its forecast"
                       if cr.point <= cr.start + 1e-9 else "")
    else:
        out["note"] = not_reached(cr, goal)
    return out


def not_reached(cr: Crossing, goal: Goal) -> str:
    """Why the point forecast never reaches the goal within the grid."""
    head = f"not reached within {MAX_FACTOR:.0e}x the largest model"
    if np.isfinite(cr.ceiling) and cr.ceiling < goal.value:
        return (f"{head}: the law levels off below the goal (its forecast is {cr.ceiling:.3g} at {FAR_FACTOR:.0e}x, "
                f"goal {goal.value:g})")
    return f"{head}: the forecast rises too slowly ({cr.at_max:.3g} at {MAX_FACTOR:.0e}x, goal {goal.value:g})"


# ------------------------------------------------------------------------------------ the backtest
def backtest(rows: pd.DataFrame, goal: Goal, req: family.Request, recipe: Recipe, policy, cfg: dict) -> dict:
    """The top rung held out: from the lower rungs, where is the top rung's final value reached?"""
    target = Metric(goal.task, goal.metric)
    splits = nested.inner_splits(rows, target, folds=1)
    if not splits:
        return {"backtest_note": "too few sizes or checkpoints to hold the top rung out"}
    split = splits[0]
    scale = split.test.drop_duplicates(["model", "step"])[["model", "step", "params", "tokens", "compute_flops"]]
    top = split.scored.merge(scale, on=["model", "step"]).sort_values("compute_flops", kind="mergesort").iloc[-1]
    true_c = float(top["compute_flops"])
    own = (Recipe(tokens=float(top["tokens"])) if recipe.tokens is not None
           else Recipe(ratio=float(top["tokens"]) / float(top["params"])))
    held = Goal(goal.task, goal.metric, float(top["value"]))
    out = {"backtest_heldout": split.rung, "backtest_goal": held.value, "backtest_compute_true": true_c}
    try:
        cr = crossing(split.train, held, req, own, policy, cfg)
    except CapcastError as exc:
        return {**out, "backtest_note": str(exc)}
    hi = 10 ** cr.upper if np.isfinite(cr.upper) else np.inf
    lo = 10 ** cr.lower if np.isfinite(cr.lower) else np.nan
    point = 10 ** cr.point if np.isfinite(cr.point) else np.inf  # never within the grid: beyond it
    out.update(backtest_compute=point, backtest_error_decades=math.log10(point / true_c), backtest_lower=lo,
               backtest_upper=hi, backtest_hit=bool(np.isfinite(cr.lower) and lo <= true_c <= hi))
    if not np.isfinite(cr.point):
        out["backtest_note"] = "from the lower rungs: " + not_reached(cr, held)
    return out


def run(table: pd.DataFrame, goals: list[Goal], req: family.Request, recipe: Recipe | None = None,
        with_backtest: bool = True) -> pd.DataFrame:
    """Every goal's row (:data:`COLUMNS`)."""
    return pd.DataFrame([reach(table, g, req, recipe, with_backtest) for g in goals]).reindex(columns=COLUMNS)


# ------------------------------------------------------------------------------------- printing
def _c(x: float) -> str:
    return f"{x:.3g}" if np.isfinite(x) else "beyond" if x > 0 else "n/a"


def line(r) -> str:
    """One goal on one line: the answer, its interval, the backtest beside it, the caveats."""
    pct = f"{100 * float(r['level']):.3g}%"
    head = f"{r['family']} {r['task']}:{r['metric']} >= {r['goal']:g} ({r['recipe']}, {r['method']})"
    if r["reached"]:
        upper = (f"{_c(r['params_upper'])}" if np.isfinite(r["params_upper"])
                 else f"beyond {MAX_FACTOR:.0e}x the largest model")
        c_upper = _c(r["compute_upper"]) if np.isfinite(r["compute_upper"]) else "beyond"
        text = (f"{head}: N={r['params']:.3g}, C={r['compute_flops']:.3g} FLOPs ({r['factor']:.3g}x the largest "
                f"model; {pct}: N {_c(r['params_lower'])}-{upper}, C {_c(r['compute_lower'])}-{c_upper})")
    elif pd.notna(r.get("compute_lower")) and np.isfinite(r.get("compute_lower", np.nan)):
        text = (f"{head}: {r['note']}; its {pct} interval reaches the goal from N={r['params_lower']:.3g} "
                f"(C={r['compute_lower']:.3g} FLOPs)")
    else:
        text = f"{head}: {r['note']}"
    extra = [r["note"] if r["reached"] and isinstance(r["note"], str) and r["note"] else "",
             r["extrapolation"] if isinstance(r.get("extrapolation"), str) else "",
             r["caveats"] if isinstance(r.get("caveats"), str) else ""]
    return f"{text}; backtest: {backtest_words(r)}" + "".join(f"; {e}" for e in extra if e)


def backtest_words(r) -> str:
    if pd.notna(r.get("backtest_error_decades")):
        inside = "inside" if r["backtest_hit"] else "outside"
        band = f"{inside} the interval {_c(r['backtest_lower'])}-{_c(r['backtest_upper'])}"
        at = (f"put it at C={r['backtest_compute']:.3g} ({r['backtest_error_decades']:+.2f} decades, {band})"
              if np.isfinite(r["backtest_compute"]) else f"never reach it within {MAX_FACTOR:.0e}x ({band})")
        return (f"holding out {r['backtest_heldout']}, whose goal {r['backtest_goal']:.3g} it reached at "
                f"C={r['backtest_compute_true']:.3g}, the lower rungs {at}")
    note = r.get("backtest_note")
    return f"n/a ({note})" if isinstance(note, str) and note else "n/a"


__all__ = ["Goal", "Recipe", "parse_goal", "ladder_recipe", "reach", "run", "line", "COLUMNS", "MAX_FACTOR"]
