"""The query language of --train/--test and the split queries (pipeline/query.py): same rows as
pandas on every query the pipeline ships, and no way to run code."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import query, scores
from pipeline.forecasting import backtest
from pipeline.query import QueryError
from pipeline.stages import trends as trends_stage
from pipeline.trends.curves import TrendsError
from tests.paths import ROOT


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    n = 60
    return pd.DataFrame({
        "suite": pd.array(rng.choice(["a", "b"], n), dtype="string"),
        "model": pd.array([f"m{i}" for i in range(n)], dtype="string"),
        "family": pd.array(rng.choice(["pythia", "opt", None], n), dtype="string"),
        "params": 10 ** rng.uniform(7, 11, n),
        "tokens": 10 ** rng.uniform(9, 12, n),
        "step": pd.array(rng.choice([0, 1000, 143000, None], n), dtype="Int64"),
        "num_fewshot": pd.array(rng.choice([0, 5, None], n), dtype="Int64"),
        "rank": rng.integers(0, 3, n).astype(float),
    })


def shipped_queries() -> list[str]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    out = []
    for name, split in params["backtest"]["splits"].items():
        for _, train, test in backtest.folds(name, split):
            out += [train, test]
    for split in params["trends"]["backtest"]:
        out += [split["universe"], split["train"]]
    return out


@pytest.mark.parametrize("text", [
    "params <= 1.5e9", "step < 143000", "family != 'opt'", "family in ['pythia', 'opt']",
    "family not in ['opt']", "1e8 < params < 1e10", "tokens / params >= 20 and not (step < 1000)",
    "index == index", "step != 1000", "num_fewshot == 0 or rank == 0", "rank > 0", "-params < -1e9",
    "params * 2 ** 3 > 1e10 % 7", "(suite == 'a') == True", "step // 1000 == 143",
])
def test_same_rows_as_pandas_where_no_cell_is_empty(table, text):
    full = table.dropna().reset_index(drop=True)
    expected = full.query(text, engine="python").index
    assert full.index[query.mask(full, text)].equals(expected)


@pytest.mark.parametrize("text", ["family != 'opt'", "not (family == 'opt')", "family not in ['opt']",
                                  "step != 1000", "not (step < 1000)", "rank == rank"])
def test_an_empty_cell_never_matches(table, text):
    with_gaps = table.assign(rank=table["rank"].where(table.index % 4 != 0))
    col = text.replace("not (", "").split()[0]
    picked = with_gaps.index[query.mask(with_gaps, text)]
    assert len(picked) and not with_gaps.loc[picked, col].isna().any()
    # and every row whose cell is filled is decided as in pandas
    filled = with_gaps[with_gaps[col].notna()]
    assert picked.equals(filled.query(text, engine="python").index)


def test_every_shipped_query_selects_what_pandas_selected():
    built = ROOT / "data" / "scores.parquet"  # a fresh clone before `dvc repro`: the committed table it is built from
    full = pd.read_parquet(built) if built.exists() else scores.read(ROOT / "data" / "published" / "scores.csv")
    for text in shipped_queries():  # a leave_out fold's rows are a Condition: its text is for messages only
        assert full.index[query.mask(full, text)].equals(full.query(str(text)).index), text


ESCAPES = [
    "params > 0 or @pd.io.common.os.system('touch /tmp/capcast_pwned') == 0",
    "@__import__('os').system('touch /tmp/capcast_pwned') == 0",
    "__import__('os').system('touch /tmp/capcast_pwned') == 0",
    "__builtins__ == 1",
    "params.__class__.__mro__ == 1",
    "model.str.len() > 0",
    "().__class__.__base__.__subclasses__() == 1",
    "(lambda: __import__('os'))() == 1",
    "f'{params}' == 'x'",
    "model[0] == 'a'",
    "[c for c in model] == 1",
    "params if True else params",
    "(x := 1) == 1",
    "params @ params > 0",
    "{'a': 1} == 1",
    "open('/etc/passwd') == 1",
    "b'x' == 1",
    "model == None",
]


@pytest.mark.parametrize("text", ESCAPES)
def test_escape_routes_are_refused_before_anything_runs(table, text, tmp_path, monkeypatch):
    import os

    monkeypatch.setattr(os, "system", lambda *a: pytest.fail(f"os.system ran for {text!r}"))
    with pytest.raises(QueryError) as err:
        query.mask(table, text)
    msg = str(err.value)
    assert "\n" not in msg
    assert "allowed" in msg or "not allowed" in msg
    assert not os.path.exists("/tmp/capcast_pwned")


def test_the_query_string_never_reaches_pandas_eval(table, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("DataFrame.query/eval was called")

    monkeypatch.setattr(pd.DataFrame, "query", boom)
    monkeypatch.setattr(pd.DataFrame, "eval", boom)
    monkeypatch.setattr(pd, "eval", boom)
    assert query.mask(table, "params > 1e9 and family == 'opt'").any()
    assert len(backtest.select(table, "params > 1e9", "--train")) > 0
    assert len(trends_stage.select(table, "params > 1e9", "--train")) > 0


@pytest.mark.parametrize("text, message", [
    ("parms > 1", "unknown column 'parms'; did you mean 'params'?"),
    ("family > 3", "column 'family' holds text but 3 is a number; compare like with like"),
    ("params == 'big'", "column 'params' holds numbers but 'big' is text"),
    ("params", "'params' gives numbers, not a condition"),
    ("family in 'opt'", "'in' needs a list"),
    ("params in [1, 'a']", "a list mixes numbers and text"),
    ("family in [1, 2]", "column 'family' holds text but the list holds numbers"),
    ("params > 1 & step < 3", "'&' (write 'and') not allowed"),
    ("~(params > 1)", "'~' (write 'not') not allowed"),
    ("model + 'x' == 'a'", "arithmetic needs numbers, but column 'model' holds text"),
    ("params <=> 3", "not a valid query (invalid syntax)"),
    ("", "empty query"),
    ("10 ** 10 ** 10 ** 10 > params and " + "(" * 300 + "1" + ")" * 300 + " > 0", ""),
])
def test_errors_say_what_is_wrong(table, text, message):
    try:
        query.mask(table, text)
    except QueryError as exc:
        assert message in str(exc) and "\n" not in str(exc)
    else:
        assert message == ""  # a deep but harmless expression may evaluate (inf), never hang


def test_text_column_of_numbers_is_an_error_not_an_empty_selection(table):
    as_text = table.assign(rank=table["rank"].astype(int).astype(str))
    with pytest.raises(QueryError, match="column 'rank' holds text but 0 is a number"):
        query.mask(as_text, "params > 0 or rank == 0")


def test_select_messages_name_the_flag_and_say_when_nothing_matches(table):
    from pipeline.errors import FitError

    with pytest.raises(FitError, match=r"--train query 'params < 0' selects no rows \(the table has 60 rows, "
                                       r"suites a, b\); loosen it"):
        backtest.select(table, "params < 0", "--train")
    with pytest.raises(TrendsError, match="--test query 'parms > 0': unknown column 'parms'"):
        trends_stage.select(table, "parms > 0", "--test")
