"""The scores table: one schema, defined here once and validated at every boundary.

One row is one number: a ``metric`` of ``model`` (at training ``step``) on ``task`` with
``num_fewshot`` shots, as reported by ``source``.  ``suite`` names the collection the
number came from (a published result set, or capcast's own evaluations); numbers are
only comparable within one suite, because harness versions, prompts and shots differ.

Readers, the evaluate stage, the collect stage and the CLIs all pass their frames through
:func:`validate`, which names the offending row and says what to do.
"""
from __future__ import annotations

import csv
import datetime
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import CapcastError

# Tables hold their text columns as Python objects, not Arrow arrays: the laws select, copy and
# group small frames tens of thousands of times per stage, and on Arrow storage each step pays
# pyarrow's per-call cost (take, casts, element iteration).  Same values, same output bytes; 16%
# less CPU for the backtest stage (benchmarks/repro_time.py).  Set here, where every stage's
# tables come from, so that `python -m pipeline` alone does not import pandas.
pd.set_option("mode.string_storage", "python")


class ScoresError(CapcastError):
    """Bad scores-table input; the message names the file/row and the fix."""


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # pandas dtype
    required: bool
    doc: str


COLUMNS: tuple[Column, ...] = (
    Column("suite", "string", False, "result collection (pythia_evals, obsscaling, capcast_eval, ...); default 'user'"),
    Column("model", "string", True, "model id, Hugging Face style (EleutherAI/pythia-1.4b)"),
    Column("family", "string", True, "model family (pythia, pythia-deduped, opt, cerebras-gpt, ...)"),
    Column("params", "float64", True, "parameter count N (total, as published or as counted on load)"),
    Column("params_non_embedding", "float64", False,
           "parameters without token/position embeddings (and an untied output head); empty if unknown"),
    Column("tokens", "float64", True, "training tokens D seen at this checkpoint"),
    Column("compute_flops", "float64", False, "training compute C in FLOPs (0 at initialisation); empty means 6*N*D"),
    Column("step", "Int64", False, "training step of the checkpoint; empty for a final/unknown checkpoint"),
    Column("task", "string", True, "benchmark task name (lm-eval style: arc_easy, lambada_openai, mmlu, ...)"),
    Column("metric", "string", True, "metric name: acc, acc_norm, exact_match, ... or a loss: nll, bpb, ppl, ..."),
    Column("value", "float64", True, "the number"),
    Column("stderr", "float64", False, "standard error of value; empty if unknown"),
    Column("num_fewshot", "Int64", False, "number of in-context examples; empty if unknown"),
    Column("chance", "float64", False,
           "random-guess level of an accuracy metric (mean 1/choices; 0 for free-form); empty: built-in table"),
    Column("source", "string", True, "citation: repository@commit:path (or a local file) the number came from"),
)
REQUIRED = tuple(c.name for c in COLUMNS if c.required)
ALL_COLUMNS = tuple(c.name for c in COLUMNS)
# A number is identified by these; two rows with the same key are a duplicate.
KEY = ("suite", "model", "step", "task", "metric", "num_fewshot")

ACCURACY_METRICS = {
    "acc", "acc_norm", "acc_bytes", "exact_match", "em", "mc1", "mc2", "pass@1", "prob_correct",
    "f1", "pct_stereotype",
}
LOSS_METRICS = {"nll", "nll_token", "nll_char", "bpb", "ppl", "xent", "loss", "byte_perplexity", "word_perplexity"}
# Perplexities are exp(loss) > 1 (lm-eval's "perplexity" included, although its kind stays "other").
PERPLEXITY_METRICS = {"ppl", "perplexity", "byte_perplexity", "word_perplexity"}

# Random-guess accuracy per task (multiple choice: 1 / number of choices).  Used as the
# sigmoid floor of the link laws and as the "near chance" line of emergence.  Tasks with
# free-form answers (exact match) have chance 0.
CHANCE: dict[str, float] = {
    "piqa": 0.5, "winogrande": 0.5, "wsc": 0.5, "xwinograd": 0.5, "boolq": 0.5, "copa": 0.5,
    "arc_easy": 0.25, "arc_challenge": 0.25, "sciq": 0.25, "logiqa": 0.25, "mmlu": 0.25,
    "hellaswag": 0.25, "openbookqa": 0.25, "parsinlu_qa": 0.25, "social_iqa": 1 / 3, "commonsense_qa": 0.2,
    # TruthfulQA MC: questions have 2-13 choices; 0.25 is the Open LLM Leaderboard's baseline.
    "truthfulqa": 0.25, "truthfulqa_mc1": 0.25, "truthfulqa_mc2": 0.25,
    # Inverse Scaling Prize classification tasks are all two-way.
    "isp_hindsight_neglect": 0.5, "isp_into_the_unknown": 0.5, "isp_memo_trap": 0.5,
    "isp_modus_tollens": 0.5, "isp_neqa": 0.5, "isp_pattern_matching_suppression": 0.5,
    "isp_redefine": 0.5, "isp_repetitive_algebra": 0.5, "isp_resisting_correction": 0.5,
    "isp_sig_figs": 0.5,
}
# lm-eval's inverse_scaling_* tasks (the prize's classification tasks) are two-way like isp_*.
CHANCE_PREFIXES = {"hendrycksTest-": 0.25, "mmlu_": 0.25, "arithmetic_": 0.0, "bbh_": 0.0, "isp_": 0.5,
                   "inverse_scaling_": 0.5}
ZERO_CHANCE_METRICS = {"exact_match", "em", "pass@1", "f1"}


def metric_kind(metric: str) -> str:
    """'accuracy' (higher is better, in [0, 1]), 'loss' (lower is better) or 'other'."""
    base = metric.split(",")[0]
    if base in ACCURACY_METRICS:
        return "accuracy"
    if base in LOSS_METRICS:
        return "loss"
    return "other"


def loss_metrics(rows: pd.DataFrame) -> list[str]:
    """The ``TASK:METRIC`` of every loss among ``rows``, sorted (what a ``--loss`` may name)."""
    return sorted({f"{t}:{m}" for t, m in zip(rows["task"].astype(str), rows["metric"].astype(str))
                   if metric_kind(m) == "loss"})


def chance(task: str, metric: str = "acc") -> float:
    """Random-guess level of an accuracy-like metric on ``task``; 0 for losses' purposes is meaningless.

    Unknown multiple-choice tasks raise: a silently wrong floor would bias every sigmoid fit.
    """
    if metric_kind(metric) != "accuracy":
        raise ScoresError(f"chance level is defined for accuracy metrics only, not {task}:{metric}")
    if metric in ZERO_CHANCE_METRICS or task.startswith("lambada"):
        return 0.0
    if task in CHANCE:
        return CHANCE[task]
    for prefix, level in CHANCE_PREFIXES.items():
        if task.startswith(prefix):
            return level
    raise ScoresError(
        f"no chance level known for task {task!r}; add it to CHANCE in pipeline/scores.py "
        "(1 / number of choices for multiple choice, 0 for free-form answers)"
    )


def chance_level(task: str, metric: str, rows: pd.DataFrame | None = None) -> float:
    """Random-guess level of ``task:metric``: the ``chance`` column of ``rows`` where it is
    filled for that task and metric (one value), else the built-in table (:func:`chance`).

    The column is how a user's own task gets its level (the evaluate stage and the lm-eval
    importer fill it from the number of choices of every document).
    """
    if rows is not None and "chance" in rows.columns and len(rows):
        sel = rows.loc[(rows["task"] == task) & (rows["metric"] == metric), "chance"]
        levels = pd.unique(sel.dropna().astype(float))
        if len(levels) > 1:
            shown = ", ".join(f"{v:g}" for v in sorted(levels)[:4])
            raise ScoresError(f"{task}:{metric} has different chance levels in its rows ({shown}); "
                              "give one level per task and metric")
        if len(levels) == 1:
            return float(levels[0])
    try:
        return chance(task, metric)
    except ScoresError as exc:
        if "no chance level known" not in str(exc):
            raise
        raise ScoresError(f"no chance level known for task {task!r}; fill the 'chance' column of its rows "
                          "or pass --chance TASK=LEVEL (1 / number of choices for multiple choice, "
                          "0 for free-form answers)") from None


def parse_chance(spec: str | list | None) -> dict[str, float]:
    """``--chance`` values ``TASK=LEVEL[,TASK=LEVEL...]`` (repeatable) -> {task: level}."""
    items = [spec] if isinstance(spec, str) else list(spec or [])
    out = {}
    for item in items:
        for part in str(item).split(","):
            if not part.strip():
                continue
            task, sep, level = part.partition("=")
            try:
                value = float(level)
            except ValueError:
                value = float("nan")
            if not sep or not task.strip() or not (0.0 <= value < 1.0):
                raise ScoresError(f"--chance {part.strip()!r} is not TASK=LEVEL with 0 <= LEVEL < 1 "
                                  "(e.g. --chance my_task=0.25)")
            out[task.strip()] = value
    return out


def with_chance(table: pd.DataFrame, levels: dict[str, float]) -> pd.DataFrame:
    """``table`` with the ``chance`` column filled with ``levels[task]`` on the accuracy rows of those
    tasks that leave it empty.  The column wins: a level that contradicts it is refused, not applied."""
    if not levels:
        return table
    unknown = sorted(set(levels) - set(table["task"].astype(str)))
    if unknown:
        raise ScoresError(f"--chance names task(s) {', '.join(unknown)} that the table does not hold")
    out = table.copy()
    if "chance" not in out.columns:
        out["chance"] = np.nan
    accuracy = out["metric"].astype(str).map(lambda m: metric_kind(m) == "accuracy").to_numpy(bool)
    for task, level in levels.items():
        mine = accuracy & (out["task"] == task).to_numpy(bool)
        given = pd.to_numeric(out.loc[mine, "chance"], errors="coerce")
        clash = sorted(set(given.dropna().round(6)) - {round(float(level), 6)})
        if clash:
            raise ScoresError(f"--chance {task}={level:g}: the table's chance column already gives {task} "
                              f"{', '.join(f'{c:g}' for c in clash)} (the column wins); drop {task} from --chance "
                              "or fix the column")
        out.loc[mine & out["chance"].isna().to_numpy(bool), "chance"] = level
    return out


def where(df: pd.DataFrame, i, origin: str) -> str:
    """'FILE: line N (model=..., step=..., task=..., metric=...)' for messages about row ``i``
    of a frame that :func:`validate` returned (its index is the row's position in the file)."""
    row = df.loc[i]
    who = ", ".join(f"{k}={row[k]}" for k in ("model", "step", "task", "metric") if k in df.columns)
    return f"{origin}: {_label(i, origin)} ({who})"


def _label(i, origin: str) -> str:
    # A CSV's rows are named by their line in the file (header = line 1), other frames by position.
    return f"line {i + 2}" if str(origin).endswith(".csv") else f"row {i}"


def validate(df: pd.DataFrame, origin: str = "scores table") -> pd.DataFrame:
    """Check and normalise a scores frame; return it with schema dtypes and column order.

    ``origin`` names the file or stage the frame came from, for error messages.  Raises
    :class:`ScoresError` on missing columns, unparseable or missing values, non-positive
    sizes, NaN values, values impossible for their metric (accuracies outside [0, 1], losses
    <= 0, perplexities <= 1, negative stderr) and duplicate keys.  Fills ``compute_flops``
    with 6*N*D where empty and ``suite`` with 'user' where absent.  Extra columns are kept;
    one read as text whose every cell is a number becomes numbers.
    """
    dup = [str(c) for c in df.columns[df.columns.duplicated()]]
    if dup:
        raise ScoresError(f"{origin}: column {dup[0]!r} appears twice in the header; keep one (which is meant is "
                          "not for capcast to guess)")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ScoresError(f"{origin}: {_header_problem(df.columns, missing)}; the scores table needs "
                          f"{list(REQUIRED)} (see README, 'The scores table')")
    if df.empty:
        raise ScoresError(f"{origin}: the table has no rows")
    out = df.copy()
    out.index = pd.RangeIndex(len(out))
    for col in COLUMNS:
        if col.name not in out.columns:
            out[col.name] = pd.NA
        out[col.name] = _coerce(out, col, origin)
        if col.name == "suite":  # after _coerce, which makes a blank cell empty
            out[col.name] = out[col.name].fillna("user")
    _check_sizes(out, origin)
    flops = out["compute_flops"].isna()
    out.loc[flops, "compute_flops"] = 6.0 * out.loc[flops, "params"] * out.loc[flops, "tokens"]
    for name in ("model", "family", "task", "metric", "source", "value", "params", "tokens", "compute_flops"):
        bad = out.index[out[name].isna()]
        if len(bad):
            raise ScoresError(f"{where(out, bad[0], origin)}: empty {name!r} ({len(bad)} such rows); fill it or drop the row")
    for name in ("params", "tokens", "compute_flops", "params_non_embedding"):
        bad = out.index[np.isinf(out[name].to_numpy(dtype=float))]
        if len(bad):
            raise ScoresError(f"{where(out, bad[0], origin)}: {name} must be a finite number, got {out.loc[bad[0], name]}")
    bad = out.index[~(out["params"] > 0)]
    if len(bad):
        raise ScoresError(f"{where(out, bad[0], origin)}: params must be > 0, got {out.loc[bad[0], 'params']}")
    # tokens = compute = 0 is a real point: a checkpoint at initialisation (Pythia step 0).
    for name in ("tokens", "compute_flops"):
        bad = out.index[out[name] < 0]
        if len(bad):
            raise ScoresError(f"{where(out, bad[0], origin)}: {name} must be >= 0, got {out.loc[bad[0], name]}")
    bad = out.index[~np.isfinite(out["value"].to_numpy(dtype=float))]
    if len(bad):
        raise ScoresError(f"{where(out, bad[0], origin)}: value is not a finite number")
    bad = out.index[out["stderr"].notna() & ~((out["stderr"] >= 0) & np.isfinite(out["stderr"]))]
    if len(bad):
        raise ScoresError(f"{where(out, bad[0], origin)}: stderr must be a finite number >= 0 (or empty), "
                          f"got {out.loc[bad[0], 'stderr']}")
    _check_values_by_kind(out, origin)
    _check_consistent(out, origin)
    bad = out.index[out["params_non_embedding"].notna() & ~(out["params_non_embedding"] > 0)]
    if len(bad):
        raise ScoresError(f"{where(out, bad[0], origin)}: params_non_embedding must be > 0 (or empty)")
    bad = out.index[out["chance"].notna() & ~((out["chance"] >= 0) & (out["chance"] < 1))]
    if len(bad):
        raise ScoresError(f"{where(out, bad[0], origin)}: chance must be in [0, 1) (or empty)")
    dup = out.duplicated(list(KEY), keep=False)
    if dup.any():
        first = out.index[dup][0]
        group = out.groupby(list(KEY), dropna=False, sort=False).ngroup()
        partner = out.index[(group == group[first]).to_numpy()][1]  # the row it duplicates, not any other
        raise ScoresError(
            f"{where(out, first, origin)}: duplicate row, same {list(KEY)} as {_label(partner, origin)}; "
            "each number must appear once per suite (drop one, or give them different suites)"
        )
    extra = [c for c in out.columns if c not in ALL_COLUMNS]
    for name in extra:
        out[name] = _numbers_stay_numbers(out[name])
    return out[list(ALL_COLUMNS) + extra]


def _numbers_stay_numbers(s: pd.Series) -> pd.Series:
    """An extra column read as text (every CSV cell is) becomes numbers when every non-empty cell
    is one, so a query such as ``rank > 0`` compares numbers, not strings."""
    if pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
        return s
    text = s.astype("string").str.strip()
    filled = text.notna() & (text != "")
    if not filled.any():
        return s
    num = pd.to_numeric(text.where(filled), errors="coerce")
    if num[filled].isna().any():
        return s  # some cell is text: the column is text
    return num.astype("float64")


# Sizes beyond any model (the largest have ~1e12 parameters, ~1e13 tokens, ~1e26 FLOPs): a typo or
# wrong units, refused before 6*N*D overflows.  Losses beyond MAX_LOSS nats (or bits) per token, byte
# or document, and perplexities beyond exp(69) ~ 1e30, are not measurements; neither is an accuracy's
# stderr above 0.5 (the standard deviation of values in [0, 1] is at most 0.5).
FLOAT_FORMAT = "%.6g"  # results tables (write_csv): stable to the last digit on every machine
MAX_SIZE = {"params": 1e15, "params_non_embedding": 1e15, "tokens": 1e17, "compute_flops": 1e32}
MAX_LOSS, MAX_PERPLEXITY, MAX_ACCURACY_STDERR = 1e4, 1e30, 0.5


def _header_problem(columns, missing: list) -> str:
    """Why the required columns are missing: a semicolon- or tab-separated file, names with spaces
    or in other case, or simply missing."""
    names = [str(c) for c in columns]
    for sep, what in ((";", "semicolon"), ("\t", "tab")):
        if len(names) == 1 and names[0].count(sep) >= 2:
            return (f"the header is one column {names[0][:60]!r}: the file looks {what}-separated; save it "
                    "comma-separated (CSV with ',')")
    near = {c: n for n in names for c in missing if n != c and n.strip().lower() == c}
    if near:
        c, n = next(iter(near.items()))
        why = "has spaces around it" if n.strip() != n else "is not in lower case"
        return f"column {n!r} {why}; name it {c!r} ({len(near)} such column(s))"
    return f"missing required column(s) {missing}"


def _check_sizes(out: pd.DataFrame, origin: str) -> None:
    for name, top in MAX_SIZE.items():
        bad = out.index[out[name].notna() & (out[name].abs() > top)]
        if len(bad):
            raise ScoresError(f"{where(out, bad[0], origin)}: {name} {out.loc[bad[0], name]:g} is beyond any model "
                              f"(at most {top:g}); check the value and its units")


def _check_consistent(out: pd.DataFrame, origin: str) -> None:
    """One parameter count per model (per suite), one token count per checkpoint, and a model's
    checkpoints (different steps) at different token counts."""
    for keys, name, what in ((["suite", "model"], "params", "model"), (["suite", "model"], "params_non_embedding", "model"),
                             (["suite", "model", "step"], "tokens", "checkpoint"), (["model", "tokens"], "step", None)):
        rows, other = _differ(out, keys, name)
        if rows is None:
            continue
        a, b = out.loc[rows, name], out.loc[other, name]
        if what is None:
            raise ScoresError(f"{where(out, rows, origin)}: tokens {out.loc[rows, 'tokens']:g} at step {a} and at step "
                              f"{b} ({_label(other, origin)}); tokens is what the checkpoint had seen, so it grows "
                              "with the step: give each checkpoint its own count")
        raise ScoresError(f"{where(out, rows, origin)}: {name} {a:g}, but {_label(other, origin)} gives {b:g} for the "
                          f"same {what}; give one")


def _differ(out: pd.DataFrame, keys: list, name: str):
    """(row, other row) of the first group of ``keys`` whose filled ``name`` differs, else (None, None)."""
    filled = out[out[name].notna()]
    if filled.empty:
        return None, None
    grouped = filled.groupby(keys, dropna=False, sort=False)
    many = grouped[name].transform("nunique").to_numpy() > 1
    if not many.any():
        return None, None
    gid = grouped.ngroup().to_numpy()
    first = filled.index[many][0]
    rows = filled.index[gid == gid[filled.index.get_loc(first)]]
    return first, next(i for i in rows if filled.loc[i, name] != filled.loc[first, name])


def _check_values_by_kind(out: pd.DataFrame, origin: str) -> None:
    """Accuracies in [0, 1] (percent tables are named as such), losses > 0, perplexities > 1."""
    value = out["value"].to_numpy(dtype=float)
    metric = out["metric"].astype(str)
    base = metric.str.split(",").str[0]
    kinds = {m: metric_kind(m) for m in pd.unique(metric)}
    kind = metric.map(kinds).to_numpy(dtype=object)
    ppl = base.isin(PERPLEXITY_METRICS).to_numpy()
    bad = np.flatnonzero((kind == "accuracy") & ~((value >= 0) & (value <= 1)))
    if len(bad):
        i = out.index[bad[0]]
        task, name = out.loc[i, "task"], out.loc[i, "metric"]
        same = value[((out["task"] == task) & (out["metric"] == name)).to_numpy(bool)]
        if same.min() >= 0 and same.max() <= 100 and (same > 1).mean() >= 0.5:
            fix = (f"{task}:{name} looks like percent ({int((same > 1).sum())} of {len(same)} values above 1); "
                   "divide by 100")
        else:
            fix = "accuracies are fractions of items correct; fix the value (or the metric name, if it is no accuracy)"
        raise ScoresError(f"{where(out, i, origin)}: accuracy {value[bad[0]]:g} is outside [0, 1]: {fix}")
    bad = np.flatnonzero(ppl & ~(value > 1))
    if len(bad):
        i = out.index[bad[0]]
        raise ScoresError(f"{where(out, i, origin)}: perplexity {value[bad[0]]:g} must be > 1 (it is exp of a "
                          "mean loss); if this is a log-perplexity or NLL, name the metric nll")
    bad = np.flatnonzero((kind == "loss") & ~ppl & ~(value > 0))
    if len(bad):
        i = out.index[bad[0]]
        raise ScoresError(f"{where(out, i, origin)}: loss {value[bad[0]]:g} must be > 0 (a negative "
                          "log-likelihood); if this is a log-likelihood, negate it")
    for mask, top, what in ((ppl, MAX_PERPLEXITY, "perplexity"), ((kind == "loss") & ~ppl, MAX_LOSS, "loss")):
        bad = np.flatnonzero(mask & (value > top))
        if len(bad):
            raise ScoresError(f"{where(out, out.index[bad[0]], origin)}: {what} {value[bad[0]]:g} is not a measurement "
                              f"(at most {top:g}); check the value and the metric's name")
    stderr = out["stderr"].to_numpy(dtype=float)
    bad = np.flatnonzero((kind == "accuracy") & (stderr > MAX_ACCURACY_STDERR))
    if len(bad):
        raise ScoresError(f"{where(out, out.index[bad[0]], origin)}: stderr {stderr[bad[0]]:g} of an accuracy is "
                          f"above {MAX_ACCURACY_STDERR} (values in [0, 1] vary by at most 0.5); is it in percent, "
                          "or a variance? give the standard error as a fraction")


def _coerce(df: pd.DataFrame, col: Column, origin: str) -> pd.Series:
    s = df[col.name]
    if col.dtype == "string":
        return s.astype("string").str.strip().replace("", pd.NA)
    _check_dtype(df, s, col, origin)
    num = pd.to_numeric(s, errors="coerce")
    bad = s.notna() & (s.astype("string").str.strip() != "") & num.isna()
    if bad.any():
        i = df.index[bad][0]
        raise ScoresError(f"{where(df, i, origin)}: column {col.name!r} holds {s[i]!r}, not a number")
    if col.dtype == "Int64":
        # whole, finite and exact in float64 (|x| < 2**53): steps and shot counts, not 1e30 or inf
        frac = num.notna() & ~((num == np.round(num)) & (num.abs() < 2.0 ** 53))
        if frac.any():
            i = df.index[frac][0]
            raise ScoresError(f"{where(df, i, origin)}: column {col.name!r} must be a whole number, got {s[i]!r}")
        return num.round().astype("Int64")
    return num.astype("float64")


def _check_dtype(df: pd.DataFrame, s: pd.Series, col: Column, origin: str) -> None:
    """A number column must hold numbers (or their text): not true/false values, timestamps or
    durations, which pandas would turn into 0/1 or nanoseconds."""
    kinds = {"true/false values": pd.api.types.is_bool_dtype, "timestamps": pd.api.types.is_datetime64_any_dtype,
             "durations": pd.api.types.is_timedelta64_dtype}
    what = next((k for k, test in kinds.items() if test(s.dtype)), None)
    i = df.index[0] if len(df) else None
    if what is None and s.dtype == object:
        odd = s.map(lambda v: isinstance(v, (bool, np.bool_, datetime.date, datetime.timedelta, np.datetime64)))
        if odd.any():
            i = df.index[odd.to_numpy(bool)][0]
            what = "true/false values" if isinstance(s[i], (bool, np.bool_)) else "timestamps or durations"
    if what is not None:
        raise ScoresError(f"{where(df, i, origin)}: column {col.name!r} holds {what} ({s.dtype}), not numbers; "
                          "store it as numbers")


def read(path: str | os.PathLike) -> pd.DataFrame:
    """Read a scores table from CSV or Parquet and validate it."""
    path = Path(path)
    if not path.exists():
        raise ScoresError(f"{path}: no such file")
    if path.is_dir():
        raise ScoresError(f"{path}: is a folder; give the scores table's file (.csv or .parquet)")
    if path.suffix != ".parquet":
        _check_text(path)
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except Exception as exc:  # pandas/pyarrow raise many types; name the file instead
        raise ScoresError(f"{path}: cannot be read as a {path.suffix or 'CSV'} table "
                          f"({' '.join(str(exc).split())[:200]})") from None
    return validate(df, origin=str(path))


def _check_text(path: Path) -> None:
    """A CSV must be UTF-8 text with one name per column: say which encoding to save it in, and on
    which line it is not UTF-8; name a column the header gives twice (pandas would rename one)."""
    data = path.read_bytes()
    boms = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16",
            b"\xfe\xff": "UTF-16"}
    found = next((name for bom, name in boms.items() if data.startswith(bom)), None)
    if found or (b"\x00" in data[:4096] and data[:4096].count(b"\x00") > len(data[:4096]) // 4):
        raise ScoresError(f"{path}: the file is {found or 'UTF-16 or UTF-32'} text; save it as UTF-8 (in a "
                          "spreadsheet: CSV UTF-8)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ScoresError(f"{path}: line {line} is not UTF-8 (byte 0x{data[exc.start]:02x}; Latin-1 or Windows-1252?); "
                          "save the file as UTF-8 (in a spreadsheet: CSV UTF-8)") from None
    header = next(csv.reader([text.partition("\n")[0].rstrip("\r")]), [])
    twice = [c for i, c in enumerate(header) if c in header[:i]]
    if twice:
        raise ScoresError(f"{path}: column {twice[0]!r} appears twice in the header; keep one (which is meant is "
                          "not for capcast to guess)")


def sort(df: pd.DataFrame) -> pd.DataFrame:
    """Canonical row order, so that the same rows give byte-identical files."""
    return df.sort_values(list(KEY), na_position="first", kind="mergesort").reset_index(drop=True)


def final_checkpoints(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (suite, model, task, metric, shots): the latest step (or the only, stepless, row)."""
    order = table.assign(_step=table["step"].fillna(np.iinfo(np.int64).max).astype("int64"))
    keys = ["suite", "model", "task", "metric", "num_fewshot"]
    idx = order.sort_values("_step", kind="mergesort").groupby(keys, dropna=False)["_step"].idxmax()
    return table.loc[np.sort(idx.to_numpy())]


def write(df: pd.DataFrame, path: str | os.PathLike, origin: str | None = None) -> None:
    """Validate, sort and write atomically (CSV, or Parquet by suffix)."""
    path = Path(path)
    df = sort(validate(df, origin or f"writing {path}"))
    if path.suffix == ".parquet":
        atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    else:
        atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, float_format="%.10g", lineterminator="\n"))


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """A results table (forecasts, backtests, trends, the report's own tables): CSV, floats at 6
    significant digits, ``\\n`` line ends, written atomically."""
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, float_format=FLOAT_FORMAT, lineterminator="\n"))


def atomic_write(path: str | os.PathLike, writer) -> None:
    """Call ``writer(tmp_path)`` then rename onto ``path``: readers never see half a file.

    The temp file is ``.<name>.<8 random characters>`` beside ``path``, locked (flock) while it
    is written, so that :func:`clean_stale_temps` can tell a live write from one left by a
    killed process."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        _lock(fd)
        writer(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        os.close(fd)


# mkstemp's names: prefix + 8 characters from [a-z0-9_]
_TEMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}$")
_STARTED = time.time()  # when this process imported the module: older temp files are not its own


def _lock(fd: int, blocking: bool = True) -> bool:
    try:
        import fcntl
    except ImportError:  # not POSIX: no locks, age alone decides
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        return True
    except OSError:
        return False


def clean_stale_temps(folder: str | os.PathLike, names=None, recursive: bool = False) -> list[Path]:
    """Delete the temp files an interrupted :func:`atomic_write` left in ``folder``.

    Only files named like its temp files (``.<name>.<8 characters>``, with ``name`` in
    ``names`` when given), older than this process and not locked by a live writer (a parallel
    shard) are removed.  Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    wanted = None if names is None else {str(n) for n in names}
    removed = []
    for path in sorted(folder.rglob(".*") if recursive else folder.glob(".*")):
        m = _TEMP.match(path.name)
        if not m or (wanted is not None and m["name"] not in wanted) or not path.is_file():
            continue
        try:
            if path.stat().st_mtime >= _STARTED:
                continue
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            if _lock(fd, blocking=False):
                path.unlink(missing_ok=True)
                removed.append(path)
        finally:
            os.close(fd)
    return removed


def binomial_stderr(p: float, n: int) -> float:
    """sqrt(p(1-p)/n): the noise floor of an accuracy measured on n items."""
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n > 0 else float("nan")
