"""One family of any table at any (N, D): ``forecast --family`` and ``report --family``
(pipeline/forecasting/family.py): the nested backtest on the family's own ladder, --method auto, several
targets, --chance, and one-line errors."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import scores
from pipeline.errors import CapcastError
from pipeline.forecasting import family as ladder
from pipeline.forecasting import targets as forecast
from pipeline.forecasting.backtest import make_law
from pipeline.ladders.calibration import Source
from pipeline.laws import nested
from pipeline.stages import forecast as forecast_stage
from pipeline.stages import report as report_cli
from tests.test_laws import ladder_rows

SIZES = (3e7, 6e7, 1.2e8, 2.5e8, 5e8, 1e9)


@pytest.fixture
def table_csv(tmp_path):
    rows = ladder_rows(sizes=SIZES, steps=(10000, 40000, 100000), noise=0.003)
    path = tmp_path / "mine.csv"
    rows.to_csv(path, index=False)
    return path


def run(capsys, main, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


COMMON = ["--family", "toy", "--bootstrap", "20"]


def test_one_line_per_task_and_target_with_the_ladders_own_backtest(table_csv, tmp_path, capsys):
    out_csv = tmp_path / "fc.csv"
    rc, out, err = run(capsys, forecast_stage.main, "--scores", str(table_csv), *COMMON, "--params", "7e9,13e9",
                       "--tokens", "2e11,4e11", "--method", "loglinear", "--out", str(out_csv))
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("toy (6 models, 18 checkpoints, 6 sizes") and "largest size >= 1e+09" in lines[0]
    assert [line.split("  ")[:2] for line in lines[1:]] == [["arc_easy:acc", "N=7e+09 D=2e+11"],
                                                            ["arc_easy:acc", "N=1.3e+10 D=4e+11"]]
    assert all("loglinear  backtest MAE" in line and "90% [" in line for line in lines[1:])
    fc = pd.read_csv(out_csv)
    assert list(fc.params) == [7e9, 13e9] and list(fc.tokens) == [2e11, 4e11]
    assert (fc.lower <= fc.predicted).all() and (fc.predicted <= fc.upper).all()
    # each target's numbers are the law's at that target alone (not another target's or a curve point's)
    table = scores.read(table_csv)
    cfg = {"metric": "acc", "num_fewshot": 0, "seed": 0}
    policy = Source().policy(0.9)  # the interval of a candidate forecasting up its ladder is the policy's
    for _, r in fc.iterrows():
        target = forecast.Target("one", "toy", "toy", r.params, r.tokens)
        units = forecast.target_units(table, target, {"curve_points": 40})
        _, alone = forecast.fit_predict(table, target, "arc_easy", "loglinear", {"n_bootstrap": 20}, cfg, units, 0.9,
                                        policy)
        first = alone.set_index("model").loc["one @000"]
        assert (r.predicted, r.lower, r.upper) == pytest.approx((first.predicted, first.lower, first.upper), rel=1e-5)
    # the backtest numbers are those of the method fitted on the smaller rungs, scored on the largest size
    (split,) = nested.inner_splits(table, "arc_easy:acc", folds=1)
    assert set(split.test.model) == {"toy-1e+09"} and "toy-1e+09" not in set(split.train.model)
    pred = make_law("loglinear", "arc_easy:acc", {"n_bootstrap": 20}, split.train, split.test,
                    Source().policy(0.9, ["toy"])).fit(split.train).predict(split.test)
    held = split.scored[["model", "step"]].merge(pred, on=["model", "step"])
    assert fc.backtest_mae.iloc[0] == pytest.approx(100 * np.mean(np.abs(held.predicted - held.actual)), rel=1e-5)
    assert fc.backtest_n.iloc[0] == len(held)
    inside = (held.actual >= held.lower) & (held.actual <= held.upper)
    assert fc.backtest_coverage.iloc[0] == pytest.approx(inside.mean())


def test_auto_is_the_policys_forecast_and_every_candidate_is_backtested_beside_it(table_csv, tmp_path, capsys):
    """--method auto (the default) forecasts with the policy learned across ladders; nothing is
    chosen on the family's own top rung: every candidate's backtest there is reported as evidence."""
    out_csv = tmp_path / "fc.csv"
    rc, out, err = run(capsys, forecast_stage.main, "--scores", str(table_csv), *COMMON, "--params", "7e9",
                       "--tokens", "2e11", "--loss", "toyloss:ppl", "--out", str(out_csv))
    assert rc == 0, err
    (line,) = out.strip().splitlines()[1:]
    assert "  auto  backtest MAE" in line
    fc = pd.read_csv(out_csv)
    policy = Source().policy(0.9)
    assert [c.split("=")[0] for c in fc["candidates"].iloc[0].split(";")] == ["auto", *policy.candidates]
    table = scores.read(table_csv)
    target = forecast.Target("one", "toy", "toy", 7e9, 2e11)
    units = forecast.target_units(table, target, {"curve_points": 40})
    _, alone = forecast.fit_predict(table, target, "arc_easy", "auto", {"loss": "toyloss:ppl"},
                                    {"metric": "acc", "num_fewshot": 0, "seed": 0}, units, 0.9, policy)
    first = alone.set_index("model").loc["one @000"]
    assert fc["predicted"].iloc[0] == pytest.approx(first["predicted"], rel=1e-5)
    assert not hasattr(ladder, "choose")  # no method is picked on one rung


def test_a_task_without_a_chance_level_names_the_file_and_chance(tmp_path, capsys):
    rows = ladder_rows(sizes=SIZES, steps=(10000, 100000), noise=0.003)
    rows["task"] = rows["task"].replace({"arc_easy": "my_task"})
    path = tmp_path / "mine.csv"
    rows.to_csv(path, index=False)
    argv = ["--scores", str(path), *COMMON, "--params", "7e9", "--tokens", "2e11", "--method", "sigmoid"]
    rc, out, err = run(capsys, forecast_stage.main, *argv)
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert str(path) in err and "'my_task'" in err and "--chance TASK=LEVEL" in err
    rc, out, err = run(capsys, forecast_stage.main, *argv, "--chance", "my_task=0.25")
    assert rc == 0, err
    assert out.strip().splitlines()[1].startswith("my_task:acc  N=7e+09")


@pytest.mark.parametrize("extra, words", [
    (["--family", "nope"], "no rows of family 'nope'"),
    (["--params", "7e9,13e9,20e9", "--tokens", "1e11,2e11"], "3 sizes and --tokens 2"),
    (["--params", "-1"], "--params '-1': give numbers > 0"),
    (["--tasks", "piqa"], "no 'acc' rows of piqa"),
    (["--chance", "piqa=0.5"], "--chance names task(s) piqa"),
    (["--tokens-per-param", "20"], "--tokens D[,D...] or --tokens-per-param R"),
])
def test_bad_requests_are_one_line(table_csv, capsys, extra, words):
    argv = ["--scores", str(table_csv), "--family", "toy", "--params", "7e9", "--tokens", "2e11", *extra]
    rc, out, err = run(capsys, forecast_stage.main, *argv)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and words in err, err


@pytest.mark.parametrize("target", [(0.0, 2e11), (7e9, -1.0), (float("nan"), 2e11), (7e9, float("inf")), (7e9,)])
def test_a_request_built_in_python_refuses_a_target_without_a_size_and_token_count(table_csv, target):
    table = scores.read(table_csv)
    req = ladder.Request("toy", ((1e9, 2e10), target), method="line_final", n_bootstrap=0)
    with pytest.raises(CapcastError) as exc:
        ladder.run(table, req)
    assert "target 2 of 'toy'" in str(exc.value) and "\n" not in str(exc.value)


def test_the_family_report_says_why_where_no_method_could_forecast_a_target(tmp_path, capsys, monkeypatch):
    """Every run at one compute budget (a single isoFLOP sweep): no trend law can be fitted, so auto
    gives no forecast; the report draws no figure for the target and says why, instead of failing."""
    monkeypatch.chdir(tmp_path)
    budget = 1e19
    rows = ladder_rows(sizes=SIZES, steps=(100000,), noise=0.003)
    rows = rows.assign(tokens=budget / (6 * rows["params"]), compute_flops=budget)
    path = tmp_path / "sweep.csv"
    rows.to_csv(path, index=False)
    out = tmp_path / "rep"
    rc, stdout, err = run(capsys, report_cli._main, "--scores", str(path), *COMMON, "--params", "7e9",
                          "--tokens", "2e11", "--out", str(out))
    assert rc == 0, err
    assert "0 of " in stdout and "forecasts made" in stdout
    md = (out / "forecast.md").read_text()
    assert "No method forecast toy N=7e+09 D=2e+11" in md and "only carry could be fitted" in md
    assert not list((out / "plots").glob("target-*.png"))


def test_several_suites_need_suite(table_csv, tmp_path, capsys):
    rows = scores.read(table_csv)
    path = tmp_path / "two.csv"
    pd.concat([rows, rows.assign(suite="other")]).to_csv(path, index=False)
    rc, _, err = run(capsys, forecast_stage.main, "--scores", str(path), *COMMON, "--params", "7e9", "--tokens", "2e11")
    assert rc == 2 and "pass --suite NAME" in err
    rc, out, err = run(capsys, forecast_stage.main, "--scores", str(path), *COMMON, "--params", "7e9", "--tokens", "2e11",
                       "--suite", "other", "--method", "loglinear")
    assert rc == 0, err


def test_report_for_a_family_without_params_yaml(table_csv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no params.yaml here
    out = tmp_path / "rep"
    rc, stdout, err = run(capsys, report_cli._main, "--scores", str(table_csv), *COMMON, "--params", "7e9",
                          "--tokens", "2e11", "--loss", "toyloss:ppl", "--out", str(out))
    assert rc == 0, err
    page = (out / "index.html").read_text()
    assert "toy N=7e+09 D=2e+11" in page and "<script" not in page and "http" not in page
    # the user has no pipeline: nothing points at params.yaml, a stage or a missing reports/ file
    for pipeline_word in ("params.yaml", "dvc repro", "reports/", "is missing"):
        assert pipeline_word not in page, pipeline_word
    glance = pd.read_csv(out / "at_a_glance.csv")
    fc = pd.read_csv(out / "forecast.csv")
    # the report's numbers are the CLI's: same method, same same-family (nested) backtest
    assert list(glance.method) == list(fc.method) and glance.mae.iloc[0] == pytest.approx(fc.backtest_mae.iloc[0])
    assert glance.coverage.iloc[0] == pytest.approx(fc.backtest_coverage.iloc[0])
    for name in ("forecast_curves.csv", "backtest.csv", "backtest_predictions.csv", "forecast.md"):
        assert (out / name).is_file()


def test_families_of_one_configured_lineage_are_one_ladder_to_the_calibrated_interval():
    """Training rows of two families that params.yaml ``ladders.lineage`` makes one recipe are one
    ladder: a candidate forecasting up it gets the policy's interval; of two recipes, its own."""
    from pipeline.laws import Calibrated

    rows = pd.DataFrame({"family": ["a", "b"], "model": ["a-1", "b-1"]})
    policy = Source().policy(0.9)
    one = make_law("loglinear", "arc_easy:acc", {"n_bootstrap": 20}, rows, rows, policy, {"a": "r", "b": "r"})
    two = make_law("loglinear", "arc_easy:acc", {"n_bootstrap": 20}, rows, rows, policy)
    assert isinstance(one, Calibrated) and not isinstance(two, Calibrated)
