"""The guarantees (README, "Guarantees"), one block per kind of bad input: training rows scored as
held-out, queries composed as text, names that become paths, user files overwritten or deleted,
inputs the schema let through, errors that did not say what is wrong, and tracebacks.  Each ends
in a one-line error naming the file, row or key (exit 2) or in a correct result; the spaces of
inputs (names, dtypes, encodings, separators, column names, query texts) are hypothesis
properties: no traceback, no silent acceptance."""
from __future__ import annotations

import errno
import io
import json
import string
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline import cli, config, files, params, query, scores
from pipeline.__main__ import main as pipeline_main
from pipeline.config import ConfigError
from pipeline.errors import CapcastError
from pipeline.forecasting import backtest
from pipeline.query import QueryError
from pipeline.scores import ScoresError
from pipeline.stages import backtest as backtest_stage
from tests.paths import ROOT
from tests.test_bad_input import one_line_error
from tests.test_laws import ladder_rows

FAST = settings(max_examples=20, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def rows() -> pd.DataFrame:
    return ladder_rows(noise=0.002)


def csv(tmp_path, frame=None, name="t.csv") -> Path:
    path = tmp_path / name
    (rows() if frame is None else frame).to_csv(path, index=False)
    return path


def valid(frame=None, **cells) -> pd.DataFrame:
    """A one-row scores frame (accuracy), with ``cells`` changed."""
    row = dict(model="m", family="f", params=1e8, tokens=2e10, task="arc_easy", metric="acc", value=0.5,
               source="s", step=1000)
    row.update(cells)
    return pd.DataFrame([row]) if frame is None else frame


BT = ["--method", "loglinear", "--target", "arc_easy:acc", "--bootstrap", "5"]


# -- 1. training rows scored as held-out ------------------------------------------------------------
def test_the_backtest_cli_refuses_test_rows_that_are_training_rows(tmp_path, capsys):
    path = csv(tmp_path)
    rc = backtest_stage.main(["--scores", str(path), *BT, "--train", "params > 0", "--test", "params > 2e9"])
    err = one_line_error(capsys, rc, "--train/--test: ", "(model, step, task, metric) are among both the training "
                         "and the test rows (e.g. toy-", "a law would be scored on rows it was fitted on",
                         "--allow-overlap")
    n = rows().query("params > 2e9")[["model", "step", "task", "metric"]].drop_duplicates().shape[0]
    assert f": {n} (model, step, task, metric)" in err
    rc = backtest_stage.main(["--scores", str(path), *BT, "--train", "params > 0", "--test", "params > 2e9",
                              "--allow-overlap"])
    assert rc == 0 and "MAE" in capsys.readouterr().out


def test_a_params_split_whose_sides_overlap_is_refused_before_any_fit(tmp_path, monkeypatch):
    path = tmp_path / "t.parquet"
    rows().to_parquet(path)
    monkeypatch.setattr(backtest, "run_fold", lambda *a, **k: pytest.fail("a law was fitted"))
    split = {"train": "params > 0", "test": "params > 2e9", "targets": ["arc_easy:acc"], "methods": ["loglinear"]}
    with pytest.raises(CapcastError, match=r"^params.yaml: backtest.splits.same: \d+ \(model, step, task, metric\) "
                                           r"are among both .* set allow_overlap: true if that is meant$"):
        backtest_stage.run_stage({"splits": {"same": split}}, str(path), str(tmp_path / "out"))
    config.check({"backtest": {"splits": {"same": {**split, "allow_overlap": True}}}})  # the explicit way
    with pytest.raises(ConfigError, match="allow_overlap: must be true or false"):
        config.check({"backtest": {"splits": {"same": {**split, "allow_overlap": "yes"}}}})


def test_train_and_test_from_different_suites_are_refused_unless_explicit(tmp_path, capsys):
    table = rows()
    table.loc[table["params"] > 2e9, "suite"] = "other_harness"
    path = csv(tmp_path, table)
    argv = ["--scores", str(path), *BT, "--train", "params <= 2e9", "--test", "params > 2e9"]
    one_line_error(capsys, backtest_stage.main(argv), "arc_easy:acc: test rows from suite other_harness, training "
                   "rows from toy only", "--allow-cross-suite")
    assert backtest_stage.main(argv + ["--allow-cross-suite"]) == 0


def test_every_shipped_split_holds_its_test_rows_out():
    table = scores.read(ROOT / "data" / "published" / "scores.csv")
    splits = params.load("backtest", ROOT / "params.yaml")["splits"]
    jobs = [(n, f) for n in splits for f in backtest.table_folds(n, splits[n], table)]
    backtest_stage.check_splits(table, splits, jobs)  # raises on any overlap or suite mix


# -- 2. queries are combined as parsed expressions, never as text --------------------------------------
def test_rows_cannot_reach_outside_its_own_parentheses(tmp_path, capsys):
    rc = backtest_stage.main(["--scores", str(csv(tmp_path)), *BT, "--leave-out", "model=toy-4e+09",
                              "--rows", "index == index) or (index == index"])
    one_line_error(capsys, rc, "not a valid query")


@pytest.mark.parametrize("leave_out, message", [
    ("famly=toy", "--leave-out 'famly=toy': unknown column 'famly'; did you mean 'family'? columns: suite, model, family"),
    ("params=big", "column 'params' holds numbers, and 'big' is not one"),
    ("family=nosuch", "no row has family 'nosuch' (values: toy)"),
    ("family", "is not COLUMN=VALUE"),
])
def test_leave_out_column_and_value_are_checked_like_a_query(tmp_path, capsys, leave_out, message):
    rc = backtest_stage.main(["--scores", str(csv(tmp_path)), *BT, "--leave-out", leave_out])
    one_line_error(capsys, rc, message)


def test_a_leave_out_fold_selects_exactly_its_parts():
    table = scores.validate(rows())
    split = {"leave_out": "model", "values": ["toy-4e+09"], "rows": "step > 5000 or params < 1e8"}
    (_, train, test), = backtest.folds("s", split)
    base = query.mask(table, split["rows"])
    assert (query.mask(table, train) == (base & (table["model"] != "toy-4e+09").to_numpy())).all()
    assert (query.mask(table, test) == (base & (table["model"] == "toy-4e+09").to_numpy())).all()
    assert str(train) == "(step > 5000 or params < 1e8) and model != 'toy-4e+09'"


QUERY_TEXT = st.text(alphabet="()'\" =<>!andortixsepm0123456789._-", max_size=30)


@FAST
@given(rows_text=QUERY_TEXT, value=st.sampled_from(["toy-4e+09", "a') or ('b", "x\" or \"y", "1 == 1"]))
def test_any_rows_text_is_one_query_or_an_error(rows_text, value):
    """Whatever --rows and the held-out value hold, the fold's rows are (rows) and (model != value):
    a text part can never change how another part is read."""
    table = scores.validate(rows())
    try:
        base = query.mask(table, rows_text)
    except QueryError as exc:
        assert "\n" not in str(exc)
        return
    (_, train, test), = backtest.folds("s", {"leave_out": "model", "values": [value], "rows": rows_text})
    held = (table["model"] == value).to_numpy()
    assert (query.mask(table, train) == (base & ~held)).all()
    assert (query.mask(table, test) == (base & held)).all()


def test_a_column_named_like_a_keyword_gets_a_clear_message():
    table = scores.validate(rows().assign(**{"class": "a"}))
    with pytest.raises(QueryError, match="'class' is a Python keyword, so a query cannot name a column 'class'; "
                                         "rename the column"):
        query.mask(table, "class == 'a'")
    # a leave-out fold reads it by name: no text, no keyword problem
    (_, _, test), = backtest.folds("s", {"leave_out": "class", "values": ["a"]})
    assert query.mask(table, test).all()


# -- 3. names become paths -------------------------------------------------------------------------------
SPLIT = {"train": "params < 2e9", "test": "params > 2e9", "targets": ["arc_easy:acc"], "methods": ["loglinear"]}


@pytest.mark.parametrize("name, message", [
    ("../../x", "split name '../../x' is not a plain name"), ("/abs/path", "not a plain name"),
    (".hidden", "not a plain name"), ("a b", "not a plain name"), ("", "not a plain name"),
])
def test_split_names_that_are_not_plain_are_refused_by_the_schema(name, message):
    with pytest.raises(ConfigError, match=f"^params.yaml: backtest.splits: .*{message}"):
        config.check({"backtest": {"splits": {name: SPLIT}}})


def test_split_names_that_differ_only_in_case_are_refused():
    with pytest.raises(ConfigError, match="'Size' differs from 'size' only in case"):
        config.check({"backtest": {"splits": {"size": SPLIT, "Size": SPLIT}}})


def test_the_stage_refuses_a_path_name_and_the_metrics_summary_name(tmp_path, monkeypatch):
    path = tmp_path / "t.parquet"
    rows().to_parquet(path)
    monkeypatch.setattr(backtest, "run_fold", lambda *a, **k: pytest.fail("a law was fitted"))
    for name, message in (("../escape", "not a plain name"), ("two_step_splits", "the metrics' own summary")):
        with pytest.raises(CapcastError, match=message):
            backtest_stage.run_stage({"splits": {name: SPLIT}}, str(path), str(tmp_path / "out"))
    assert not (tmp_path / "escape").exists()
    with pytest.raises(files.FilesError, match="not a plain name"):
        backtest_stage.write_metrics({"../../x": {"loglinear": {"n": 1}}}, tmp_path / "metrics")
    assert not (tmp_path.parent / "x").exists()


@FAST
@given(name=st.text(alphabet=string.ascii_letters + string.digits + "./_-+ \\~$", max_size=12))
def test_a_name_is_plain_or_refused_and_plain_names_stay_in_their_folder(name):
    try:
        config.check({"backtest": {"splits": {name: SPLIT}}})
    except ConfigError as exc:
        assert not files.is_plain(name) and "\n" not in str(exc)
        return
    assert files.is_plain(name)
    folder = Path("/base/reports/metrics")
    path = (folder / name / "loglinear.json").resolve()
    assert path.parent.parent == folder and not path.parent.name.startswith(".")


def test_evaluate_refuses_two_checkpoints_sharing_a_record_file():
    from pipeline.sources import evaluation as ev

    entries = [{"model": "a/b", "family": "f", "tokens": 1}, {"model": "a__b", "family": "f", "tokens": 1}]
    with pytest.raises(CapcastError, match="a/b and a__b would share the record file a__b@main.json"):
        ev.checkpoints_from_entries(entries)


def test_two_report_figures_with_one_file_name_are_refused(tmp_path):
    from pipeline.report.page import Page

    page = Page()
    page.figure(tmp_path / "plots/target-a-b.png", print, (), "A b", "")
    with pytest.raises(CapcastError, match="two figures of the report would be one file, plots/target-a-b.png"):
        page.figure(tmp_path / "plots/target-a-b.png", print, (), "a/B", "")


# -- 4. user files overwritten or deleted -----------------------------------------------------------------
FAMILY = ["--family", "toy", "--params", "7e9", "--tokens", "1e11", "--bootstrap", "5", "--method", "loglinear",
          "--tasks", "arc_easy"]


@pytest.mark.parametrize("argv", [
    lambda p, d: ["forecast", "--scores", p, *FAMILY, "--out", p],
    lambda p, d: ["report", "--scores", str(d / "forecast.csv"), *FAMILY, "--out", str(d)],
    lambda p, d: ["backtest", "--scores", p, *BT, "--train", "params < 2e9", "--test", "params > 2e9", "--out", p],
    lambda p, d: ["trends", "--scores", str(d / "t_emergence.csv"), "--out", str(d / "t.csv")],
    lambda p, d: ["ingest", "lm-eval", p, "--out", p],
])
def test_no_command_writes_over_its_input(tmp_path, capsys, argv):
    path = csv(tmp_path)
    for name in ("forecast.csv", "t_emergence.csv"):
        csv(tmp_path, name=name)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    rc = pipeline_main(argv(str(path), tmp_path))
    one_line_error(capsys, rc, "is also the input", "give another output path")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_two_outputs_on_one_file_are_refused(tmp_path, capsys):
    out = tmp_path / "o.csv"
    rc = pipeline_main(["trends", "--scores", str(csv(tmp_path)), "--out", str(out), "--emergence-out", str(out)])
    one_line_error(capsys, rc, f"--emergence-out {out} is also --out: two outputs would write the same file")


def test_an_output_file_named_like_a_folder_is_refused_not_written_as_a_file(tmp_path, capsys):
    out = str(tmp_path / "results") + "/"
    rc = pipeline_main(["trends", "--scores", str(csv(tmp_path)), "--out", out])
    one_line_error(capsys, rc, f"--out {out}: names a folder; give a file name")
    assert not (tmp_path / "results").exists()


def test_the_metrics_clean_up_deletes_only_what_the_stage_wrote(tmp_path):
    metrics = tmp_path / "metrics"
    for rel, text in (("old_split/loglinear.json", '{"coverage": 0.5, "mae": 1.0, "n": 3}'),  # a stale metrics file
                      ("old_split/notes.json", '{"mine": 1}'),  # another tool's JSON
                      ("NOTES.md", "my notes"), ("size/sigmoid.json", '{"answer": 42}')):
        (metrics / rel).parent.mkdir(parents=True, exist_ok=True)
        (metrics / rel).write_text(text)
    backtest_stage.write_metrics({"size": {"loglinear": {"n": 2, "mae": 1.0, "coverage": 1.0}}}, metrics)
    # no manifest yet: only a metrics JSON of a known method (old_split/loglinear.json) was the stage's
    left = sorted(p.relative_to(metrics).as_posix() for p in metrics.rglob("*") if p.is_file())
    assert left == [".written", "NOTES.md", "old_split/notes.json", "size/loglinear.json", "size/sigmoid.json"]
    assert (metrics / ".written").read_text() == "size/loglinear.json\n"
    # with a manifest: what the last run wrote and this one did not goes, nothing else
    backtest_stage.write_metrics({"other": {"sigmoid": {"n": 1, "mae": 2.0, "coverage": 0.0}}}, metrics)
    left = sorted(p.relative_to(metrics).as_posix() for p in metrics.rglob("*") if p.is_file())
    assert left == [".written", "NOTES.md", "old_split/notes.json", "other/sigmoid.json", "size/sigmoid.json"]


def test_a_manifest_entry_outside_the_folder_is_never_deleted(tmp_path):
    outside = tmp_path / "precious.json"
    outside.write_text("{}")
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / ".written").write_text("../precious.json\n/etc/hostname\n")
    files.sweep(metrics, [])
    assert outside.exists() and Path("/etc/hostname").exists()


# -- 5. inputs the schema used to let through -------------------------------------------------------------
def test_a_column_given_twice_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    text = rows().to_csv(index=False).splitlines()
    path.write_text("\n".join([text[0] + ",value"] + [line + ",0.1" for line in text[1:]]) + "\n")
    with pytest.raises(ScoresError, match=f"^{path}: column 'value' appears twice in the header; keep one"):
        scores.read(path)
    frame = valid()
    with pytest.raises(ScoresError, match="column 'value' appears twice"):
        scores.validate(pd.concat([frame, frame[["value"]]], axis=1))


@pytest.mark.parametrize("column, values, what", [
    ("params", [True], "true/false values"), ("value", [True], "true/false values"),
    ("tokens", [pd.Timestamp("2024-01-01")], "timestamps"), ("step", [pd.Timedelta("1s")], "durations"),
    ("params", pd.array([True], dtype="boolean"), "true/false values"),
])
def test_booleans_and_timestamps_in_number_columns_are_refused(tmp_path, column, values, what):
    frame = valid()
    frame[column] = values
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    with pytest.raises(ScoresError, match=f"column '{column}' holds {what}"):
        scores.read(path)


DTYPES = st.sampled_from(["float64", "int64", "Int64", "bool", "datetime64[ns]", "timedelta64[ns]", "object-bool",
                          "string", "object"])


BAD_DTYPES = ("bool", "datetime64[ns]", "timedelta64[ns]", "object-bool")


def _as(series: pd.Series, dtype: str) -> pd.Series:
    if dtype == "object-bool":
        return pd.Series([bool(v) for v in series], dtype=object)
    if dtype in ("string", "object"):
        return series.map(repr).astype(dtype)
    if dtype.startswith(("datetime", "timedelta")):
        return pd.to_datetime(series, unit="s") if dtype.startswith("datetime") else pd.to_timedelta(series, unit="s")
    if dtype == "bool":
        return series.astype(bool)
    return series.astype(dtype)


@FAST
@given(column=st.sampled_from(["params", "tokens", "value", "step", "num_fewshot", "stderr"]), dtype=DTYPES)
def test_a_number_column_of_any_dtype_keeps_its_numbers_or_is_refused(column, dtype):
    frame = rows()
    frame["stderr"] = 0.01
    frame["num_fewshot"] = 0
    frame = frame[frame["metric"] == "acc"].reset_index(drop=True)
    try:
        converted = _as(frame[column], dtype)
    except (TypeError, ValueError):  # e.g. 0.5 as Int64: not a table anyone has
        return
    # numbers as numbers (or as their text) keep their values; anything else is refused
    want = frame[column].astype(float) if dtype in ("string", "object") or dtype in BAD_DTYPES else \
        converted.astype(float)
    frame[column] = converted
    try:
        got = scores.validate(frame)
    except ScoresError as exc:
        assert "\n" not in str(exc)
        assert dtype in BAD_DTYPES or column == "stderr" or column == "value", (dtype, column, str(exc))
        return
    assert dtype not in BAD_DTYPES
    assert np.allclose(got[column].astype(float).to_numpy(), want.to_numpy())


@pytest.mark.parametrize("change, message", [
    (lambda f: f.__setitem__("params", f["params"].where(f.index != 3, f["params"] * 1.5)),
     "line 2 (model=toy-3e+07, step=2000, task=toyloss, metric=ppl): params 3e+07, but line 5 gives 4.5e+07 for the "
     "same model; give one"),
    (lambda f: f.__setitem__("tokens", f["tokens"].where(f["model"] != "toy-3e+07", 1e10)),
     "tokens 1e+10 at step 2000 and at step 5000"),
    (lambda f: f.__setitem__("stderr", np.where(f["metric"] == "acc", 5.0, np.nan)),
     "stderr 5 of an accuracy is above 0.5"),
    (lambda f: f.__setitem__("value", np.where(f["metric"] == "ppl", 1e308, f["value"])),
     "perplexity 1e+308 is not a measurement (at most 1e+30)"),
    (lambda f: f.__setitem__("params", 1e308), "params 1e+308 is beyond any model (at most 1e+15)"),
])
def test_values_the_schema_used_to_let_through(change, message):
    frame = rows()
    change(frame)
    with pytest.raises(ScoresError, match=message.replace("+", r"\+").replace("(", r"\(").replace(")", r"\)")):
        scores.validate(frame, origin="t.csv")


def test_a_loss_of_1e308_and_an_accuracy_stderr_of_half_are_told_apart():
    frame = valid(None, metric="nll", value=1e308)
    with pytest.raises(ScoresError, match=r"loss 1e\+308 is not a measurement \(at most 10000\)"):
        scores.validate(frame)
    assert scores.validate(valid(None, stderr=0.5))["stderr"].iloc[0] == 0.5


def test_duplicate_keys_in_params_yaml_are_refused_with_the_line(tmp_path):
    path = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text()
    at = text.index("    pythia_early:")
    path.write_text(text[:at] + "    pythia_size:\n      description: a copy\n" + text[at:])
    first = text[:text.index("    pythia_size:")].count("\n") + 1
    again = text[:at].count("\n") + 1
    with pytest.raises(CapcastError, match=f"^{path}: line {again}: key 'pythia_size' is given twice in the same "
                                           f"mapping \\(first at line {first}\\)"):
        params.read(path)
    assert params.load_yaml("a: &x {b: 1}\nc:\n  <<: *x\n  b: 2\n") == {"a": {"b": 1}, "c": {"b": 2}}


def _fake(tmp_path, edit):
    from tests.test_lm_eval_import import fake_run

    path, _ = fake_run(tmp_path / "runs")
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    return path


def test_lm_eval_nan_accuracy_is_refused_not_dropped(tmp_path, capsys):
    def nan(doc):
        res = doc["results"]["my_mc"]
        res["acc_norm,none"], res["acc,none"] = res["acc,none"], float("nan")
    path = _fake(tmp_path, nan)
    rc = pipeline_main(["ingest", "lm-eval", str(tmp_path / "runs"), "--family", "mine", "--tokens", "2e10",
                        "--out", str(tmp_path / "o.csv")])
    one_line_error(capsys, rc, f"{path}: my_mc acc is nan in the results, not a number")
    assert not (tmp_path / "o.csv").exists()


def test_lm_eval_one_token_count_for_several_steps_is_refused(tmp_path):
    from pipeline.sources import lm_eval as lm
    from tests.test_lm_eval_import import fake_run

    fake_run(tmp_path / "runs", revision="step3000")
    fake_run(tmp_path / "runs", revision="step6000", stamp="2026-01-02T00-00-00.000001")
    with pytest.raises(lm.LmEvalError, match="--tokens gives every checkpoint 2e\\+10 tokens, but my-org/my-1b has "
                                             "checkpoints at several steps.*--tokens-per-step"):
        lm.import_runs([tmp_path / "runs"], lm.Facts(family="mine", tokens=2e10))
    table = lm.import_runs([tmp_path / "runs"], lm.Facts(family="mine", tokens_per_step=1e6))
    assert sorted(set(zip(table["step"], table["tokens"]))) == [(3000, 3e9), (6000, 6e9)]


@pytest.mark.parametrize("shots, expected", [("5", 5), (5, 5), ("five", None), (1.5, None)])
def test_lm_eval_n_shot_as_text(tmp_path, shots, expected):
    from pipeline.sources import lm_eval as lm

    _fake(tmp_path, lambda doc: doc["n-shot"].__setitem__("my_mc", shots))
    if expected is None:
        with pytest.raises(lm.LmEvalError, match="n-shot of my_mc is .* not a whole number"):
            lm.import_runs([tmp_path / "runs"], lm.Facts(family="mine", tokens=2e10))
    else:
        table = lm.import_runs([tmp_path / "runs"], lm.Facts(family="mine", tokens=2e10))
        assert set(table["num_fewshot"]) == {expected}


# -- 6. errors that say what is wrong ------------------------------------------------------------------------
def test_a_semicolon_separated_file_and_headers_with_spaces_are_named(tmp_path):
    path = tmp_path / "t.csv"
    rows().to_csv(path, index=False, sep=";")
    with pytest.raises(ScoresError, match="the file looks semicolon-separated; save it comma-separated"):
        scores.read(path)
    spaced = rows().rename(columns={"model": " model", "value": "Value"})
    spaced.to_csv(path, index=False)
    with pytest.raises(ScoresError, match="column ' model' has spaces around it; name it 'model' \\(2 such"):
        scores.read(path)


@pytest.mark.parametrize("encoding, message", [
    ("utf-16", "the file is UTF-16 text; save it as UTF-8"),
    ("latin-1", "line 4 is not UTF-8 (byte 0xe9; Latin-1 or Windows-1252?); save the file as UTF-8"),
])
def test_a_file_in_another_encoding_says_which_to_save_as(tmp_path, encoding, message):
    frame = rows()
    frame.loc[2, "source"] = "café"
    path = tmp_path / "t.csv"
    path.write_bytes(frame.to_csv(index=False).encode(encoding))
    with pytest.raises(ScoresError) as err:
        scores.read(path)
    assert str(err.value).startswith(f"{path}: {message}")


SEPARATORS = st.sampled_from([",", ";", "\t", "|"])
ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"])


@FAST
@given(sep=SEPARATORS, encoding=ENCODINGS, rename=st.dictionaries(
    st.sampled_from(["model", "params", "value", "task"]),
    st.sampled_from([" model", "Params", "VALUE ", "task;", "parms", "value"]), max_size=2))
def test_any_separator_encoding_or_header_reads_right_or_says_why(tmp_path_factory, sep, encoding, rename):
    frame = rows()
    frame.loc[0, "source"] = "naïve"
    frame = frame.rename(columns=rename)
    path = tmp_path_factory.mktemp("enc") / "t.csv"
    path.write_bytes(frame.to_csv(index=False, sep=sep).encode(encoding))
    try:
        got = scores.read(path)
    except ScoresError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(path))
        return
    # read: then it is the table itself, every number the same
    assert sep == "," and encoding in ("utf-8", "utf-8-sig") and set(frame.columns) >= set(scores.REQUIRED)
    assert np.allclose(got["value"], frame["value"]) and got.loc[0, "source"] == "naïve"


def test_the_duplicate_row_message_names_its_partner():
    frame = rows()
    frame = pd.concat([frame, frame.iloc[[5]], frame.iloc[[2]]], ignore_index=True)  # 2 dup of 127, 5 dup of 126
    with pytest.raises(ScoresError, match=r"t.csv: line 4 \(.*\): duplicate row, .* as line 129;"):
        scores.validate(frame, origin="t.csv")


def test_percent_accuracies_in_lm_eval_results_blame_the_results(tmp_path):
    from pipeline.sources import lm_eval as lm

    path = _fake(tmp_path, lambda doc: doc["results"]["my_mc"].__setitem__(
        "acc,none", doc["results"]["my_mc"]["acc,none"] * 100))
    with pytest.raises(lm.LmEvalError, match=f"^{path}: my_mc acc,none is .* in the results, outside \\[0, 1\\] "
                                             "\\(percent\\? lm-eval writes fractions"):
        lm.import_runs([tmp_path / "runs"], lm.Facts(family="mine", tokens=2e10))


# -- 7. no tracebacks ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("raise_, message", [
    (lambda: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device", "/out/x.csv")),
     "error: /out/x.csv: the disk is full; free space or write elsewhere (No space left on device)"),
    (lambda: (_ for _ in ()).throw(PermissionError(errno.EACCES, "Permission denied", "/root/x")),
     "error: /root/x: permission denied"),
    (lambda: (_ for _ in ()).throw(MemoryError()), "error: out of memory; make the work smaller"),
    (lambda: (_ for _ in ()).throw(RecursionError()), "error: an input is nested too deeply"),
    (lambda: json.loads("{"), "error: malformed JSON (Expecting property name"),
    (lambda: params.load_yaml("a: [1"), "error: malformed YAML"),
    (lambda: pd.read_csv(io.StringIO('a,b\n"1,2\n')), "error: not a readable CSV table"),
    (lambda: b"\xff".decode("utf-8"), "error: not UTF-8 text; save it as UTF-8"),
])
def test_the_top_level_handler_makes_one_line_of_each_failure(capsys, raise_, message):
    rc = cli.run_cli(lambda argv: raise_(), [])
    assert message in one_line_error(capsys, rc)


def test_other_exceptions_are_still_bugs():
    with pytest.raises(ZeroDivisionError):
        cli.run_cli(lambda argv: 1 / 0, [])


def _entry_points(tmp_path: Path):
    """(argv, words) per `python -m pipeline <command>`, each with an output that cannot be written."""
    table = csv(tmp_path)
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    afile = tmp_path / "a.csv"
    afile.write_text("x\n")
    s = str(table)
    return [
        (["ingest", "--from", str(tmp_path), "--out", str(folder)], "is a folder; give a file name"),
        (["ingest", "lm-eval", s, "--out", str(folder)], "is a folder; give a file name"),
        (["evaluate", "--model", "EleutherAI/pythia-70m", "--out", str(afile)], "is a file; give a folder"),
        (["collect", "--out", str(folder)], "is a folder; give a file name"),
        (["backtest", "--scores", s, *BT, "--train", "params < 2e9", "--test", "params > 2e9", "--out", str(folder)],
         "is a folder; give a file name"),
        (["trends", "--scores", s, "--out", str(afile / "x.csv")], f"{afile} is a file, not a folder"),
        (["forecast", "--scores", s, "--out-dir", str(afile)], "is a file; give a folder"),
        (["forecast", "--scores", s, *FAMILY, "--out", str(afile / "x.csv")], f"{afile} is a file, not a folder"),
        (["report", "--scores", s, "--out-dir", str(afile)], "is a file; give a folder"),
        (["report", "--scores", s, *FAMILY, "--out", str(afile)], "is a file; give a folder"),
    ]


def test_the_ladders_entry_point_refuses_an_output_it_cannot_write(tmp_path, capsys, monkeypatch):
    (tmp_path / "a.csv").write_text("x\n")
    (tmp_path / "params.yaml").write_text("ladders: {out_dir: a.csv, forecasts: f.csv.gz}\n")
    monkeypatch.chdir(tmp_path)
    one_line_error(capsys, pipeline_main(["ladders"]), "ladders.out_dir a.csv/lolo.csv: a.csv is a file, not a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "params.yaml"]


@pytest.mark.parametrize("i", range(10))
def test_every_entry_point_refuses_an_output_it_cannot_write_in_one_line(tmp_path, capsys, monkeypatch, i):
    monkeypatch.chdir(ROOT)  # collect, forecast and report read params.yaml there
    argv, words = _entry_points(tmp_path)[i]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    one_line_error(capsys, pipeline_main(argv), words)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_an_unwritable_place_and_a_full_disk_are_one_line(tmp_path, capsys, monkeypatch):
    path = csv(tmp_path)
    argv = ["backtest", "--scores", str(path), *BT, "--train", "params < 2e9", "--test", "params > 2e9"]
    one_line_error(capsys, pipeline_main(argv + ["--out", "/proc/capcast/x.csv"]), "/proc/capcast")
    monkeypatch.setattr(files.os, "access", lambda *a: False)
    one_line_error(capsys, pipeline_main(argv + ["--out", str(tmp_path / "o.csv")]),
                   f"cannot write in {tmp_path} (permission denied)")
    monkeypatch.undo()

    def full(frame, out):
        raise OSError(errno.ENOSPC, "No space left on device", str(out))
    monkeypatch.setattr(scores, "write_csv", full)
    one_line_error(capsys, pipeline_main(argv + ["--out", str(tmp_path / "o.csv")]),
                   f"{tmp_path / 'o.csv'}: the disk is full")


@pytest.mark.parametrize("argv, words", [
    (["forecast", *FAMILY[:-4], "--bootstrap", "1e9"], "--bootstrap must be between 0 and 10000, got 1000000000"),
    (["backtest", *BT[:-2], "--bootstrap", "1000000000", "--train", "params < 2e9", "--test", "params > 2e9"],
     "--bootstrap: must be >= 0 and <= 10000"),
    (["backtest", *BT[:-2], "--bootstrap", "1e9", "--train", "params < 2e9", "--test", "params > 2e9"],
     "--bootstrap: must be >= 0 and <= 10000, got 1000000000"),
])
def test_bootstrap_counts_are_bounded(tmp_path, capsys, argv, words):
    one_line_error(capsys, pipeline_main([argv[0], "--scores", str(csv(tmp_path)), *argv[1:]]), words)
    with pytest.raises(ConfigError, match=r"backtest.n_bootstrap: must be >= 0 and <= 10000, got 1000000000000"):
        config.check({"backtest": {"n_bootstrap": 10 ** 12}})


def test_deeply_nested_and_lm_eval_0_3_json_are_one_line(tmp_path, capsys):
    deep = tmp_path / "deep" / "results_2026-01-01T00-00-00.json"
    deep.parent.mkdir()
    deep.write_text("[" * 100_000 + "]" * 100_000)
    old = tmp_path / "old" / "results_2026-01-01T00-00-00.json"
    old.parent.mkdir()
    old.write_text(json.dumps({"results": {"arc_easy": {"acc": 0.5, "acc_stderr": 0.01}}, "versions": {"arc_easy": 0},
                               "config": {"model": "hf-causal", "model_args": "pretrained=EleutherAI/pythia-70m"}}))
    for path, words in ((deep, "nested too deeply"), (old, "an lm-eval 0.3 results file; capcast reads lm-eval 0.4+")):
        rc = pipeline_main(["ingest", "lm-eval", str(path), "--out", str(tmp_path / "o.csv")])
        one_line_error(capsys, rc, str(path), words)


def test_a_failed_report_build_leaves_the_old_report_whole(tmp_path, monkeypatch):
    import importlib

    from pipeline.report.inputs import ReportConfig, ReportInput

    report_build = importlib.import_module("pipeline.report.build")  # the module (the package exports its build())

    out = tmp_path / "rep"
    inp = ReportInput(scores=scores.validate(rows()))
    report_build.write(inp, ReportConfig(processes=1), out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def boom(page, rep):
        raise CapcastError("a section failed")
    monkeypatch.setattr(report_build, "SECTIONS", [*report_build.SECTIONS[:2], boom])
    with pytest.raises(CapcastError, match="a section failed"):
        report_build.write(inp, ReportConfig(processes=1), out)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not list(out.glob(".report-build-*"))
    with pytest.raises(CapcastError):  # a new folder is not left behind either
        report_build.write(inp, ReportConfig(processes=1), tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_report_out_an_existing_file(tmp_path, capsys):
    afile = tmp_path / "report.html"
    afile.write_text("mine")
    rc = pipeline_main(["report", "--scores", str(csv(tmp_path)), *FAMILY, "--out", str(afile)])
    one_line_error(capsys, rc, f"--out {afile}: is a file; give a folder")
    assert afile.read_text() == "mine"

