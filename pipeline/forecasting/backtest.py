"""Backtests: fit a law on declared training rows, predict the held-out rows.

A split is declared before fitting: train rows and test rows are queries over the row
columns (:mod:`pipeline.query`: comparisons, and/or/not, in-lists, arithmetic; never code), or
a ``leave_out`` column whose values are held out one at a time (:func:`folds`, :func:`table_folds`).
Nothing about the test rows informs a fit or a choice; their ``value`` is read only to score
(:mod:`pipeline.forecasting.scoring`).  The stage (every split of params.yaml) and the CLI for any
table are :mod:`pipeline.stages.backtest`.
"""
from __future__ import annotations

import pandas as pd

from pipeline import query
from pipeline.errors import CapcastError, FitError
from pipeline.forecasting import caveats
from pipeline.laws import AUTO_OPTIONS

PRED_COLUMNS = ["split", "fold", "method", "task", "metric", "suite", "model", "family", "step", "params", "tokens",
                "compute_flops", "actual", "stderr", "predicted", "lower", "upper"]


# -- selecting rows -------------------------------------------------------------------
def select(table: pd.DataFrame, query_text: str, what: str) -> pd.DataFrame:
    """Rows matching a query (:mod:`pipeline.query`); one-line FitError when it is invalid or selects nothing."""
    return query.select(table, query_text, what, error=FitError)


def check_heldout(train: pd.DataFrame, test: pd.DataFrame, what: str, targets=(), allow_overlap: bool = False,
                  allow_cross_suite: bool = False, optin: tuple[str, str] = ("allow_overlap: true",
                                                                              "allow_cross_suite: true")) -> None:
    """Refuse a backtest whose test rows are not held out: a (model, step, task, metric) among both
    the training and the test rows (a law would be scored on rows it was fitted on), or test rows of
    a target from a suite none of that target's training rows come from (numbers of different
    harnesses and prompts do not compare).  ``optin``: how the user says either is meant."""
    if not allow_overlap:
        keys = ["model", "step", "task", "metric"]
        both = _keys(train, keys).merge(_keys(test, keys), on=keys)
        if len(both):
            r = both.iloc[0]
            step = "" if r["step"] == -1 else f" step {r['step']}"
            raise FitError(f"{what}: {len(both)} (model, step, task, metric) are among both the training and the test "
                           f"rows (e.g. {r['model']}{step} {r['task']}:{r['metric']}); a law would be scored on rows it "
                           f"was fitted on: make the two sides disjoint, or set {optin[0]} if that is meant")
    if allow_cross_suite or "suite" not in train or "suite" not in test:
        return
    for target in targets:
        task, _, metric = str(target).rpartition(":")
        mine = [t.loc[(t["task"] == task) & (t["metric"] == metric), "suite"].dropna().astype(str) for t in (train, test)]
        fitted, scored = set(mine[0]), set(mine[1])
        if fitted and scored - fitted:
            raise FitError(f"{what}: {target}: test rows from suite {', '.join(sorted(scored - fitted))}, training rows "
                           f"from {', '.join(sorted(fitted))} only; numbers of different suites (harnesses, prompts, "
                           f"shots) do not compare: narrow both sides to one suite, or set {optin[1]} if that is meant")


def _keys(rows: pd.DataFrame, keys: list) -> pd.DataFrame:
    out = rows.reindex(columns=keys).drop_duplicates()
    out["step"] = pd.array(out["step"], dtype="Int64").fillna(-1)
    for k in ("model", "task", "metric"):
        out[k] = out[k].astype(str)
    return out.drop_duplicates()


def folds(name: str, split: dict) -> list[tuple[str, object, object]]:
    """(fold, train rows, test rows) for a split: itself, or one fold per held-out value.

    The rows are query texts (a train/test split's own) or :class:`pipeline.query.Condition` objects
    built from the parsed parts (``rows``, ``leave_out`` and each value), never pasted into text.
    For a ``keep_smallest`` split these are the rows before the kept models are named (they
    depend on the table): :func:`table_folds` adds them.
    """
    if "leave_out" not in split:
        return [(name, split["train"], split["test"])]
    col = split["leave_out"]
    rows = query.condition(split["rows"]) if split.get("rows") else None
    out = []
    for value in split["values"]:
        train, test = query.compare(col, "!=", value), query.compare(col, "==", value)
        out.append((f"{name}/{value}", train if rows is None else rows & train, test if rows is None else rows & test))
    return out


def table_folds(name: str, split: dict, table: pd.DataFrame) -> list[tuple[str, object, object]]:
    """:func:`folds` with ``keep_smallest: K`` applied: the K smallest models (by parameters, then
    compute, then name) of each held-out group join the training rows and leave the test rows --
    a new family judged from one small model of it (Polo et al. 2024's protocol)."""
    keep = int(split.get("keep_smallest") or 0)
    if not keep or "leave_out" not in split:
        return folds(name, split)
    col = split["leave_out"]
    rows = query.condition(split["rows"]) if split.get("rows") else None
    out = []
    for (fold, _, test), value in zip(folds(name, split), split["values"]):
        small = smallest_models(select(table, test, f"{fold}: held-out group"), keep)
        train = query.compare(col, "!=", value) | query.one_of("model", small)
        out.append((fold, train if rows is None else rows & train, test & query.one_of("model", small, negate=True)))
    return out


def smallest_models(rows: pd.DataFrame, k: int) -> list[str]:
    """The ``k`` smallest models of ``rows`` by parameters, then compute, then name."""
    models = rows.drop_duplicates("model").sort_values(["params", "compute_flops", "model"], kind="mergesort")
    if models["model"].nunique() <= k:
        raise FitError(f"keep_smallest: {k} leaves no model of this group to predict ({models['model'].nunique()} "
                       f"models); lower keep_smallest or drop the value from values")
    return [str(m) for m in models["model"].iloc[:k]]


# -- running laws ----------------------------------------------------------------------
def law_options(cfg: dict, split: dict, method: str, target: str) -> dict:
    """Global, then split-level, then target-level options of one method."""
    opts = {k: cfg[k] for k in ("n_bootstrap", "level", "random_state") if k in cfg}
    opts.update((cfg.get("options") or {}).get(method) or {})
    opts.update((split.get("options") or {}).get(method) or {})
    opts.update(((split.get("target_options") or {}).get(target) or {}).get(method) or {})
    return opts


CALIBRATABLE_OPTIONS = set(AUTO_OPTIONS)  # options that leave a candidate as it is: those auto takes


def make_law(method: str, target: str, options: dict, train: pd.DataFrame, test: pd.DataFrame, policy=None,
             lineages: dict | None = None):
    """The law a backtest or forecast fits: ``auto`` with the policy; a method the policy has an
    interval for, as the policy's candidate, with that interval, where the training rows are one
    ladder (one lineage's runs; ``lineages``: params.yaml ``ladders.lineage``) and every unit
    predicted is of a training family (a forecast up that ladder); else the law with its own
    interval (pooled families, a new family)."""
    from pipeline import laws
    from pipeline.ladders.calibration import exclusions

    if method == "auto":
        if policy is None:
            raise FitError("auto: no ladder calibration table to learn from; write it with `python -m pipeline ladders`")
        return laws.make("auto", target=target, policy=policy,
                         **{k: v for k, v in options.items() if k in CALIBRATABLE_OPTIONS})
    families = set(train["family"].astype(str))
    if (policy is not None and method in policy.intervals and set(options) <= CALIBRATABLE_OPTIONS
            and len(exclusions(families, lineages)) == 1 and set(test["family"].astype(str)) <= families):
        return laws.calibrated(method, policy, target=target, **options)
    return laws.make(method, target=target, **options)


def run_law(method: str, target: str, options: dict, train: pd.DataFrame, test: pd.DataFrame,
            policy=None, lineages: dict | None = None) -> pd.DataFrame:
    law = make_law(method, target, options, train, test, policy, lineages).fit(train)
    pred = law.predict(test)
    pred["form"] = law.form_label()
    pred["inner_error"] = getattr(law, "inner_error_", float("nan"))
    pred["params_used"] = getattr(law, "params_used_", "")
    pred["note"] = caveats.wide_intervals(train, target, pred["lower"], pred["upper"])
    task, _, metric = target.rpartition(":")
    rows = test[(test["task"] == task) & (test["metric"] == metric)].drop_duplicates(["model", "step"])
    suite = pred[["model", "step"]].merge(rows[["model", "step", "suite"]], on=["model", "step"], how="left")
    pred.insert(0, "suite", suite["suite"].to_numpy())
    pred.insert(0, "metric", metric)
    pred.insert(0, "task", task)
    pred.insert(0, "method", method)
    return pred


def run_split(table: pd.DataFrame, name: str, split: dict, cfg: dict, log=print, source=None
              ) -> tuple[pd.DataFrame, list]:
    """All methods x targets x folds of one split: (predictions, errors)."""
    preds, errors = [], []
    for fold, train_q, test_q in table_folds(name, split, table):
        p, e = run_fold(table, name, split, cfg, fold, train_q, test_q, log, source)
        preds += p
        errors += e
    return (pd.concat(preds, ignore_index=True) if preds else pd.DataFrame(columns=PRED_COLUMNS)), errors


def run_fold(table: pd.DataFrame, name: str, split: dict, cfg: dict, fold: str, train_q: str, test_q: str,
             log=print, source=None) -> tuple[list, list]:
    """All methods x targets of one fold: (prediction frames, errors).  ``source``
    (:class:`pipeline.ladders.calibration.Source`): where auto and the calibrated intervals come
    from, learned without the ladder groups of the fold's families."""
    train, test = select(table, train_q, f"{fold}: train"), select(table, test_q, f"{fold}: test")
    policy = fold_policy(source, cfg, train, test)
    preds, errors = [], []
    for method in split["methods"]:
        for target in split["targets"]:
            try:
                p = run_law(method, target, law_options(cfg, split, method, target), train, test, policy,
                            source.lineages if source is not None else None)
            except CapcastError as exc:
                errors.append({"split": name, "fold": fold, "method": method, "target": target, "error": str(exc)})
                log(f"  {fold} {method} {target}: not fitted: {exc}")
                continue
            p.insert(0, "fold", fold)
            p.insert(0, "split", name)
            preds.append(p)
    return preds, errors


def fold_policy(source, cfg: dict, train: pd.DataFrame, test: pd.DataFrame):
    """The fold's policy: learned without the ladder groups of every family in its rows (None
    without a source)."""
    if source is None:
        return None
    return source.policy(float(cfg.get("level", 0.9)), fold_families(train, test))


def fold_families(train: pd.DataFrame, test: pd.DataFrame) -> set:
    return set(train["family"].astype(str)) | set(test["family"].astype(str))


def policies(source, cfg: dict, table: pd.DataFrame, jobs: list, processes: int = 1) -> None:
    """Learn, in ``processes`` workers, the policy of every fold of ``jobs`` ((split, (fold, train
    query, test query)) pairs) into the source's cache, so that forked fold workers find them."""
    from pipeline.parallel import fork_map

    if source is None:
        return
    from pipeline.ladders.calibration import exclusions

    level = float(cfg.get("level", 0.9))
    # one per set of ladder groups left out (the cache's key), not per set of families: two folds
    # whose families are of the same lineages share a policy
    by_groups = {}
    for _, f in jobs:
        families = fold_families(select(table, f[1], f[0]), select(table, f[2], f[0]))
        by_groups.setdefault(tuple(exclusions(families, source.lineages)), sorted(families))
    wanted = [by_groups[k] for k in sorted(by_groups)]
    learned = fork_map(lambda families: source.policy(level, families), wanted, processes)
    for families, policy in zip(wanted, learned):
        source.remember(level, families, policy)
