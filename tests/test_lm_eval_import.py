"""Importing lm-eval output folders: lm-eval's own CLI on a tiny three-size ladder, then
``ingest lm-eval``; the numbers must be lm-eval's and the evaluate stage's; bad folders stop
with one line naming the file, and nothing is written."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import scores
from pipeline.sources import evaluation as ev
from pipeline.sources import lm_eval as lm
from pipeline.sources import lm_eval_run as lmrun
from pipeline.sources import taskloss
from pipeline.stages import ingest as ingest_stage
from tests.paths import ROOT
from tests.tiny_models import TOKENS_PER_STEP

MC, LASTWORD = "capcast_tiny_mc", "capcast_tiny_lastword"
LADDER = [(f"capcast-test/tiny-neox-{size}", f"step{step}") for size in ("xs", "s", "m") for step in (4, 40)]
LOSSES = ("nll", "nll_token", "nll_char", "bpb", "prob_correct")


@pytest.fixture(scope="module")
def ladder(lm_eval_runs):
    """lm-eval's CLI run on 3 sizes x 2 checkpoints, both tasks, with --log_samples (conftest.py)."""
    return lm_eval_runs


def ladder_facts(**kw) -> lm.Facts:
    return lm.Facts(family="tiny-neox", tokens_per_step=TOKENS_PER_STEP, **kw)


@pytest.mark.slow
def test_imported_accuracies_are_lm_evals_results_json(ladder):
    table = lm.import_runs([ladder], ladder_facts())
    assert set(table.suite) == {"lm_eval"} and table.model.nunique() == 3
    assert sorted(set(zip(table.model, table.step))) == sorted((m, int(r[4:])) for m, r in LADDER)
    for path in sorted(ladder.rglob("results_*.json")):
        doc = json.loads(path.read_text())
        mine = table[table.source == str(path)]
        for task, res in doc["results"].items():
            for metric in ("acc", "acc_norm", "perplexity"):
                if f"{metric},none" in res:
                    (row,) = mine[(mine.task == task) & (mine.metric == metric)].itertuples()
                    assert row.value == res[f"{metric},none"] and row.stderr == res[f"{metric}_stderr,none"]
            assert set(mine[mine.task == task].metric) >= set(LOSSES if task == MC else LOSSES[:-1])
        assert set(mine.params) == {doc["config"]["model_num_parameters"]}
        step = int(doc["config"]["model_args"]["revision"][4:])
        assert set(mine.step) == {step} and set(mine.tokens) == {step * TOKENS_PER_STEP}
        assert set(mine.num_fewshot) == {0}
    # chance as data: 1/4 for the four-way task's accuracies, 0 for the last-word (greedy) accuracy
    acc = table[table.metric.isin(["acc", "acc_norm", "prob_correct"])]
    assert set(acc[acc.task == MC].chance) == {0.25}
    assert set(acc[acc.task == LASTWORD].chance) == {0.0}
    assert table[table.metric == "bpb"].chance.isna().all()


@pytest.mark.slow
def test_task_losses_equal_the_evaluate_stages_on_the_same_model(ladder, tiny_zoo, tmp_path):
    model, revision = "capcast-test/tiny-neox-m", "step40"
    entries = [{"model": model, "family": "tiny-neox", "revisions": [revision], "tokens_per_step": TOKENS_PER_STEP}]
    settings = ev.Settings(tasks=(MC, LASTWORD), batch_size=8, device="cpu", include_path=str(tiny_zoo.include_path),
                           out_dir=tmp_path / "evals")
    lmrun.evaluate(ev.checkpoints_from_entries(entries), settings)
    evaluated = ev.load_eval_rows(tmp_path / "evals").set_index(["task", "metric"])
    imported = lm.import_runs([ladder], ladder_facts())
    imported = imported[(imported.model == model) & (imported.step == 40)].set_index(["task", "metric"])
    assert set(imported.index) == set(evaluated.index)
    # the two forward passes (lm-eval's CLI in its own process, the stage here) differ by float noise
    # (~1e-8: thread count, batching); the losses are computed by the same code from them
    for key in imported.index:
        mine, theirs = imported.loc[key], evaluated.loc[key]
        assert mine.value == pytest.approx(theirs.value, rel=1e-6, abs=1e-9), key
        assert (pd.isna(mine.chance) and pd.isna(theirs.chance)) or mine.chance == theirs.chance, key
    for col in ("params", "params_non_embedding", "tokens"):
        assert set(imported[col]) == set(evaluated[col])
    # per document: the same gold choices, token, character and byte counts as the stage's samples file
    (path,) = [p for p in ladder.rglob("results_*.json") if json.loads(p.read_text())["config"]["model_args"] ==
               {"pretrained": model, "revision": revision}]
    run = lm.read_run(path)
    record = json.loads(next((tmp_path / "evals").glob("*.json")).read_text())
    for task in (MC, LASTWORD):
        spec = taskloss.TaskSpec.of_config(run.doc["configs"][task])
        counter = lm.checkpoint_tools(run.pretrained, run.revision, None, None)[1]
        _, docs = lm.documents(run, task, lm.samples_files(path)[task], spec, counter)
        item = record["evaluations"][f"{task}|0shot"]["tasks"][task]
        theirs = ev.read_samples(tmp_path / "evals" / item["samples"])
        for d, t in zip(docs, theirs, strict=True):
            assert (d.doc_id, d.gold, d.tokens, d.chars, d.bytes, d.continuations) == \
                (t["doc_id"], t["gold"], t["tokens"], t["chars"], t["bytes"], t["continuations"])
            assert d.ll == pytest.approx(t["ll"], rel=1e-6)


@pytest.mark.slow
def test_the_cli_writes_the_table_and_collect_folds_it_in(ladder, tmp_path, capsys):
    out = tmp_path / "mine.parquet"
    argv = ["lm-eval", str(ladder), "--family", "tiny-neox", "--tokens-per-step", str(TOKENS_PER_STEP),
            "--chance", f"{LASTWORD}=0", "--out", str(out)]
    assert ingest_stage.main(argv) == 0
    assert "3 models, 6 checkpoints, 2 tasks" in capsys.readouterr().out
    table = scores.read(out)
    again = tmp_path / "again.parquet"
    assert ingest_stage.main(argv[:-1] + [str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()  # same inputs, same bytes
    from pipeline.stages.collect import collect

    both = collect(ROOT / "data" / "published" / "scores.csv", None,
                   [{"path": str(ladder), "family": "tiny-neox", "tokens_per_step": TOKENS_PER_STEP}])
    mine = both[both.suite == "lm_eval"]
    assert len(mine) == len(table) and len(both) > len(mine)


@pytest.mark.slow
def test_from_lm_evals_folder_to_a_forecast_of_a_larger_size(ladder, tmp_path, capsys):
    from pipeline.stages import forecast as forecast_stage

    table = tmp_path / "mine.csv"
    assert ingest_stage.main(["lm-eval", str(ladder), "--family", "tiny-neox", "--tokens-per-step", str(TOKENS_PER_STEP),
                        "--out", str(table)]) == 0
    capsys.readouterr()
    assert forecast_stage.main(["--scores", str(table), "--family", "tiny-neox", "--params", "1e6",
                          "--tokens", str(40 * TOKENS_PER_STEP), "--bootstrap", "20"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("tiny-neox (3 models, 6 checkpoints, 3 sizes")
    assert sorted(line.split("  ")[0] for line in lines[1:]) == [f"{LASTWORD}:acc", f"{MC}:acc"]
    assert all("N=1e+06 D=2.05e+04  predicted " in line and "90% [" in line for line in lines[1:])


@pytest.mark.slow
def test_without_the_tokenizer_nll_token_is_left_out_and_said(ladder, tmp_path, capsys):
    moved = tmp_path / "elsewhere"
    shutil.copytree(ladder, moved)
    for path in moved.rglob("results_*.json"):  # as if run on another machine, from a folder not here
        doc = json.loads(path.read_text())
        doc["config"]["model_args"]["pretrained"] = "/cluster/ckpts/" + doc["config"]["model_args"]["pretrained"]
        path.write_text(json.dumps(doc))
    table = lm.import_runs([moved], ladder_facts())
    assert "nll_token" not in set(table.metric) and {"nll", "bpb", "prob_correct"} <= set(table.metric)
    assert "nll_token left out" in capsys.readouterr().err


# --------------------------------------------------------------------- a hand-made lm-eval folder
DOCS = [  # (choices, gold, log-likelihoods)
    (["red", "blue", "green"], 1, [-3.0, -1.0, -2.0]),
    (["yes", "no"], 0, [-0.5, -1.5]),
    (["a", "b", "c", "d"], 2, [-1.0, -2.0, -3.0, -4.0]),
]


def fake_run(folder: Path, model="my-org/my-1b", params=1.2e9, samples=True, stamp="2026-01-01T00-00-00.000001",
             revision="step3000", task="my_mc") -> tuple[Path, Path]:
    """What ``lm_eval --log_samples --output_path folder`` writes for one checkpoint and one
    multiple-choice task (lm-eval 0.4.13's layout and field types, values made up)."""
    run = folder / model.replace("/", "__")
    run.mkdir(parents=True, exist_ok=True)
    acc = [float(int(np.argmax(ll)) == gold) for _, gold, ll in DOCS]
    config = {"model": "hf", "model_args": {"pretrained": model, "revision": revision}, "limit": None}
    if params:
        config["model_num_parameters"] = params
    results = {"results": {task: {"alias": task, "acc,none": float(np.mean(acc)), "acc_stderr,none": 0.3}},
               "configs": {task: {"task": task, "output_type": "multiple_choice", "target_delimiter": " ",
                                  "metric_list": [{"metric": "acc", "aggregation": "mean"}]}},
               "versions": {task: 1.0}, "n-shot": {task: 0},
               "n-samples": {task: {"original": len(DOCS), "effective": len(DOCS)}}, "config": config}
    path = run / f"results_{stamp}.json"
    path.write_text(json.dumps(results))
    lines = []
    for i, (choices, gold, ll) in enumerate(DOCS):
        lines.append(json.dumps({
            "doc_id": i, "doc": {"q": f"q{i}"}, "target": str(gold),
            "arguments": {f"gen_args_{j}": {"arg_0": f"q{i}", "arg_1": f" {c}"} for j, c in enumerate(choices)},
            "resps": [[[str(x), "False"]] for x in ll], "filtered_resps": [[str(x), "False"] for x in ll],
            "filter": "none", "metrics": ["acc"], "acc": acc[i]}))
    sample_path = run / f"samples_{task}_{stamp}.jsonl"
    if samples:
        sample_path.write_text("\n".join(lines) + "\n")
    return path, sample_path


def test_a_hand_made_folder_gives_losses_and_chance_by_hand(tmp_path):
    fake_run(tmp_path / "runs")
    table = lm.import_runs([tmp_path / "runs"], lm.Facts(family="mine", tokens=2e10))
    got = {m: v for m, v in zip(table.metric, table.value)}
    nll = [-ll[gold] for _, gold, ll in DOCS]
    assert got["nll"] == pytest.approx(np.mean(nll))
    assert got["nll_char"] == pytest.approx(np.mean([n / len(c[g]) for n, (c, g, _) in zip(nll, DOCS)]))
    assert got["bpb"] == pytest.approx(np.mean([n / len(c[g]) / math.log(2) for n, (c, g, _) in zip(nll, DOCS)]))
    assert got["prob_correct"] == pytest.approx(np.mean([math.exp(ll[g]) / sum(map(math.exp, ll)) for _, g, ll in DOCS]))
    (chance,) = table.loc[table.metric == "acc", "chance"]
    assert chance == pytest.approx(np.mean([1 / 3, 1 / 2, 1 / 4]))
    assert set(table.step) == {3000} and set(table.params) == {1.2e9} and set(table.tokens) == {2e10}


def test_runs_read_in_several_processes_give_the_same_table_and_notes(tmp_path):
    for k in range(4):
        fake_run(tmp_path / "runs", model=f"my-org/m{k}", revision=f"step{1000 * (k + 1)}", samples=k != 2)
    said = {n: [] for n in (1, 3)}
    tables = {n: lm.import_runs([tmp_path / "runs"], lm.Facts(family="mine", tokens_per_step=1e6),
                                log=said[n].append, processes=n) for n in (1, 3)}
    pd.testing.assert_frame_equal(tables[1], tables[3])
    assert said[1] == said[3] and said[1]  # the notes (no tokenizer here) come back from the workers, in order
    assert tables[1]["model"].nunique() == 4
    _, samples = fake_run(tmp_path / "runs", model="my-org/m9", revision="step9000")
    samples.write_text(samples.read_text()[:-40])  # a worker's error comes back as the one-line error
    with pytest.raises(lm.LmEvalError, match=r"m9.*line \d+ is not an lm-eval sample"):
        lm.import_runs([tmp_path / "runs"], lm.Facts(family="mine", tokens_per_step=1e6), processes=3)


def test_processes_below_one_is_refused_in_one_line(tmp_path, capsys):
    fake_run(tmp_path / "runs")
    out = tmp_path / "t.csv"
    assert ingest_stage.main(["lm-eval", str(tmp_path / "runs"), "--family", "mine", "--tokens", "2e10",
                              "--processes", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--processes 0: give 1 or more" in err[0] and not out.exists()


def test_a_local_folder_named_stepN_is_that_checkpoint_of_its_parent(tmp_path):
    ckpt = tmp_path / "runs" / "my-1b" / "step2000"
    ckpt.mkdir(parents=True)
    fake_run(tmp_path / "out", model=str(ckpt), revision=None)
    table = lm.import_runs([tmp_path / "out"], lm.Facts(family="mine", tokens_per_step=1e6))
    assert set(table.model) == {str(ckpt.parent)} and set(table.step) == {2000} and set(table.tokens) == {2e9}


def _bad(tmp_path, make, argv_extra=(), capsys=None):
    """Run the CLI on a folder ``make`` broke: exit 2, one line naming a file, no output file."""
    folder = tmp_path / "runs"
    make(folder)
    out = tmp_path / "out.csv"
    rc = ingest_stage.main(["lm-eval", str(folder), "--family", "mine", "--tokens", "2e10", "--out", str(out),
                      *argv_extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert not out.exists() and not list(tmp_path.glob(".out.csv.*"))
    return err


def _no_results(folder):
    path, _ = fake_run(folder)
    doc = json.loads(path.read_text())
    del doc["results"]
    path.write_text(json.dumps(doc))


def _fewer_documents(folder):
    _, samples = fake_run(folder)
    samples.write_text("".join(samples.read_text().splitlines(keepends=True)[:2]))


def _other_runs_samples(folder):
    _, samples = fake_run(folder)
    lines = [json.loads(x) for x in samples.read_text().splitlines()]
    lines[0]["acc"], lines[1]["acc"] = 1.0 - lines[0]["acc"], 1.0 - lines[1]["acc"]
    samples.write_text("".join(json.dumps(x) + "\n" for x in lines))


def _edited_target(folder):
    _, samples = fake_run(folder)
    lines = [json.loads(x) for x in samples.read_text().splitlines()]
    lines[0]["target"] = "2"  # the logged acc (1: the argmax, choice 1) no longer follows
    samples.write_text("".join(json.dumps(x) + "\n" for x in lines))


def _truncated(folder):
    _, samples = fake_run(folder)
    samples.write_text(samples.read_text()[:-40])


def _orphan(folder):
    _, samples = fake_run(folder)  # and a samples file of a run that wrote no results JSON
    (samples.parent / samples.name.replace("2026-01-01", "2026-01-02")).write_text(samples.read_text())


def _malformed(folder):
    path, _ = fake_run(folder)
    path.write_text(path.read_text()[:50])


def _partial_samples(folder):
    path, _ = fake_run(folder)
    doc = json.loads(path.read_text())
    doc["results"]["other_mc"] = doc["results"]["my_mc"]
    doc["configs"]["other_mc"] = doc["configs"]["my_mc"]
    path.write_text(json.dumps(doc))


def _no_params(folder):
    fake_run(folder, params=None)


def _edited(section, value):
    def make(folder):
        path, _ = fake_run(folder)
        doc = json.loads(path.read_text())
        doc[section]["my_mc"] = value
        path.write_text(json.dumps(doc))
    return make


def _stray_samples(folder):
    _, samples = fake_run(folder)  # the run's only samples file is of a task its results do not hold
    samples.rename(samples.parent / samples.name.replace("my_mc", "other_mc"))


@pytest.mark.parametrize("make, words", [
    (_no_results, ["results_2026-01-01T00-00-00.000001.json", "no 'results'"]),
    (_fewer_documents, ["samples_my_mc_", "2 documents", "says 3"]),
    (_other_runs_samples, ["samples_my_mc_", "not those of this run"]),
    (_edited_target, ["samples_my_mc_", "document 0", "does not follow"]),
    (_truncated, ["samples_my_mc_", "line 3", "partial"]),
    (_orphan, ["samples_my_mc_2026-01-02", "no results JSON"]),
    (_malformed, ["results_2026-01-01", "malformed JSON"]),
    (_partial_samples, ["results_2026-01-01", "none for other_mc"]),
    (_no_params, ["results_2026-01-01", "no parameter count", "--params N"]),
    (_edited("results", [1, 2]), ["results_2026-01-01", "results.my_mc is not an object of metrics"]),
    (_edited("configs", "multiple_choice"), ["results_2026-01-01", "configs.my_mc is not an object"]),
    (_stray_samples, ["results_2026-01-01", "samples files for other_mc", "do not hold"]),
])
def test_bad_folders_stop_with_one_line_naming_the_file(make, words, tmp_path, capsys):
    err = _bad(tmp_path, make, capsys=capsys)
    for w in words:
        assert w in err, err


def test_an_existing_table_is_left_alone_on_error(tmp_path, capsys):
    out = tmp_path / "out.csv"
    out.write_text("before\n")
    _no_results(tmp_path / "runs")
    assert ingest_stage.main(["lm-eval", str(tmp_path / "runs"), "--family", "mine", "--tokens", "1", "--out", str(out)]) == 2
    assert out.read_text() == "before\n"


def test_params_and_tokens_options(tmp_path, capsys):
    fake_run(tmp_path / "runs", params=None)
    table = lm.import_runs([tmp_path / "runs"], lm.Facts(family="mine", tokens_per_param=20, params={"*": 1e9}))
    assert set(table.params) == {1e9} and set(table.tokens) == {2e10}
    named = lm.import_runs([tmp_path / "runs"], lm.Facts(family="mine", tokens=1e9,
                                                          params=lm.parse_params("my-org/my-1b=3e9")))
    assert set(named.params) == {3e9}
    for facts, words in [(lm.Facts(tokens=1e9, params={"*": 1e9}), "--family"),
                         (lm.Facts(family="mine", params={"*": 1e9}), "--tokens D"),
                         (lm.Facts(family="mine", tokens=1, params={"other/model": 1e9}), "no results file holds")]:
        with pytest.raises(lm.LmEvalError, match=words):
            lm.import_runs([tmp_path / "runs"], facts)
    with pytest.raises(lm.LmEvalError, match="one of --tokens"):
        lm.Facts(tokens=1, tokens_per_step=2)


def test_two_runs_of_one_checkpoint_name_both_files(tmp_path):
    a, _ = fake_run(tmp_path / "runs")
    b, _ = fake_run(tmp_path / "runs", stamp="2026-01-03T00-00-00.000001")
    with pytest.raises(lm.LmEvalError, match=f"{a.name}.* and .*{b.name} both hold"):
        lm.import_runs([tmp_path / "runs"], lm.Facts(family="mine", tokens=1))
    # the fix the message asks for: one run's results file, named alone (the other run's samples are its own)
    table = lm.import_runs([b], lm.Facts(family="mine", tokens=1))
    assert set(table["source"]) == {str(b)} and "nll" in set(table["metric"])


def test_a_stepN_folder_of_a_machine_that_is_not_this_one_is_still_a_step(tmp_path):
    for step in (1000, 2000):  # lm-eval ran on another machine: ckpts/my-1b/stepN is not here
        fake_run(tmp_path / "out", model=f"ckpts/my-1b/step{step}", revision=None,
                 stamp=f"2026-01-0{step // 1000}T00-00-00.000001")
    table = lm.import_runs([tmp_path / "out"], lm.Facts(family="mine", tokens_per_step=1e6))
    assert set(table.model) == {"ckpts/my-1b"} and set(table.step) == {1000, 2000}


def test_without_samples_the_accuracies_come_alone(tmp_path):
    fake_run(tmp_path / "runs", samples=False)
    table = lm.import_runs([tmp_path / "runs"], lm.Facts(family="mine", tokens=1, chance={"my_mc": 0.3}))
    assert list(table.metric) == ["acc"] and list(table.chance) == [0.3]


def test_a_params_yaml_entry_is_checked(tmp_path):
    from pipeline import config

    good = {"collect": {"lm_eval_dirs": ["data/lm_eval/a", {"path": "b", "family": "f", "tokens_per_step": 4.0e+6,
                                                            "chance": {"t": 0.25}, "params": {"m": 1.0e+9}}]}}
    config.check(good)
    for bad, words in [({"path": "b", "famliy": "f"}, "did you mean 'family'"), ({"family": "f"}, "missing 'path'"),
                       ({"path": "b", "chance": {"t": 2}}, "chance.t")]:
        with pytest.raises(config.ConfigError, match=words):
            config.check({"collect": {"lm_eval_dirs": [bad]}})


def test_collect_names_the_params_key_of_a_missing_folder_and_warns_of_one_dvc_does_not_watch(tmp_path, capsys):
    from pipeline.errors import CapcastError
    from pipeline.stages.collect import lm_eval_rows

    with pytest.raises(CapcastError, match=r"collect.lm_eval_dirs\[1\]: .*nope: no such folder"):
        lm_eval_rows([str(tmp_path), str(tmp_path / "nope")])  # the first exists (and is checked first)
    fake_run(tmp_path / "runs")
    (table,) = lm_eval_rows([{"path": str(tmp_path / "runs"), "family": "mine", "tokens": 1}])
    assert len(table) and "outside data/lm_eval/, which dvc.yaml watches" in capsys.readouterr().err
