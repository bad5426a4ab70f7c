"""Your own ladder, your own forecast: one family of a scores table at any (N, D), in one command.

    python -m pipeline forecast --scores FILE --family F --params N[,N...] --tokens D[,D...]
        [--tasks t1,t2] [--method auto|two_step|direct|...] [--loss TASK:METRIC] [--chance ...] [--out FILE.csv]

For every task and target it prints the forecast, its interval, the method, how far it
extrapolates, and that method's backtest on *this family's own ladder*: the nested holdout of
:mod:`pipeline.laws.nested` (the top rung -- the largest size, every run of the top budget of an
isoFLOP sweep, or the top decile of compute when the sizes are few -- held out), the method fitted
on the smaller rungs and scored on the last checkpoint of each held-out model (MAE in points,
interval coverage, median width, interval score; :func:`pipeline.forecasting.scoring.score_group`).

``--method auto`` (the default) is the policy learned across ladders (:mod:`pipeline.laws.policy`):
the candidate methods weighted by the problem's features, with an interval calibrated on other
ladders' errors.  Nothing is chosen on this ladder's top rung (one to four held-out models are too
few to choose by); every candidate's backtest on it is reported beside auto's, as evidence.  The
backtest's policy is learned without this family's ladders where the collection has them.

The forecast and report commands' family mode (``--family``, :mod:`pipeline.stages.forecast`,
:mod:`pipeline.stages.report`) print it and hand it to the report package.  Nothing here reads
params.yaml.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline import scores
from pipeline.errors import CapcastError
from pipeline.forecasting import caveats, diagnostics, scoring
from pipeline.forecasting import targets as forecast
from pipeline.forecasting.backtest import PRED_COLUMNS, make_law
from pipeline.laws import nested
from pipeline.laws.data import Metric

SPLIT = "nested"
EXTRA_COLUMNS = ["backtest_n", "backtest_mae", "backtest_coverage", "backtest_width", "backtest_interval_score",
                 "heldout", "form", "params_used", "candidates", "note"]


@dataclass(frozen=True)
class Request:
    """What to forecast: a family's targets and tasks, and how."""

    family: str
    targets: tuple  # ((N, D), ...)
    tasks: tuple | None = None
    metric: str = "acc"
    method: str = "auto"
    loss: str | None = None
    suite: str | None = None
    num_fewshot: int | None = None
    level: float = 0.9
    n_bootstrap: int = 200
    seed: int = 0
    curve_points: int = 40
    source: str = "the scores table"
    calibration: object = None  # a pipeline.ladders.calibration.Source: where auto and the intervals come from


@dataclass
class Result:
    forecast: pd.DataFrame  # forecast.FORECAST_COLUMNS + EXTRA_COLUMNS: one row per target x task
    curves: pd.DataFrame  # forecast.CURVE_COLUMNS
    predictions: pd.DataFrame  # PRED_COLUMNS: every candidate's held-out predictions (the nested backtest)
    backtest: pd.DataFrame  # pipeline.forecasting.scoring.score of those predictions
    rows: pd.DataFrame  # the family's rows the laws saw
    diagnostics: pd.DataFrame | None = None  # pipeline.forecasting.diagnostics of a two-step forecast


# ------------------------------------------------------------------------------ the family's rows
def family_rows(table: pd.DataFrame, req: Request) -> tuple[pd.DataFrame, str]:
    """The family's rows in one suite (and one shot count per task); (rows, suite)."""
    rows = table[table["family"] == req.family]
    if rows.empty:
        fams = sorted(table["family"].astype(str).unique())
        raise CapcastError(f"{req.source}: no rows of family {req.family!r} (families there: {', '.join(fams[:12])}"
                           f"{', ...' if len(fams) > 12 else ''}); fix --family")
    suites = sorted(rows["suite"].astype(str).unique())
    suite = req.suite or (suites[0] if len(suites) == 1 else None)
    if suite is None:
        raise CapcastError(f"{req.source}: family {req.family!r} has rows in suites {', '.join(suites)}; numbers "
                           "compare within one suite only: pass --suite NAME")
    rows = rows[rows["suite"] == suite]
    if rows.empty:
        raise CapcastError(f"{req.source}: family {req.family!r} has no rows in suite {suite!r} (it has "
                           f"{', '.join(suites)}); fix --suite")
    if req.num_fewshot is not None:
        rows = rows[rows["num_fewshot"] == req.num_fewshot]
        if rows.empty:
            raise CapcastError(f"{req.source}: family {req.family!r} has no {req.num_fewshot}-shot rows; fix --num-fewshot")
    return rows, suite


def family_tasks(rows: pd.DataFrame, req: Request, fix: str = "--tasks or --metric") -> list[str]:
    """--tasks (each must have the metric), else every task of the family with the metric;
    ``fix``: the flags an error tells the user to change.  The metric is an accuracy: the laws and
    the calibration are of accuracies in [0, 1] (a loss would be clipped into it)."""
    if scores.metric_kind(req.metric) != "accuracy":
        raise CapcastError(f"--metric {req.metric}: not an accuracy (higher is better, in [0, 1]); the family "
                           f"forecast is of accuracies: pick one ({', '.join(sorted(scores.ACCURACY_METRICS)[:6])}, "
                           "...), and give a loss to go through with --loss")
    have = sorted(rows.loc[rows["metric"] == req.metric, "task"].astype(str).unique())
    metrics = ", ".join(sorted(rows["metric"].astype(str).unique()))
    if not req.tasks:
        if not have:
            raise CapcastError(f"{req.source}: family {req.family!r} has no {req.metric!r} rows; pick the accuracy "
                               f"with --metric (it has {metrics})")
        return have
    missing = [t for t in req.tasks if t not in have]
    if missing:
        held = f"tasks with it: {', '.join(have)}" if have else f"no task has it; its metrics: {metrics}"
        raise CapcastError(f"{req.source}: family {req.family!r} has no {req.metric!r} rows of {', '.join(missing)} "
                           f"({held}); fix {fix}")
    return list(req.tasks)


def check_loss(rows: pd.DataFrame, req: Request, flag: str = "--loss") -> None:
    """A --loss that is a loss metric of the family's rows: one that is not would leave the two-step
    law out of the forecast without a word (auto weighs the other candidates)."""
    if not req.loss:
        return
    loss = Metric.parse(req.loss, flag)
    losses = scores.loss_metrics(rows)
    if scores.metric_kind(loss.metric) != "loss":
        raise CapcastError(f"{flag} {req.loss}: {loss.metric!r} is not a loss metric (lower is better: "
                           f"{', '.join(sorted(scores.LOSS_METRICS))}); name one of the family's losses "
                           f"({', '.join(losses[:8]) or 'it has none'})")
    if str(loss) not in losses:
        raise CapcastError(f"{req.source}: family {req.family!r} has no {loss} rows (its losses: "
                           f"{', '.join(losses[:8]) or 'none'}); fix {flag}")


def check_task(rows: pd.DataFrame, task: str, req: Request) -> None:
    """One shot count per task, and a chance level for the laws that floor at it."""
    shots = rows.loc[(rows["task"] == task) & (rows["metric"] == req.metric), "num_fewshot"]
    if shots.nunique(dropna=False) > 1:
        shown = ", ".join(str(s) for s in sorted(shots.dropna().unique()))
        raise CapcastError(f"{req.source}: {task}:{req.metric} of family {req.family!r} has rows with {shown} shots; "
                           "pass --num-fewshot N")
    if req.method != "loglinear" and scores.metric_kind(req.metric) == "accuracy":
        try:
            scores.chance_level(task, req.metric, rows)
        except scores.ScoresError as exc:
            raise CapcastError(f"{req.source}: {exc}") from None


def methods(req: Request, policy) -> list[str]:
    """The methods backtested on the family's ladder: the one asked for, and with auto every
    candidate beside it (evidence, not a choice)."""
    if req.method != "auto" or policy is None:
        return [req.method]
    return ["auto"] + list(policy.candidates)


def options(method: str, req: Request) -> dict:
    """The law's options (level and seed are given beside them)."""
    opts = {"n_bootstrap": req.n_bootstrap}
    if req.loss and method in ("two_step", "link", "auto"):
        opts["loss"] = req.loss
    return opts


def policies(req: Request, family: str):
    """(the forecast's policy, the backtest's policy without the family's ladder group), or Nones
    where there is no calibration table."""
    src = req.calibration
    if src is None or not src.path.exists():
        return None, None
    return src.policy(req.level), src.policy(req.level, [family])


# ----------------------------------------------------------------------------- nested backtest
@dataclass
class Backtest:
    method: str
    split: nested.InnerSplit | None
    predictions: pd.DataFrame | None  # the scored held-out units, with predicted, lower, upper
    stats: dict  # backtest.score_group of them
    reason: str = ""


def nested_backtest(rows: pd.DataFrame, target: Metric, method: str, req: Request, policy=None) -> Backtest:
    """The method fitted on the smaller rungs of the family's ladder and scored on the held-out
    top rung (:func:`pipeline.laws.nested.inner_splits`, one fold)."""
    splits = nested.inner_splits(rows, target, folds=1)
    if not splits:
        return Backtest(method, None, None, {}, "too few sizes or checkpoints to hold the top rung out")
    split = splits[0]
    try:
        opts = {**options(method, req), "level": req.level, "random_state": req.seed}
        law = make_law(method, str(target), opts, split.train, split.test, policy).fit(split.train)
        pred = law.predict(split.test)
    except CapcastError as exc:
        return Backtest(method, split, None, {}, str(exc))
    scored = split.scored[["model", "step"]].merge(pred, on=["model", "step"], how="left")
    scored = scored.assign(task=target.task, metric=target.metric)
    return Backtest(method, split, scored, scoring.score_group(scored, req.level))


# ------------------------------------------------------------------------------------- forecast
def target_objects(req: Request, suite: str) -> list[forecast.Target]:
    """The request's (N, D) pairs as targets; CapcastError naming the first that is not two numbers > 0
    (the command line checks its own; this holds for a request built in Python too)."""
    for i, pair in enumerate(req.targets, 1):
        n, d = (tuple(pair) + (None, None))[:2]
        if not all(isinstance(v, (int, float, np.number)) and np.isfinite(v) and v > 0 for v in (n, d)):
            raise CapcastError(f"target {i} of {req.family!r}: (N, D) = ({n!r}, {d!r}); give a model size and a "
                               "token count, both finite numbers > 0")
    return [forecast.Target(f"{req.family} N={n:.3g} D={d:.3g}", req.family, suite, n, d) for n, d in req.targets]


def forecast_task(table: pd.DataFrame, rows: pd.DataFrame, task: str, req: Request, tgts: list, units: pd.DataFrame
                  ) -> tuple[list[dict], list[pd.DataFrame], list[pd.DataFrame], list[pd.DataFrame]]:
    """(forecast rows, curves, held-out predictions, two-step diagnostics) of one task at every target."""
    target = Metric(task, req.metric)
    shots = rows.loc[(rows["task"] == task) & (rows["metric"] == req.metric), "num_fewshot"].iloc[0]
    cfg = {"metric": req.metric, "num_fewshot": None if pd.isna(shots) else int(shots), "seed": req.seed}
    policy, held_out_policy = policies(req, req.family)
    tried = [nested_backtest(rows, target, m, req, held_out_policy) for m in methods(req, policy)]
    held = [r.predictions.assign(method=r.method) for r in tried if r.predictions is not None]
    bt = tried[0]  # the method asked for: its backtest is printed beside its forecast
    base = _base(tgts, req, task, cfg, req.method)
    for b, t in zip(base, tgts):
        b.update(forecast.extrapolation(rows, str(target), t.compute_flops, policy, t.params, t.tokens))
        b["caveats"] = caveats.caveats(rows, str(target), req.method, None, req.loss)

    def note(b, law=None, failure="", backtest="", wide=""):
        return caveats.note(rows, str(target), req.method, b["extrapolation"], law, req.loss, failure, backtest, wide)

    try:
        k = len(units) // len(tgts)
        law, first = forecast.fit_predict(table, tgts[0], task, req.method, options(req.method, req), cfg,
                                          units.iloc[:k], req.level, policy)
        # one target at a time: a law's interval draws depend on the batch of units it predicts
        preds = [first] + [law.predict(units.iloc[i * k:(i + 1) * k]) for i in range(1, len(tgts))]
    except CapcastError as exc:
        failure = str(exc) if str(exc).startswith(req.method) else f"{req.method}: {exc}"
        return [{**b, "predicted": np.nan, "lower": np.nan, "upper": np.nan, "note": note(b, failure=failure),
                 "heldout": bt.split.rung if bt.split is not None else ""} for b in base], [], held, []
    summary = ";".join(f"{r.method}={r.stats['mae']:.4g}" if r.stats.get("n") else f"{r.method}=n/a" for r in tried)
    out, curves, diags = [], [], []
    for i, (pred, b) in enumerate(zip(preds, base)):
        mine = units.iloc[i * k:(i + 1) * k]  # the target, then its curve by rising compute
        part = pred.set_index("model").loc[mine["model"]].reset_index()  # a law returns units in its own order
        first = part.iloc[0]
        ne = mine["params_non_embedding"].iloc[0] if "params_non_embedding" in units else np.nan
        (wide,) = caveats.interval_words(rows, str(target), [first["lower"]], [first["upper"]])
        out.append({**b, "params_non_embedding": ne, "predicted": first["predicted"], "lower": first["lower"],
                    "upper": first["upper"], "backtest_n": bt.stats.get("n", 0), "backtest_mae": bt.stats.get("mae"),
                    "backtest_coverage": bt.stats.get("coverage"), "backtest_width": bt.stats.get("median_width"),
                    "backtest_interval_score": bt.stats.get("interval_score"),
                    "heldout": bt.split.rung if bt.split is not None else "", "form": law.form_label(),
                    "params_used": getattr(law, "params_used_", ""), "candidates": summary,
                    "caveats": caveats.join([b["caveats"], wide]),
                    "note": note(b, law, backtest=bt.reason, wide=wide)})
        curves.append(forecast.curve_frame(part, b))
        diags.append(diagnostics.two_step_frame(law, forecast.training_rows(table, tgts[0], req.method, cfg), mine, b))
    return out, curves, held, diags


def _base(tgts, req: Request, task: str, cfg: dict, method: str) -> list[dict]:
    return [{"target": t.name, "family": t.family, "suite": t.suite, "params": t.params, "tokens": t.tokens,
             "compute_flops": t.compute_flops, "task": task, "metric": req.metric, "num_fewshot": cfg["num_fewshot"],
             "method": method, "level": req.level} for t in tgts]


def run(table: pd.DataFrame, req: Request) -> Result:
    """Forecast every task of ``req.family`` at every target (see the module docstring)."""
    rows, suite = family_rows(table, req)
    tasks = family_tasks(rows, req)
    check_loss(rows, req)
    for task in tasks:
        check_task(rows, task, req)
    tgts = target_objects(req, suite)
    cfg = {"curve_points": req.curve_points}
    units = pd.concat([forecast.target_units(rows, t, cfg) for t in tgts], ignore_index=True)
    out, curves, held, diags = [], [], [], []
    for task in tasks:
        o, c, h, d = forecast_task(rows, rows, task, req, tgts, units)
        out += o
        curves += c
        held += h
        diags += d
    fc = pd.DataFrame(out).reindex(columns=forecast.FORECAST_COLUMNS + EXTRA_COLUMNS)
    cv = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=forecast.CURVE_COLUMNS)
    pr = _predictions(held, suite)
    bt = scoring.score(pr, level=req.level) if len(pr) else pd.DataFrame()
    return Result(fc, cv, pr, bt, rows, diagnostics.concat(diags))


def _predictions(held: list, suite: str) -> pd.DataFrame:
    if not held:
        return pd.DataFrame(columns=PRED_COLUMNS)
    pr = pd.concat(held, ignore_index=True)
    pr = pr.assign(split=SPLIT, fold=SPLIT, suite=suite)
    return pr.reindex(columns=PRED_COLUMNS)


# ------------------------------------------------------------------------------------- printing
def describe(res: Result, req: Request) -> str:
    rows = res.rows[res.rows["compute_flops"] > 0]
    ck = rows.drop_duplicates(["model", "step"])
    sizes = np.unique(np.round(np.log10(ck["params"].to_numpy(float)), nested.SIZE_DECIMALS))
    rung = next((h for h in res.forecast["heldout"] if isinstance(h, str) and h), "none (too few rungs)")
    return (f"{req.family} ({ck['model'].nunique()} models, {len(ck)} checkpoints, {len(sizes)} sizes up to "
            f"N={ck['params'].max():.3g}, C up to {ck['compute_flops'].max():.3g} FLOPs); nested backtest holds out "
            f"{rung}")


def line(r, level: float) -> str:
    pct = int(round(level * 100))
    head = f"{r['task']}:{r['metric']}  N={r['params']:.3g} D={r['tokens']:.3g}"
    if not np.isfinite(r["predicted"]):
        return f"{head}  no forecast ({r['note']})"
    if r["backtest_n"]:
        unit = "points" if scores.metric_kind(r["metric"]) == "accuracy" else "(metric units)"
        bt = f"backtest MAE {r['backtest_mae']:.2f} {unit}, coverage {r['backtest_coverage']:.2f} (n={int(r['backtest_n'])})"
    else:
        bt = "backtest n/a"
    used = r.get("params_used", "")
    n_used = f"  N: {used}" if isinstance(used, str) and used else ""
    note = r.get("note", "")
    note = f"  ({note})" if isinstance(note, str) and note else ""  # the caveats (pipeline.forecasting.caveats)
    return (f"{head}  predicted {r['predicted']:.4f}  {pct}% [{r['lower']:.4f}, {r['upper']:.4f}]  "
            f"{r['method']}  {bt}{n_used}{note}")


__all__ = ["Request", "Result", "run", "describe", "line"]
