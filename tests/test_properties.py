"""Property tests (hypothesis): random malformed scores tables and configs through validate, the
backtest CLI and the trends CLI end in exit 2 with a one-line message or a valid result; never a
traceback, never a NaN among the numbers written or printed.

Derandomized (the same examples every run, so CI cannot flake) and small: a few seconds each.
"""
from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipeline import config, scores
from pipeline.config import ConfigError
from pipeline.errors import CapcastError
from pipeline.forecasting import backtest
from pipeline.scores import ScoresError
from pipeline.stages import backtest as backtest_stage
from pipeline.stages import trends as trends_stage
from pipeline.trends import analysis
from tests.paths import ROOT
from tests.test_laws import ladder_rows
from tests.test_trends import table as trend_table

# CAPCAST_PROPERTY_EXAMPLES=500 explores further, with fresh random examples (a manual deep run).
DEEP = int(os.environ.get("CAPCAST_PROPERTY_EXAMPLES", "0"))
FAST = settings(max_examples=DEEP or 25, deadline=None, derandomize=not DEEP, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(FAST, max_examples=DEEP or 12)
NAN = re.compile(r"\bnan\b", re.IGNORECASE)

# -- what goes wrong in a hand-made table ----------------------------------------------------
JUNK = st.one_of(
    st.sampled_from(["", " ", "nan", "NaN", "inf", "-inf", "-1", "0", "1e400", "70.24", "1.7", "abc", "1,5",
                     "None", "0.5", "2", "1e9", "-0.0", "pythia", "arc_easy", "acc", "ppl", "nll", "x:y"]),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-10**20, 10**20),
    st.text(alphabet="abc019.,-:'\" eE%", max_size=6),
)
COLUMNS = list(scores.ALL_COLUMNS) + ["rank"]


@st.composite
def mutations(draw, n_rows: int, max_cells: int = 4):
    """(cells to overwrite, columns to drop, rows to duplicate, rows to remove)."""
    cells = draw(st.lists(st.tuples(st.integers(0, n_rows - 1), st.sampled_from(COLUMNS), JUNK),
                          max_size=max_cells))
    drop = draw(st.lists(st.sampled_from(list(scores.ALL_COLUMNS)), max_size=1))
    dup = draw(st.lists(st.integers(0, n_rows - 1), max_size=1))
    remove = draw(st.lists(st.integers(0, n_rows - 1), max_size=n_rows // 2))
    return cells, drop, dup, remove


def mutate(df: pd.DataFrame, how) -> pd.DataFrame:
    cells, drop, dup, remove = how
    out = df.astype(object).copy()
    for i, col, value in cells:
        if col not in out.columns:
            out[col] = pd.Series([None] * len(out), index=out.index, dtype=object)
        out.loc[out.index[i], col] = value
    out = out.drop(columns=[c for c in drop if c in out.columns])
    if dup:
        out = pd.concat([out, out.iloc[dup]], ignore_index=True)
    keep = np.ones(len(out), bool)
    keep[[i for i in remove if i < len(out)]] = False
    return out[keep].reset_index(drop=True)


def assert_one_line(err: str, where: str | None = None) -> None:
    assert err.count("\n") <= 1 and "Traceback" not in err, err
    if where:
        assert where in err, err


def run(main, argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def run_cli(main, argv) -> tuple[int, str]:
    """(exit status, stdout) of a CLI that must exit 0, or 2 with one 'error: ' line."""
    rc, out, err = run(main, argv)
    assert rc in (0, 2), err
    event(f"exit {rc}")
    if rc == 2:
        assert err.startswith("error: ")
        assert_one_line(err)
    return rc, out


# -- validate ---------------------------------------------------------------------------------------
def small_table() -> pd.DataFrame:
    base = dict(suite="s", family="f", tokens=2e10, compute_flops="", step="", num_fewshot=0, source="here",
                stderr=0.01, chance="", params_non_embedding="")
    rows = []
    for j, n in enumerate((1e8, 2e8, 4e8)):
        for task, metric, v in (("piqa", "acc", 0.6 + 0.05 * j), ("piqa", "ppl", 20.0 - j), ("piqa", "nll", 3.0 - j / 2)):
            rows.append({**base, "model": f"m{j}", "params": n, "task": task, "metric": metric, "value": v})
    return pd.DataFrame(rows)


def check_valid(out: pd.DataFrame) -> None:
    """What every table that validate lets through holds."""
    for col in ("model", "family", "task", "metric", "source", "suite"):
        assert out[col].notna().all()
    v = out["value"].to_numpy(float)
    assert np.isfinite(v).all() and (out["params"] > 0).all()
    assert (out["tokens"] >= 0).all() and (out["compute_flops"] >= 0).all()
    kind = out["metric"].map(scores.metric_kind)
    assert ((v >= 0) & (v <= 1))[kind == "accuracy"].all()
    ppl = out["metric"].str.split(",").str[0].isin(scores.PERPLEXITY_METRICS)
    assert (v[ppl] > 1).all() and (v[(kind == "loss") & ~ppl] > 0).all()
    se = out["stderr"].dropna().to_numpy(float)
    assert np.isfinite(se).all() and (se >= 0).all()
    assert not out.duplicated(list(scores.KEY)).any()


@FAST
@given(how=mutations(9))
def test_validate_names_the_row_or_returns_a_valid_table(how):
    df = mutate(small_table(), how)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        df.to_csv(path, index=False)
        for read in (lambda: scores.validate(df, origin="frame"), lambda: scores.read(path)):
            try:
                out = read()
            except ScoresError as exc:
                event("refused")
                assert_one_line(str(exc))
                assert str(exc).startswith(("frame", str(path)))
            else:
                check_valid(out)


# -- the backtest CLI ----------------------------------------------------------------------------------
QUERY_TOKENS = st.sampled_from(["params", "step", "tokens", "family", "rank", "parms", "<=", ">", "==", "!=",
                                "and", "or", "not", "in", "['toy']", "2e9", "1000", "'toy'", "(", ")", "@", ".",
                                "__import__", "x()", "[0]", "+", "*", "lambda", "1e400", "True"])
QUERIES = st.one_of(st.sampled_from(["params <= 2e9", "params < 1e9 and step >= 5000", "family == 'toy'",
                                     "not (params > 2e9)", "rank == 0 or params < 5e8"]),
                    st.lists(QUERY_TOKENS, min_size=1, max_size=6).map(" ".join))


def ladder() -> pd.DataFrame:
    rows = ladder_rows(noise=0.002)
    rows["rank"] = (rows["params"] > 2e9).astype(int)
    return rows


def check_backtest_output(out: str, csv: Path) -> None:
    assert not NAN.search(out) and "inf" not in out, out
    assert out.strip().splitlines()[-1].startswith("MAE "), out
    assert not nan_in_numbers(csv)
    pred = pd.read_csv(csv)
    has = pred["predicted"].notna()
    assert np.isfinite(pred.loc[has, ["predicted", "lower", "upper"]].to_numpy(float)).all()
    acc = has & pred["metric"].eq("acc")
    assert pred.loc[acc, ["predicted", "lower", "upper"]].stack().between(0, 1).all()


@SLOW
@given(how=mutations(len(ladder()), max_cells=3), method=st.sampled_from(["loglinear", "sigmoid", "two_step"]),
       train=QUERIES, boot=st.sampled_from(["0", "5"]))
def test_backtest_cli_exits_2_with_one_line_or_prints_numbers(how, method, train, boot):
    df = mutate(ladder(), how)
    with tempfile.TemporaryDirectory() as tmp:
        path, csv = Path(tmp) / "t.csv", Path(tmp) / "p.csv"
        df.to_csv(path, index=False)
        extra = ["--loss", "toyloss:ppl"] if method == "two_step" else []
        rc, out = run_cli(backtest_stage.main, ["--scores", str(path), "--method", method, "--target", "arc_easy:acc",
                                          f"--train={train}", "--test=params > 2e9", "--bootstrap", boot,
                                          "--out", str(csv), *extra])
        if rc == 0:
            check_backtest_output(out, csv)


# -- the trends CLI ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def quick_params(tmp_path_factory):
    """params.yaml with few bootstrap replicates: the same code, a fraction of the time."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["trends"]["bootstrap"] = 10
    params["trends"]["emergence"]["bootstrap"] = 10
    path = tmp_path_factory.mktemp("params") / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def nan_in_numbers(csv: Path) -> list[str]:
    """Columns of ``csv`` that hold numbers and also a NaN cell (text columns may say 'nan')."""
    raw = pd.read_csv(csv, dtype=str, keep_default_na=False)
    out = []
    for col in raw.columns:
        cells = raw[col][raw[col] != ""]
        nan = cells.str.fullmatch(r"[-+]?nan", case=False)
        if nan.any() and pd.to_numeric(cells[~nan], errors="coerce").notna().all() and (~nan).any():
            out.append(col)
    return out


def check_trends_output(folder: Path) -> None:
    for csv in folder.glob("o*.csv"):
        assert not nan_in_numbers(csv), (csv, nan_in_numbers(csv))
        df = pd.read_csv(csv)
        if "metric" not in df or df.empty:
            continue
        loss = df["metric"].map(lambda m: scores.metric_kind(str(m))).eq("loss")
        numbers = df.loc[loss, [c for c in df.columns if re.match(r"^(pred|lo|hi)(_|$)", c)]].to_numpy(float)
        assert (numbers[~np.isnan(numbers)] > 0).all(), csv  # a loss forecast is never <= 0
        for pred in [c for c in df.columns if re.match(r"^pred(_|$)", c)]:  # a forecast lies inside its interval
            tag = pred[len("pred"):]
            p, lo, hi = (df[f"{k}{tag}"].to_numpy(float) for k in ("pred", "lo", "hi"))
            ok = ~(np.isnan(p) | np.isnan(lo) | np.isnan(hi))
            assert ((lo[ok] <= p[ok]) & (p[ok] <= hi[ok])).all(), (csv, pred)


@SLOW
@given(how=mutations(len(trend_table()), max_cells=3),
       train=st.one_of(st.none(), QUERIES.map(lambda q: q.replace("toy", "fa").replace("2e9", "1e9"))))
def test_trends_cli_exits_2_with_one_line_or_writes_numbers(quick_params, how, train):
    df = mutate(trend_table(), how)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        df.to_csv(path, index=False)
        argv = ["--scores", str(path), "--out", str(Path(tmp) / "o.csv"), "--params", str(quick_params)]
        rc, out = run_cli(trends_stage.main, argv + ([f"--train={train}"] if train else []))
        if rc == 0:
            assert not NAN.search(out)
            check_trends_output(Path(tmp))


# -- configs -------------------------------------------------------------------------------------------------
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def leaves(node, path=()):
    """Every (path, value) in a nested params dict, lists included."""
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        yield path, node
        return
    yield path, node
    for k, v in items:
        yield from leaves(v, path + (k,))


PATHS = [p for p, _ in leaves(PARAMS) if p]
CONFIG_JUNK = st.one_of(JUNK, st.none(), st.booleans(), st.just([]), st.just({}), st.just({"x": 1}),
                        st.sampled_from(["two_stpe", "params <= 1e9", "@x", "arc_easy:acc", 0.9, 90, -5, 2.5]))


@st.composite
def config_edits(draw):
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        action = draw(st.sampled_from(["set", "set", "drop", "add"]))
        edits.append((path, action, draw(CONFIG_JUNK), draw(st.sampled_from(["bogus", "n_bootstrap", "test", "level"]))))
    return edits


def edit(params: dict, edits) -> dict:
    out = copy.deepcopy(params)
    for path, action, value, key in edits:
        node = out
        try:
            for k in path[:-1]:
                node = node[k]
            if action == "set":
                node[path[-1]] = value
            elif action == "drop" and isinstance(node, dict):
                node.pop(path[-1], None)
            elif action == "add" and isinstance(node.get(path[-1]) if isinstance(node, dict) else None, dict):
                node[path[-1]][key] = value
        except (KeyError, IndexError, TypeError):
            pass  # an earlier edit changed the shape here
    return out


def use(params: dict) -> None:
    """What the stages build from a config that passed the check (no fitting)."""
    from pipeline import laws, query
    from pipeline.forecasting import targets as forecast

    bt = params.get("backtest") or {}
    for name, split in (bt.get("splits") or {}).items():
        for _fold, train, test in backtest.folds(name, split):
            query.parse(train), query.parse(test)
            for method in split["methods"]:
                for target in split["targets"]:
                    laws.make(method, target=target, **backtest.law_options(bt, split, method, target))
    if params.get("forecast"):
        forecast.parse_targets(params["forecast"])


@FAST
@given(edits=config_edits())
def test_random_configs_stop_with_the_key_path_or_work(edits):
    params = edit(PARAMS, edits)
    try:
        config.check(params)
    except ConfigError as exc:
        msg = str(exc)
        assert_one_line(msg)
        assert msg.startswith("params.yaml: ")
        return
    try:
        use(params)
    except CapcastError as exc:  # a check the stage makes itself (forecast targets): still one line
        assert_one_line(str(exc))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "params.yaml"
        path.write_text(yaml.safe_dump(params))
        if "trends" in params:
            analysis.settings(trends_stage.load_config(path))


def test_a_config_property_example_is_checked_at_all():
    """Guard against a vacuous property: most random edits must be refused."""
    import random

    rng = random.Random(0)
    refused = 0
    for _ in range(50):
        path = rng.choice(PATHS)
        try:
            config.check(edit(PARAMS, [(path, "set", "two_stpe", "bogus")]))
        except ConfigError:
            refused += 1
    assert refused > 25
    assert math.isfinite(refused)
