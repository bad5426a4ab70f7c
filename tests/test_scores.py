import pandas as pd
import pytest

from pipeline import scores
from pipeline.scores import ScoresError
from tests.paths import SHARED, needs_shared


def rows(**over):
    base = dict(model="m", family="f", params=1e8, tokens=2e10, compute_flops="", step="", task="piqa",
                metric="acc", value=0.6, stderr="", num_fewshot="", source="here")
    return pd.DataFrame([{**base, **over}])


def test_minimal_user_table_is_accepted_and_compute_defaults_to_6nd():
    out = scores.validate(rows())
    assert out.loc[0, "compute_flops"] == pytest.approx(6 * 1e8 * 2e10)
    assert out.loc[0, "suite"] == "user"
    assert pd.isna(out.loc[0, "step"]) and pd.isna(out.loc[0, "stderr"])
    assert list(out.columns[: len(scores.ALL_COLUMNS)]) == list(scores.ALL_COLUMNS)


@pytest.mark.parametrize("over, message", [
    (dict(value=float("inf")), "value is not a finite number"),
    (dict(value="nan"), "holds 'nan', not a number"),
    (dict(value=""), "empty 'value'"),
    (dict(params="abc"), "'params' holds 'abc', not a number"),
    (dict(params=0), "params must be > 0"),
    (dict(step=1.5), "must be a whole number"),
    (dict(stderr=-1), "stderr must be a finite number >= 0"),
    (dict(model=""), "empty 'model'"),
])
def test_bad_cells_name_the_row_and_the_problem(over, message):
    with pytest.raises(ScoresError, match="line 2") as err:  # header is line 1
        scores.validate(rows(**over), origin="my.csv")
    assert message in str(err.value) and "my.csv" in str(err.value)


def test_missing_columns_and_duplicates_are_reported():
    with pytest.raises(ScoresError, match=r"missing required column\(s\) \['value'\]"):
        scores.validate(rows().drop(columns=["value"]))
    with pytest.raises(ScoresError, match="scores table: row 0 .*duplicate row.*as row 1"):
        scores.validate(pd.concat([rows(), rows()]))
    # the same number from two suites is not a duplicate
    assert len(scores.validate(pd.concat([rows(suite="a"), rows(suite="b")]))) == 2


def test_chance_levels():
    assert scores.chance("piqa") == 0.5
    assert scores.chance("hendrycksTest-anatomy", "acc_norm") == 0.25
    assert scores.chance("arithmetic_2da", "acc") == 0.0
    assert scores.chance("gsm8k", "exact_match") == 0.0
    with pytest.raises(ScoresError, match="no chance level known for task 'mystery'"):
        scores.chance("mystery")
    with pytest.raises(ScoresError, match="accuracy metrics only"):
        scores.chance("lambada_openai", "ppl")


def test_write_read_round_trip_is_byte_stable(tmp_path):
    table = pd.concat([rows(task="arc_easy", value=0.41), rows(task="piqa", step=3, value=0.6)])
    for suffix in (".csv", ".parquet"):
        a, b = tmp_path / f"a{suffix}", tmp_path / f"b{suffix}"
        scores.write(table, a)
        scores.write(scores.read(a).iloc[::-1], b)
        assert a.read_bytes() == b.read_bytes()


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(ScoresError, match="no such file"):
        scores.read(tmp_path / "absent.csv")
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    with pytest.raises(ScoresError, match="bad.parquet: cannot be read"):
        scores.read(bad)


def test_chance_column_is_data_and_the_table_is_the_fallback():
    table = scores.validate(pd.concat([rows(task="my_task", chance=0.2), rows(task="piqa")]))
    assert scores.chance_level("my_task", "acc", table) == 0.2
    assert scores.chance_level("piqa", "acc", table) == 0.5  # empty column: built-in table
    with pytest.raises(ScoresError, match="fill the 'chance' column.*--chance TASK=LEVEL"):
        scores.chance_level("other_task", "acc", table)
    mixed = scores.validate(pd.concat([rows(task="t", chance=0.2), rows(task="t", model="m2", chance=0.25)]))
    with pytest.raises(ScoresError, match="different chance levels"):
        scores.chance_level("t", "acc", mixed)
    with pytest.raises(ScoresError, match="chance must be in"):
        scores.validate(rows(chance=1.5), origin="my.csv")
    # --chance fills a task's empty cells; the column wins: one that agrees is a no-op, one that contradicts is refused
    blank = scores.validate(pd.concat([table, rows(task="blank_task", model="m3")]))
    set_ = scores.with_chance(blank, scores.parse_chance("blank_task=0.3"))
    assert scores.chance_level("blank_task", "acc", set_) == 0.3
    assert scores.with_chance(set_, scores.parse_chance("blank_task=0.3,my_task=0.2")).equals(set_)
    with pytest.raises(ScoresError, match=r"--chance my_task=0.5: .*already gives my_task 0.2 \(the column wins\)"):
        scores.with_chance(set_, scores.parse_chance("my_task=0.5"))
    for bad in ("my_task", "my_task=2", "=0.2", "my_task=x"):
        with pytest.raises(ScoresError, match="is not TASK=LEVEL"):
            scores.parse_chance(bad)


@needs_shared
def test_non_embedding_counts_from_shapes_match_pythia_published_counts():
    from pipeline.sources import families

    meta = pd.read_csv(SHARED / "data/upstream/derived/model_metadata.csv")
    pythia = meta[meta["variant"] == "standard"].dropna(subset=["params_non_embedding"])
    assert len(pythia) == 8
    for _, m in pythia.iterrows():
        d = int(m["d_model"])
        assert families.non_embedding_from_shape(int(m["n_layers"]), d, 4 * d) == m["params_non_embedding"]
    # registry lookups by hub id and by short name give the same facts
    assert families.find("pythia-1.4b") == families.find("EleutherAI/pythia-1.4b")
    assert families.find("opt-1.3b")[1].params_non_embedding == pytest.approx(1.21e9, rel=0.02)
