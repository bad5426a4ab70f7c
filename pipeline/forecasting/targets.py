"""What a family will score at a target size: one law fitted on the target's rows, predicted at the
target and along its recipe (the fitted curves the report draws).

Both front doors use it: the forecast stage (every target of ``forecast.targets`` in params.yaml,
:func:`forecast_all`) and the family forecast (:mod:`pipeline.forecasting.family`, any family of
any scores table at any (N, D)).  Every law is fitted on *all* rows of the target's suite and
family (the backtests judge the same laws on held-out models); the only randomness, the bootstrap
intervals inside the laws, is seeded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline import files, scores
from pipeline.errors import CapcastError
from pipeline.forecasting import caveats, diagnostics
from pipeline.laws.data import IdentityCache, Metric, final_units, values
from pipeline.parallel import fork_map

FORECAST_COLUMNS = ["target", "family", "suite", "params", "params_non_embedding", "tokens", "compute_flops",
                    "task", "metric", "num_fewshot", "method", "level", "predicted", "lower", "upper", "distance",
                    "extrapolation", "caveats"]
CURVE_COLUMNS = ["target", "family", "suite", "task", "metric", "num_fewshot", "method",
                 "compute_flops", "params", "tokens", "predicted", "lower", "upper"]


class ForecastError(CapcastError):
    """Bad forecast configuration or too little data; the message says what to change."""


# --------------------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class Target:
    name: str
    family: str
    suite: str
    params: float
    tokens: float
    fixed: str = "tokens"  # what the family's recipe holds fixed across sizes: "tokens" or "ratio"
    loss: str | None = None  # TASK:METRIC of the loss the two-step law goes through
    methods: tuple | None = None  # this target's methods (default: forecast.methods)
    options: dict | None = None  # per-method options for this target (over forecast.method_options)

    @property
    def compute_flops(self) -> float:
        return 6.0 * self.params * self.tokens


def parse_targets(cfg: dict) -> list[Target]:
    """``forecast.targets`` -> Targets; tokens from ``tokens`` or ``tokens_per_param`` x params."""
    out = []
    for i, t in enumerate(cfg.get("targets") or []):
        where = f"params.yaml forecast.targets[{i}]"
        for key in ("name", "family", "suite", "params"):
            if key not in t:
                raise ForecastError(f"{where}: missing {key!r}")
        n = float(t["params"])
        if ("tokens" in t) == ("tokens_per_param" in t):
            raise ForecastError(f"{where} ({t['name']}): give exactly one of 'tokens' or 'tokens_per_param'")
        d = float(t["tokens"]) if "tokens" in t else float(t["tokens_per_param"]) * n
        if n <= 0 or d <= 0:
            raise ForecastError(f"{where} ({t['name']}): params and tokens must be > 0")
        unknown = sorted(set(t) - {"name", "family", "suite", "params", "tokens", "tokens_per_param", "loss",
                                    "methods", "options"})
        if unknown:
            raise ForecastError(f"{where} ({t['name']}): unknown key(s) {unknown}")
        out.append(Target(str(t["name"]), str(t["family"]), str(t["suite"]), n, d,
                          "tokens" if "tokens" in t else "ratio", t.get("loss"),
                          tuple(t["methods"]) if t.get("methods") else None, t.get("options") or None))
    if not out:
        raise ForecastError("params.yaml forecast.targets is empty; add at least one target")
    names = [t.name for t in out]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise ForecastError(f"params.yaml forecast.targets: the name {twice!r} is given twice; give each its own")
    by_file = {}
    for name in names:  # the report draws a target's figure into target-<slug>.png
        other = by_file.setdefault(files.slug(name), name)
        if other != name:
            raise ForecastError(f"params.yaml forecast.targets: {other!r} and {name!r} would share the report's "
                                f"figure target-{files.slug(name)}.png; rename one")
    return out


def check_targets(table: pd.DataFrame, targets: list[Target], cfg: dict) -> None:
    """Each target names rows: its family, in its suite, with the metric, and its loss; every task of
    forecast.tasks is some target's. A name that matches nothing would drop a target, a task or the
    two-step law from the forecast without a word."""
    metric = cfg.get("metric", "acc")
    held = set()
    for i, t in enumerate(targets):
        where = f"params.yaml forecast.targets[{i}] ({t.name})"
        family = table.loc[table["family"] == t.family]
        if family.empty:
            names = sorted(table["family"].astype(str).unique())
            raise ForecastError(f"{where}: family {t.family!r} has no rows in the scores table (families: "
                                f"{', '.join(names[:12])}{', ...' if len(names) > 12 else ''}); fix the family")
        mine = family.loc[family["suite"] == t.suite]
        if mine.empty:
            raise ForecastError(f"{where}: family {t.family!r} has no rows in suite {t.suite!r} (its suites: "
                                f"{', '.join(sorted(family['suite'].astype(str).unique()))}); fix the suite")
        tasks = set(mine.loc[mine["metric"] == metric, "task"].astype(str))
        if not tasks:
            raise ForecastError(f"{where}: family {t.family!r} has no {metric!r} rows in suite {t.suite!r} (its "
                                f"metrics: {', '.join(sorted(mine['metric'].astype(str).unique()))}); fix forecast.metric")
        held |= tasks
        _check_loss(mine, t, i)
    unknown = [task for task in cfg.get("tasks") or [] if task not in held]
    if unknown:
        raise ForecastError(f"params.yaml forecast.tasks: {unknown[0]!r} has no {metric!r} rows of any target's family "
                            f"(they have: {', '.join(sorted(held))}); fix the task")


def _check_loss(mine: pd.DataFrame, t: Target, i: int) -> None:
    if t.loss:
        have = {f"{a}:{b}" for a, b in zip(mine["task"].astype(str), mine["metric"].astype(str))}
        if t.loss not in have:
            losses = scores.loss_metrics(mine)
            raise ForecastError(f"params.yaml forecast.targets[{i}] ({t.name}): loss {t.loss!r} has no rows of family "
                                f"{t.family!r} in suite {t.suite!r} (its losses: {', '.join(losses[:8]) or 'none'}); "
                                "fix the loss")


# ------------------------------------------------------------------------------- the laws
def recipe(target: Target, compute: np.ndarray, fixed: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) along the target's recipe at each compute C = 6ND.

    ``fixed="tokens"``: D stays the target's (Pythia and OPT trained every size on the same
    tokens), N = C / 6D.  ``fixed="ratio"``: D/N stays the target's (Cerebras-GPT: 20 tokens per
    parameter), N = sqrt(C / 6r).
    """
    if fixed == "tokens":
        d = np.full_like(compute, target.tokens)
        return compute / (6.0 * d), d
    r = target.tokens / target.params
    n = np.sqrt(compute / (6.0 * r))
    return n, r * n


def non_embedding(family: str, n: np.ndarray, known: list | None = None) -> np.ndarray | None:
    """Non-embedding parameter counts of hypothetical models of ``family`` with ``n`` total parameters.

    The families registry knows them for the published sizes (Pythia), a user's table for its own
    models (``known``: (total, non-embedding) pairs, e.g. from ``ingest lm-eval``); the embedding
    count E = N - N_non_emb grows as a power of N across them (vocabulary x width), so log E is
    fitted linear in log N and extrapolated.  None when there are fewer than 3 counts: the laws then
    use total N for every unit (``params="auto"``), as they do for the training models.
    """
    from pipeline.sources import families

    fam = families.FAMILIES.get(family)
    registry = [(m.params, m.params_non_embedding) for m in (fam.models if fam else ()) if m.params_non_embedding]
    known = registry if len(registry) >= 3 or not known else known
    if len(known) < 3:
        return None
    total, ne = np.array(known, float).T
    slope, icept = np.polyfit(np.log(total), np.log(total - ne), 1)
    emb = np.exp(icept + slope * np.log(np.asarray(n, float)))
    return np.maximum(np.asarray(n, float) - emb, 0.05 * np.asarray(n, float))


_ROWS = IdentityCache(64)  # one frame per target and kind of law: the laws of a target share their candidate fits


def training_rows(table: pd.DataFrame, target: Target, method: str, cfg: dict) -> pd.DataFrame:
    """Rows a law sees: the target's suite (and shots), narrowed to its family unless the method
    needs the other families too (``forecast.suite_wide_methods``).  The same frame for every
    method of a kind (see :class:`pipeline.laws.data.IdentityCache`): do not modify it."""
    wide = method in set(cfg.get("suite_wide_methods") or [])
    shots = cfg.get("num_fewshot", 0)
    return _ROWS.get((table,), (target.suite, target.family, shots, wide),
                     lambda: _training_rows(table, target, shots, wide))


def _training_rows(table: pd.DataFrame, target: Target, shots, wide: bool) -> pd.DataFrame:
    rows = table[table["suite"] == target.suite]
    if shots is not None:
        rows = rows[(rows["num_fewshot"] == shots) | rows["num_fewshot"].isna()]
    if not wide:
        rows = rows[rows["family"] == target.family]
    if rows.empty:
        raise ForecastError(f"target {target.name!r}: suite {target.suite!r} has no rows of family "
                            f"{target.family!r}; fix forecast.targets in params.yaml")
    return rows


def target_tasks(table: pd.DataFrame, target: Target, cfg: dict) -> list[str]:
    """forecast.tasks (or the target's own ``tasks``) that the family has in its suite."""
    have = table[(table["suite"] == target.suite) & (table["family"] == target.family)
                 & (table["metric"] == cfg.get("metric", "acc"))]
    wanted = list(cfg.get("tasks") or sorted(have["task"].unique()))
    return [t for t in wanted if t in set(have["task"])]


def _unit_rows(target: Target, n, d, c, known: list | None = None) -> pd.DataFrame:
    """Rows describing models to forecast (no value of the target metric: a pure forecast)."""
    k = len(c)
    extra = {}
    ne = non_embedding(target.family, n, known)
    if ne is not None:
        extra["params_non_embedding"] = ne
    return pd.DataFrame({**extra,
        "suite": target.suite, "model": [f"{target.name} @{i:03d}" for i in range(k)],  # zero-padded: sorted = curve order
        "family": target.family, "params": n, "tokens": d, "compute_flops": c,
        "step": pd.array([pd.NA] * k, dtype="Int64"), "task": "__forecast__", "metric": "__none__",
        "value": np.nan, "stderr": np.nan, "num_fewshot": pd.array([pd.NA] * k, dtype="Int64"), "source": "forecast",
    })


def target_units(table: pd.DataFrame, target: Target, cfg: dict) -> pd.DataFrame:
    """The units a target's laws predict: the target itself (first row), then ``curve_points``
    models along its recipe from the family's smallest compute up to it (the fitted curves)."""
    fixed = "tokens" if target.fixed == "tokens" else "ratio"
    own = scores.final_checkpoints(table[(table["suite"] == target.suite) & (table["family"] == target.family)])
    own = own[own["compute_flops"] > 0]
    lo = float(own["compute_flops"].min()) if len(own) else target.compute_flops / 1e3
    grid = np.logspace(np.log10(lo), np.log10(target.compute_flops), int(cfg.get("curve_points", 40)))
    gn, gd = recipe(target, grid, fixed)
    return _unit_rows(target, np.r_[target.params, gn], np.r_[target.tokens, gd], np.r_[target.compute_flops, grid],
                      _known_non_embedding(own))


def _known_non_embedding(rows: pd.DataFrame) -> list | None:
    """(total, non-embedding) counts the rows give for their models, to extrapolate from."""
    if "params_non_embedding" not in rows.columns:
        return None
    known = rows.dropna(subset=["params_non_embedding"]).drop_duplicates("model")
    return list(zip(known["params"].astype(float), known["params_non_embedding"].astype(float))) or None


def fit_predict(table: pd.DataFrame, target: Target, task: str, method: str, options: dict, cfg: dict,
                units: pd.DataFrame, interval: float, policy=None):
    """One law fitted on the target's training rows (:func:`training_rows`), and its predictions
    of ``units``; FitError where it cannot be fitted.  ``policy``: auto's, and the calibrated
    interval of a candidate method (:func:`pipeline.forecasting.backtest.make_law`)."""
    from pipeline.forecasting.backtest import make_law

    rows = training_rows(table, target, method, cfg)
    options = {**options, "level": interval, "random_state": int(cfg.get("seed", 0))}
    law = make_law(method, f"{task}:{cfg.get('metric', 'acc')}", options, rows, units, policy).fit(rows)
    return law, law.predict(units)


def extrapolation(rows: pd.DataFrame, target: str, compute: float, policy=None, params: float | None = None,
                  tokens: float | None = None) -> dict:
    """``distance`` (decades of compute beyond the largest training run) and ``extrapolation``,
    the same in words (:func:`pipeline.laws.policy.extrapolation`), of a forecast at ``compute``;
    inside the training runs' compute, a target of ``params`` or ``tokens`` beyond every training
    run's is said to be (:func:`outside_the_runs`), not called an interpolation."""
    from pipeline.laws.policy import extrapolation as words, training_range

    try:
        top, span = training_range(rows, target)
    except CapcastError:
        return {"distance": np.nan, "extrapolation": ""}
    d = float(np.log10(compute) - top)
    text = words([d], [span], policy.support if policy is not None else {})[0]
    return {"distance": d, "extrapolation": (d <= 0 and outside_the_runs(rows, target, params, tokens)) or text}


INSIDE_BUT = "inside the training runs' compute, but"  # how the words of such a target begin (the report reads them)
SAME_SCALE = 0.01  # a target within 1% of the largest training N (or D) is that size


def outside_the_runs(rows: pd.DataFrame, target: str, params: float | None, tokens: float | None) -> str:
    """Words for a target whose N is beyond the largest training model's, or whose D is beyond the
    longest training run's ("" where neither): inside the ladder's compute is not inside the ladder
    (a bigger model on fewer tokens is a run no rung holds, and every calibration forecast lies past
    its training runs' compute)."""
    final = final_units(values(rows, Metric.parse(target), "forecast"))
    beyond = []
    for value, largest, what in ((params, final["params"].max(), "N {:.3g}x the largest training model's"),
                                 (tokens, final["tokens"].max(), "D {:.3g}x the longest training run's tokens")):
        if value is not None and np.isfinite(value) and largest > 0 and value > largest * (1 + SAME_SCALE):
            beyond.append(what.format(value / largest))
    return (f"{INSIDE_BUT} {' and '.join(beyond)}: a run the ladder does not hold, and no calibration forecast is of "
            "this kind, so its interval is that of forecasts just past a ladder's top" if beyond else "")


def method_options(target: Target, method: str, cfg: dict) -> dict:
    """forecast.method_options, then the target's own options; its loss for the laws that take one (auto's
    two_step candidate too, as in the family forecast and the ladder calibration)."""
    options = dict((cfg.get("method_options") or {}).get(method) or {})
    options.update((target.options or {}).get(method) or {})
    if method in ("two_step", "link", "auto") and target.loss and "loss" not in options:
        options["loss"] = target.loss
    return options


def curve_frame(pred: pd.DataFrame, base: dict) -> pd.DataFrame:
    """A law's predictions of the curve units (all but the first) with the forecast's identity."""
    curve = pred.iloc[1:][["params", "tokens", "compute_flops", "predicted", "lower", "upper"]].copy()
    for k in ("target", "family", "suite", "task", "metric", "num_fewshot", "method"):
        curve[k] = base[k]
    return curve[CURVE_COLUMNS]


def forecast_target(table: pd.DataFrame, target: Target, cfg: dict, interval: float, policy=None
                    ) -> tuple[list[dict], list[pd.DataFrame], list[pd.DataFrame]]:
    """Fit every method on every task of one target; (forecast rows, curve frames, two-step diagnostics)."""
    from pipeline.errors import FitError

    metric = cfg.get("metric", "acc")
    shots = cfg.get("num_fewshot", 0)
    units = target_units(table, target, cfg)
    ne = units["params_non_embedding"].iloc[0] if "params_non_embedding" in units else np.nan
    rows, curves, diags = [], [], []
    for task in target_tasks(table, target, cfg):
        for method in target.methods or cfg["methods"]:
            base = {"target": target.name, "family": target.family, "suite": target.suite,
                    "params": target.params, "params_non_embedding": ne, "tokens": target.tokens, "compute_flops": target.compute_flops,
                    "task": task, "metric": metric, "num_fewshot": shots, "method": method, "level": interval}
            own = training_rows(table, target, "carry", cfg)
            base.update(extrapolation(own, f"{task}:{metric}", target.compute_flops, policy, target.params,
                                      target.tokens))
            options = method_options(target, method, cfg)

            def note(law=None, failure="", wide=""):
                return caveats.note(own, f"{task}:{metric}", method, base["extrapolation"], law, options.get("loss"),
                                    failure, wide=wide)

            base["caveats"] = caveats.caveats(own, f"{task}:{metric}", method, None, options.get("loss"))
            try:
                law, pred = fit_predict(table, target, task, method, options, cfg, units, interval, policy)
            except FitError as exc:
                rows.append({**base, "predicted": np.nan, "lower": np.nan, "upper": np.nan, "note": note(failure=str(exc))})
                print(f"forecast: {target.name} / {task} / {method}: skipped ({exc})")
                continue
            first = pred.iloc[0]
            (wide,) = caveats.interval_words(own, f"{task}:{metric}", [first["lower"]], [first["upper"]])
            rows.append({**base, "predicted": first["predicted"], "lower": first["lower"],
                         "upper": first["upper"], "caveats": caveats.join([base["caveats"], wide]),
                         "note": note(law, wide=wide)})
            curves.append(curve_frame(pred, base))
            diags.append(diagnostics.two_step_frame(law, training_rows(table, target, method, cfg), units, base))
    return rows, curves, diags


def forecast_all(table: pd.DataFrame, cfg: dict, extra=None, policy=None) -> tuple:
    """Every target's forecast rows, curves and two-step diagnostics; ``extra`` (a function of no
    arguments) runs as one more job of the same worker pool, its result returned fourth.  ``policy``:
    learned from every ladder (a forecast is no backtest: its own family's ladders are evidence too)."""
    interval = float(cfg.get("interval", 0.9))
    targets = parse_targets(cfg)
    check_targets(table, targets, cfg)
    jobs = list(range(len(targets))) + ([None] if extra else [])

    def job(i):
        return extra() if i is None else forecast_target(table, targets[i], cfg, interval, policy)

    results = fork_map(job, jobs, int(cfg.get("processes", 1)))
    rows, curves, diags = [], [], []
    for r, c, d in results[:len(targets)]:
        rows += r
        curves += c
        diags += d
    fc = pd.DataFrame(rows, columns=FORECAST_COLUMNS + ["note"])
    cv = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=CURVE_COLUMNS)
    dg = diagnostics.concat(diags)
    return (fc, cv, dg, results[-1]) if extra else (fc, cv, dg)
