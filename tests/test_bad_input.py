"""The bad-input audit's cases, each as a user would type it: a one-line error naming the file,
row or key (exit 2), or a correct result; never a traceback or a silently wrong number."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from pipeline import scores
from pipeline.forecasting import backtest
from pipeline.scores import ScoresError
from pipeline.stages import backtest as backtest_stage
from pipeline.stages import trends as trends_stage
from pipeline.trends.curves import final_rows
from tests.paths import ROOT
from tests.test_laws import ladder_rows
from tests.test_trends import table as trend_table

PARAMS = str(ROOT / "params.yaml")


def one_line_error(capsys, rc, *needles):
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def ladder_csv(tmp_path, rows=None, name="mine.csv"):
    path = tmp_path / name
    (ladder_rows(noise=0.002) if rows is None else rows).to_csv(path, index=False)
    return path


BT = ["--method", "loglinear", "--target", "arc_easy:acc", "--train", "params <= 2e9", "--test", "params > 2e9",
      "--bootstrap", "10"]


# -- 1. accuracies outside [0, 1], percent tables ---------------------------------------------
def test_percent_accuracies_are_refused_with_the_fix(tmp_path, capsys):
    rows = ladder_rows(noise=0.002)
    acc = rows["metric"] == "acc"
    rows.loc[acc, "value"] *= 100
    path = ladder_csv(tmp_path, rows)
    rc = backtest_stage.main(["--scores", str(path), *BT])
    one_line_error(capsys, rc, f"{path}: line 3 ", "accuracy", "is outside [0, 1]",
                   "arc_easy:acc looks like percent", "divide by 100")


def test_one_impossible_accuracy_in_the_published_table_stops_the_pipeline(tmp_path):
    published = pd.read_csv(ROOT / "data/published/scores.csv", dtype=str, keep_default_na=False)
    hit = published.index[(published["model"] == "EleutherAI/pythia-12b") & (published["task"] == "arc_easy")
                          & (published["metric"] == "acc") & (published["step"] == "143000")
                          & (published["num_fewshot"] == "0")][0]
    published.loc[hit, "value"] = "1.7"
    path = tmp_path / "scores.csv"
    published.to_csv(path, index=False)
    with pytest.raises(ScoresError) as err:
        scores.read(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: line {hit + 2} (model=EleutherAI/pythia-12b, step=143000, task=arc_easy, metric=acc)")
    assert "accuracy 1.7 is outside [0, 1]" in msg and "percent" not in msg


@pytest.mark.parametrize("metric, value, message", [
    ("ppl", 0.5, "perplexity 0.5 must be > 1"), ("ppl", 1.0, "perplexity 1 must be > 1"),
    ("nll", 0.0, "loss 0 must be > 0"), ("bpb", -1.0, "loss -1 must be > 0"),
    ("perplexity", -3.0, "perplexity -3 must be > 1"),
])
def test_impossible_losses_name_the_row(metric, value, message):
    row = dict(model="m", family="f", params=1e8, tokens=2e10, task="t", metric=metric, value=value, source="s")
    with pytest.raises(ScoresError, match=r"my\.csv: line 2 \(model=m.*" + message.replace("(", r"\(")):
        scores.validate(pd.DataFrame([row]), origin="my.csv")


# -- 2. a checkpoint without a scale to predict from; MAE over fewer predictions -------------------
@pytest.mark.parametrize("method", ["loglinear", "two_step", "sigmoid"])
def test_a_test_checkpoint_with_tokens_0_is_named(tmp_path, capsys, method):
    rows = ladder_rows(noise=0.002)
    start = rows[rows["step"] == 2000].copy()
    start["step"], start["tokens"], start["compute_flops"] = 0, 0.0, np.nan  # empty compute: 6 N D = 0
    path = ladder_csv(tmp_path, pd.concat([rows, start]))
    extra = ["--loss", "toyloss:ppl"] if method == "two_step" else []
    rc = backtest_stage.main(["--scores", str(path), "--method", method, "--target", "arc_easy:acc", "--bootstrap", "10",
                        "--train", "params <= 2e9 and step > 0", "--test", "params > 2e9", *extra])
    one_line_error(capsys, rc, "predict arc_easy:acc: toy-4e+09 (step 0) has tokens 0 and compute_flops 0",
                   "no scale to predict from", "and tokens > 0")


def test_the_mae_says_how_many_predictions_it_left_out(tmp_path, capsys, monkeypatch):
    real = backtest.run_law

    def some_without_number(*a, **k):
        pred = real(*a, **k)
        pred.loc[pred.index[0], ["predicted", "lower", "upper"]] = np.nan
        return pred

    monkeypatch.setattr(backtest, "run_law", some_without_number)
    rc = backtest_stage.main(["--scores", str(ladder_csv(tmp_path)), *BT])
    out = capsys.readouterr().out
    assert rc == 0 and "predicted n/a" in out
    assert out.strip().splitlines()[-1].endswith("; 1 of 14 have no prediction and are not in it (toy-4e+09)")


def test_the_stage_counts_predictions_without_a_number():
    bt = pd.read_csv(ROOT / "reports/backtest.csv")
    assert "skipped" in bt.columns
    row = bt[(bt["split"] == "obsscaling_cutoff") & (bt["method"] == "observational_compute") & (bt["task"] == "ALL")]
    full = bt[(bt["split"] == "obsscaling_cutoff") & (bt["method"] == "observational") & (bt["task"] == "ALL")]
    assert int(row["n"].iloc[0]) + int(row["skipped"].iloc[0]) == int(full["n"].iloc[0])


# -- 3. trends on impossible losses ----------------------------------------------------------------
@pytest.mark.parametrize("metric, value, message", [("ppl", 0.9, "perplexity 0.9 must be > 1"),
                                                     ("nll", -0.2, "loss -0.2 must be > 0")])
def test_trends_refuses_impossible_losses(tmp_path, capsys, metric, value, message):
    df = trend_table()
    i = df.index[df["metric"] == "nll"][3]
    df.loc[i, ["metric", "value"]] = metric, value
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    rc = trends_stage.main(["--scores", str(path), "--out", str(tmp_path / "o.csv"), "--params", PARAMS])
    one_line_error(capsys, rc, f"{path}: line {i + 2} ", message)


# -- 5. trends --scores without --out never writes into reports/ ----------------------------------
def test_trends_without_out_writes_nothing(tmp_path, capsys, monkeypatch):
    path = tmp_path / "t.csv"
    trend_table().to_csv(path, index=False)
    committed = (ROOT / "reports/trends.csv").read_bytes()
    monkeypatch.chdir(ROOT)
    rc = trends_stage.main(["--scores", str(path)])
    one_line_error(capsys, rc, "give --out FILE.csv")
    assert (ROOT / "reports/trends.csv").read_bytes() == committed


# -- 6. extra columns keep their numbers --------------------------------------------------------------
def test_extra_columns_of_a_csv_are_numbers_and_queries_compare_numbers(tmp_path, capsys):
    rows = ladder_rows(noise=0.002)
    rows["rank"] = (rows["params"] > 2e9).astype(int)  # 1 for the two largest models
    rows["note"] = "x"
    path = ladder_csv(tmp_path, rows)
    table = scores.read(path)
    assert table["rank"].dtype == "float64" and table["note"].dtype != "float64"
    rc = backtest_stage.main(["--scores", str(path), "--method", "loglinear", "--target", "arc_easy:acc", "--bootstrap", "10",
                        "--train", "params < 1e8 or rank == 0", "--test", "rank > 0 and step == 100000"])
    out = capsys.readouterr().out
    assert rc == 0 and "over 2 predictions" in out
    train = backtest.select(table, "params < 1e8 or rank == 0", "--train")
    assert set(train["params"]) == {p for p in rows["params"] if p <= 2e9}  # rank-0 rows kept


# -- 7. a query cannot run code, from any entry point --------------------------------------------
PWN = "params > 0 or @pd.io.common.os.system('touch {flag}') == 0"


def test_backtest_and_trends_queries_cannot_run_commands(tmp_path, capsys):
    flag = tmp_path / "pwned"
    rc = backtest_stage.main(["--scores", str(ladder_csv(tmp_path)), *BT[:4], "--train", PWN.format(flag=flag),
                        "--test", "params > 2e9"])
    one_line_error(capsys, rc, "'@' (local variables) is not allowed")
    path = tmp_path / "t.csv"
    trend_table().to_csv(path, index=False)
    rc = trends_stage.main(["--scores", str(path), "--out", str(tmp_path / "o.csv"), "--params", PARAMS,
                      "--train", f"params > 0 or __import__('os').system('touch {flag}') == 0"])
    one_line_error(capsys, rc, "function calls not allowed in a query")
    assert not flag.exists()


# -- 8. tracebacks that are one-line errors now ---------------------------------------------------------
def test_trends_on_a_final_checkpoint_with_compute_0(tmp_path, capsys):
    df = trend_table()
    i = final_rows(df).index[5]
    checkpoint = (df["model"] == df.loc[i, "model"]) & (df["step"] == df.loc[i, "step"])
    df.loc[checkpoint, ["tokens", "compute_flops"]] = 0.0  # every row of it: one checkpoint has one token count
    i = df.index[checkpoint][0]
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    rc = trends_stage.main(["--scores", str(path), "--out", str(tmp_path / "o.csv"), "--params", PARAMS])
    one_line_error(capsys, rc, f"{path}: line {i + 2} ", "compute_flops 0 at the final checkpoint of its curve")


def test_trends_train_query_that_keeps_only_initialisation(tmp_path, capsys):
    rows = ladder_rows(noise=0.002)
    start = rows[rows["step"] == 2000].copy()
    start["step"], start["tokens"], start["compute_flops"] = 0, 0.0, 0.0
    path = ladder_csv(tmp_path, pd.concat([rows, start], ignore_index=True))
    rc = trends_stage.main(["--scores", str(path), "--out", str(tmp_path / "o.csv"), "--params", PARAMS,
                      "--train", "step == 0"])
    one_line_error(capsys, rc, "at the final checkpoint of its curve among the --train rows")


def test_non_utf8_json_in_ingest_names_the_file(tmp_path):
    from pipeline.sources import published as ingest

    bad = tmp_path / "pythia_evals/pythia-v1/pythia-70m/zero-shot/70m_step1000.json"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b'{"results": "caf\xe9"}')
    with pytest.raises(ingest.IngestError) as err:
        ingest.read_pythia_evals(ingest.Store(str(tmp_path)))
    assert str(err.value).startswith(f"{bad}: not UTF-8 text (invalid continuation byte")


@pytest.mark.parametrize("flag, value, message", [
    ("--batch-size", "abc", "--batch-size: 'abc' is not a batch size"),
    ("--batch-size", "0", "--batch-size: 0 is not a batch size"),
    ("--device", "nosuch", "--device: 'nosuch' is not a device"),
])
def test_evaluate_checks_batch_size_and_device_before_loading_anything(tmp_path, capsys, monkeypatch, flag, value,
                                                                         message):
    from pipeline.sources import lm_eval_run
    from pipeline.stages import evaluate

    monkeypatch.setattr(lm_eval_run, "load_lm", lambda *a: pytest.fail("a model was loaded"))
    monkeypatch.setattr(lm_eval_run, "task_manager", lambda *a: pytest.fail("tasks were loaded"))
    rc = evaluate.main(["--model", "EleutherAI/pythia-70m", "--out", str(tmp_path / "evals"), flag, value])
    one_line_error(capsys, rc, message)
    assert not (tmp_path / "evals").exists()


# -- 9. a killed atomic write leaves nothing behind after the next run ------------------------------------
KILLED_WRITER = """
import sys, time
from pathlib import Path
from pipeline import scores
def slow(tmp):
    Path(tmp).write_text("half")
    print("writing", flush=True)
    time.sleep(60)
scores.atomic_write(Path(sys.argv[1]), slow)
"""


def _start_writer(target):
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "writing"
    return proc


def test_a_sigkilled_write_is_cleaned_by_the_next_run_of_the_stage(tmp_path):
    evals = tmp_path / "evals"
    proc = _start_writer(evals / "m@step1.json")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = [p.name for p in evals.iterdir()]
    assert len(left) == 1 and left[0].startswith(".m@step1.json.")
    (evals / ".not-ours.txt").write_text("x")  # not an atomic_write temp name: kept
    params = tmp_path / "params.yaml"
    params.write_text(f"evaluate: {{models: [], out_dir: {evals}}}\n")
    run = subprocess.run([sys.executable, "-m", "pipeline", "evaluate", "--from-params", "--params", str(params)],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert f"removed {evals / left[0]}, left by an interrupted write" in run.stderr
    assert sorted(p.name for p in evals.iterdir()) == [".not-ours.txt", "README.txt"]


def test_a_live_write_of_another_process_is_left_alone(tmp_path):
    proc = _start_writer(tmp_path / "scores.parquet")
    try:
        temp = next(tmp_path.glob(".scores.parquet.*"))
        os.utime(temp, (time.time() - 3600, time.time() - 3600))  # old, but still being written
        assert scores.clean_stale_temps(tmp_path) == [] and temp.exists()
    finally:
        proc.kill()
        proc.wait()
    assert scores.clean_stale_temps(tmp_path) == [temp] and not temp.exists()
