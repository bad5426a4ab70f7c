"""Evaluate stage, offline, on tiny locally built models: the real lm-eval path end to end.

What must hold: accuracies are lm-eval's own numbers for the same run; task losses equal an
independent computation from the model's logits; re-runs skip; crashes resume; bad inputs
give one-line errors and leave earlier results alone; collect folds the rows in.
"""
import hashlib
import json
import math
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest

from pipeline import scores
from pipeline.errors import CapcastError
from pipeline.sources import evaluation as ev
from pipeline.sources import families
from pipeline.sources import lm_eval_run as lmrun
from pipeline.sources import taskloss
from pipeline.stages import evaluate as evaluate_stage
from tests.paths import ROOT
from tests.tiny_models import TASKS_DIR, TOKENS_PER_STEP

MC, LASTWORD = "capcast_tiny_mc", "capcast_tiny_lastword"


def zoo_entries(zoo) -> list[dict]:
    return [
        {"model": "capcast-test/tiny-neox-s", "family": "tiny-neox", "revisions": ["step4", "step40"],
         "tokens_per_step": TOKENS_PER_STEP},
        {"model": "capcast-test/tiny-neox-m", "family": "tiny-neox", "revisions": ["step40"],
         "tokens_per_step": TOKENS_PER_STEP},
        {"model": str(zoo.local["tiny-opt-s"]), "name": "tiny-opt-s", "family": "tiny-opt", "tokens": 40 * TOKENS_PER_STEP},
        {"model": str(zoo.local["tiny-opt-m"]), "name": "tiny-opt-m", "family": "tiny-opt", "tokens": 40 * TOKENS_PER_STEP},
    ]


def zoo_settings(zoo, out_dir, **kw) -> ev.Settings:
    return ev.Settings(tasks=(MC, LASTWORD), batch_size=8, device="cpu", include_path=str(zoo.include_path),
                       out_dir=Path(out_dir), **kw)


@dataclass
class Spy:
    """Counts model loads and keeps what lm-eval returned, per checkpoint and task."""
    loads: list = field(default_factory=list)
    results: dict = field(default_factory=dict)
    fail_on_call: int | None = None  # raise ``error`` on this lm-eval call (1-based)
    error: BaseException = KeyboardInterrupt()
    calls: int = 0

    def install(self, mp):
        load_lm, run_lm_eval = lmrun.load_lm, lmrun.run_lm_eval

        def counting_load(ck, settings):
            self.loads.append(ck.label)
            return load_lm(ck, settings)

        def recording_run(lm, task_dict, settings):
            self.calls += 1
            if self.calls == self.fail_on_call:
                raise self.error
            results = run_lm_eval(lm, task_dict, settings)
            for name in results["results"]:
                self.results[(self.loads[-1], name)] = results
            return results

        mp.setattr(lmrun, "load_lm", counting_load)
        mp.setattr(lmrun, "run_lm_eval", recording_run)
        return self


def file_hashes(directory: Path) -> dict:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def first_run(tiny_zoo, tmp_path_factory):
    """All five tiny checkpoints x both tasks, evaluated once into a fresh folder."""
    out = tmp_path_factory.mktemp("evals")
    with pytest.MonkeyPatch.context() as mp:
        spy = Spy().install(mp)
        outcome = lmrun.evaluate(ev.checkpoints_from_entries(zoo_entries(tiny_zoo)), zoo_settings(tiny_zoo, out))
    assert outcome.evaluated == 10 and outcome.skipped == 0
    return out, spy


def rows_of(out, label):
    rows = ev.load_eval_rows(out)
    name, _, rev = label.partition("@")
    step = families.parse_step(rev) if rev else None
    pick = rows[(rows.model == name) & (rows.step.isna() if step is None else rows.step == step)]
    return {(r.task, r.metric): r for r in pick.itertuples()}


# ------------------------------------------------------------------------- numbers are right
def records(out: Path):
    """(path, record, checkpoint label) of every evaluation record in ``out``."""
    for path in sorted(out.glob("*.json")):
        record = json.loads(path.read_text())
        yield path, record, record["model"] + ("" if record["revision"] == "main" else f"@{record['revision']}")


@pytest.mark.slow
def test_rows_are_lm_evals_own_aggregates(first_run):
    out, spy = first_run
    rows = ev.load_eval_rows(out)
    assert set(rows.suite) == {ev.SUITE} and len(spy.loads) == 5
    for path, _, label in records(out):
        mine = rows[rows.source == str(path)]
        for task in (MC, LASTWORD):
            res = spy.results[(label, task)]["results"][task]
            for metric in ["acc", "acc_norm"] if task == MC else ["acc", "perplexity"]:
                (value,) = mine[(mine.task == task) & (mine.metric == metric)].value
                assert value == res[f"{metric},none"], (label, task, metric)
        assert set(mine.num_fewshot) == {0}
        # chance as data: 1/4 for the four-way task's accuracies, 0 for the last word (greedy match)
        assert set(mine[(mine.task == MC) & mine.metric.isin(["acc", "acc_norm", "prob_correct"])].chance) == {0.25}
        assert set(mine[(mine.task == LASTWORD) & (mine.metric == "acc")].chance) == {0.0}
        assert mine[mine.metric.isin(["bpb", "nll", "perplexity"])].chance.isna().all()


def reference(zoo_model: str, revision: str) -> dict:
    """Every metric of both tasks, straight from the HF model's logits (no lm-eval involved)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(zoo_model, revision=revision)
    model = AutoModelForCausalLM.from_pretrained(zoo_model, revision=revision, dtype=torch.float32).eval()

    def score(context, continuation):
        ids = tok(context + continuation)["input_ids"]
        n_ctx = len(tok(context)["input_ids"])
        with torch.no_grad():
            logp = model(torch.tensor([ids])).logits[0].log_softmax(-1)
        targets = ids[n_ctx:]
        picked = logp[n_ctx - 1:len(ids) - 1]
        ll = float(picked[torch.arange(len(targets)), targets].sum())
        greedy = bool((picked.argmax(-1) == torch.tensor(targets)).all())
        return ll, len(targets), greedy

    def losses(ll, ntok, text):
        return {"nll": -ll, "nll_token": -ll / ntok, "nll_char": -ll / len(text),
                "bpb": -ll / len(text.encode()) / math.log(2)}

    per_doc = {MC: [], LASTWORD: []}
    for doc in map(json.loads, (TASKS_DIR / "tiny_mc.jsonl").read_text().splitlines()):
        scored = [score(doc["question"], " " + c) for c in doc["choices"]]
        lls = np.array([s[0] for s in scored])
        gold = doc["answer"]
        lens = np.array([len(c) for c in doc["choices"]], dtype=float)
        per_doc[MC].append({
            "acc": float(lls.argmax() == gold), "acc_norm": float((lls / lens).argmax() == gold),
            "prob_correct": float(np.exp(lls[gold] - np.logaddexp.reduce(lls))),
            **losses(lls[gold], scored[gold][1], doc["choices"][gold])})
    for doc in map(json.loads, (TASKS_DIR / "tiny_lastword.jsonl").read_text().splitlines()):
        *words, last = doc["text"].split(" ")
        ll, ntok, greedy = score(" ".join(words), " " + last)
        per_doc[LASTWORD].append({"acc": float(greedy), "ll": ll, **losses(ll, ntok, last)})
    out = {(task, m): float(np.mean([d[m] for d in docs])) for task, docs in per_doc.items() for m in docs[0]}
    out[(LASTWORD, "perplexity")] = math.exp(-out.pop((LASTWORD, "ll")))
    return out


@pytest.mark.slow
def test_task_losses_equal_an_independent_computation_from_logits(first_run, tiny_zoo):
    out, _ = first_run
    for _, record, label in records(out):
        expected = reference(record["pretrained"], record["revision"])
        got = rows_of(out, label)
        assert {k for k in got} == set(expected), label
        for key, value in expected.items():
            assert got[key].value == pytest.approx(value, rel=1e-4, abs=1e-6), (label, key)
    # the tiny world is learnable: more training and a bigger model give lower task loss
    bpb = {label: rows_of(out, label)[(MC, "bpb")].value for label in
           ("capcast-test/tiny-neox-s@step4", "capcast-test/tiny-neox-s@step40")}
    assert bpb["capcast-test/tiny-neox-s@step40"] < bpb["capcast-test/tiny-neox-s@step4"]


@pytest.mark.slow
def test_records_hold_counted_params_tokens_and_every_choice(first_run, tiny_zoo):
    out, spy = first_run
    for _, record, label in records(out):
        hidden = 32 if record["model"].endswith("-s") else 64
        embedding = record["params"] - record["params_non_embedding"]
        if record["family"] == "tiny-neox":  # untied input and output embeddings, rotary positions
            assert embedding == 2 * 320 * hidden
            assert record["tokens"] == record["step"] * TOKENS_PER_STEP
        else:  # OPT: tied head, learned positions (2 offset rows)
            assert embedding == 320 * hidden + (256 + 2) * hidden
            assert record["tokens"] == 40 * TOKENS_PER_STEP
        assert record["evaluations"][f"{MC}|0shot"]["settings"]["lm_eval_version"] == ev.lm_eval_version()
        item = record["evaluations"][f"{MC}|0shot"]["tasks"][MC]
        assert item["version"] == 1.0
        samples_path = out / item["samples"]
        assert hashlib.sha256(samples_path.read_bytes()).hexdigest() == item["samples_sha256"]
        docs = ev.read_samples(samples_path)
        assert len(docs) == 15 and all(len(d["ll"]) == 4 and len(d["tokens"]) == 4 for d in docs)
        logged = spy.results[(label, MC)]["samples"][MC]
        assert [d["ll"] for d in docs] == [[r[0] for r in s["filtered_resps"]] for s in logged]
    rows = ev.load_eval_rows(out)
    assert np.allclose(rows.compute_flops, 6 * rows.params * rows.tokens)


# ------------------------------------------------------------------ incremental and resumable
@pytest.mark.slow
def test_rerun_loads_nothing_whatever_the_batch_size(first_run, tiny_zoo, monkeypatch):
    out, _ = first_run
    before = file_hashes(out)
    spy = Spy().install(monkeypatch)
    outcome = lmrun.evaluate(ev.checkpoints_from_entries(zoo_entries(tiny_zoo)),
                          replace(zoo_settings(tiny_zoo, out), batch_size=3))
    assert spy.loads == [] and spy.calls == 0
    assert outcome.skipped == 10 and outcome.evaluated == 0
    assert file_hashes(out) == before


@pytest.mark.slow
def test_one_checkpoint_alone_gives_the_same_bytes(first_run, tiny_zoo, tmp_path):
    out, _ = first_run
    ck = [c for c in ev.checkpoints_from_entries(zoo_entries(tiny_zoo)) if c.label == "capcast-test/tiny-neox-m@step40"]
    lmrun.evaluate(ck, zoo_settings(tiny_zoo, tmp_path))
    alone = {k: v for k, v in file_hashes(tmp_path).items() if not k.startswith("timing")}
    together = file_hashes(out)
    assert alone and all(together[k] == v for k, v in alone.items())


@pytest.mark.slow
def test_adding_a_model_to_params_evaluates_only_that_model(first_run, tiny_zoo, tmp_path, monkeypatch):
    out = tmp_path / "evals"
    shutil.copytree(first_run[0], out)
    entries = zoo_entries(tiny_zoo) + [{"model": "capcast-test/tiny-neox-m", "family": "tiny-neox",
                                        "revisions": ["step4"], "tokens_per_step": TOKENS_PER_STEP}]
    params = tmp_path / "params.yaml"
    params.write_text(json.dumps({"evaluate": {  # JSON is YAML
        "models": entries, "tasks": [MC, LASTWORD], "batch_size": 16, "device": "cpu",
        "include_path": str(tiny_zoo.include_path), "out_dir": str(out)}}))
    spy = Spy().install(monkeypatch)
    assert evaluate_stage.main(["--from-params", "--params", str(params)]) == 0
    assert spy.loads == ["capcast-test/tiny-neox-m@step4"] and spy.calls == 2
    assert (out / "capcast-test__tiny-neox-m@step4.json").is_file()


@pytest.mark.slow
def test_an_interrupted_run_keeps_finished_tasks_and_resumes(tiny_zoo, tmp_path, monkeypatch, capsys):
    argv = ["--model", str(tiny_zoo.local["tiny-opt-s"]), "--name", "tiny-opt-s", "--family", "tiny-opt",
            "--tokens", "20480", "--tasks", f"{MC},{LASTWORD}", "--include-path", str(tiny_zoo.include_path),
            "--batch-size", "8", "--device", "cpu", "--out", str(tmp_path)]
    with monkeypatch.context() as mp:
        spy = Spy(fail_on_call=2).install(mp)
        assert evaluate_stage.main(argv) == 130
    assert "interrupted" in capsys.readouterr().err
    record = json.loads((tmp_path / "tiny-opt-s@main.json").read_text())
    assert list(record["evaluations"]) == [f"{MC}|0shot"]
    finished = record["evaluations"][f"{MC}|0shot"]

    spy = Spy().install(monkeypatch)
    assert evaluate_stage.main(argv) == 0
    record = json.loads((tmp_path / "tiny-opt-s@main.json").read_text())
    assert spy.calls == 1 and list(spy.results) == [("tiny-opt-s", LASTWORD)]
    assert record["evaluations"][f"{MC}|0shot"] == finished
    assert sorted(record["evaluations"]) == [f"{LASTWORD}|0shot", f"{MC}|0shot"]


@pytest.mark.slow
def test_a_task_that_fails_midway_keeps_the_finished_one(tiny_zoo, tmp_path, monkeypatch, capsys):
    argv = ["--model", str(tiny_zoo.local["tiny-opt-m"]), "--name", "tiny-opt-m", "--family", "tiny-opt",
            "--tokens", "20480", "--tasks", f"{MC},{LASTWORD}", "--include-path", str(tiny_zoo.include_path),
            "--batch-size", "8", "--device", "cpu", "--out", str(tmp_path)]
    Spy(fail_on_call=2, error=RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore")).install(monkeypatch)
    assert evaluate_stage.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"error: tiny-opt-m: {LASTWORD}: lm-eval failed (RuntimeError: CUDA out of memory.")
    assert "lower --batch-size or use --dtype bfloat16" in err and "finished results are kept" in err
    record = json.loads((tmp_path / "tiny-opt-m@main.json").read_text())
    assert list(record["evaluations"]) == [f"{MC}|0shot"]


# ------------------------------------------------------------------------------ bad inputs
def broken_model(zoo, tmp_path) -> str:
    folder = tmp_path / "broken"
    shutil.copytree(zoo.local["tiny-opt-s"], folder)
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    return str(folder)


BAD_INPUTS = {
    "missing folder": (lambda zoo, tmp: ["--model", str(tmp / "no-such-model"), "--family", "x", "--tokens", "1"],
                       "no model folder at"),
    "load fails": (lambda zoo, tmp: ["--model", broken_model(zoo, tmp), "--family", "x", "--tokens", "1"],
                   "cannot load"),
    "unknown task": (lambda zoo, tmp: ["--model", "capcast-test/tiny-neox-s", "--revision", "step40", "--family", "x",
                                       "--tokens", "1", "--tasks", "capcast_tiny_mcq"],
                     "did you mean 'capcast_tiny_mc'"),
    "missing revision": (lambda zoo, tmp: ["--model", "capcast-test/tiny-neox-s", "--revision", "step999",
                                           "--family", "x", "--tokens", "1"],
                         "revision 'step999' is not in the local Hugging Face cache"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_give_one_line_and_keep_earlier_results(case, first_run, tiny_zoo, tmp_path, capsys):
    out = tmp_path / "evals"
    shutil.copytree(first_run[0], out)
    before = file_hashes(out)
    make_args, message = BAD_INPUTS[case]
    argv = make_args(tiny_zoo, tmp_path)
    if "--tasks" not in argv:
        argv += ["--tasks", MC]
    rc = evaluate_stage.main(argv + ["--include-path", str(tiny_zoo.include_path), "--device", "cpu", "--batch-size", "8",
                         "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("error: ") and message in err[-1], err[-1]
    assert "Traceback" not in "\n".join(err)
    assert file_hashes(out) == before


@pytest.mark.slow
def test_a_failed_checkpoint_does_not_stop_the_others(tiny_zoo, tmp_path):
    entries = [{"model": broken_model(tiny_zoo, tmp_path), "name": "broken", "family": "x", "tokens": 1},
               {"model": str(tiny_zoo.local["tiny-opt-m"]), "name": "tiny-opt-m", "family": "tiny-opt", "tokens": 1}]
    settings = replace(zoo_settings(tiny_zoo, tmp_path / "evals"), tasks=(LASTWORD,))
    with pytest.raises(CapcastError, match=r"^broken: cannot load it .*finished results are kept"):
        lmrun.evaluate(ev.checkpoints_from_entries(entries), settings)
    assert (tmp_path / "evals" / "tiny-opt-m@main.json").is_file()


@pytest.mark.parametrize("entry, message", [
    ({"model": "someone/model-x", "family": "x"}, "give its training tokens"),
    ({"model": "someone/model-x", "tokens": 1}, "give 'family"),
    ({"model": "someone/model-x", "family": "x", "revisons": ["step1"]}, "unknown key(s) ['revisons']"),
    ({"model": "someone/model-x", "family": "x", "revisions": ["a", "b"], "tokens": 5}, "one number for several"),
    ({"model": "someone/model-x", "family": "x", "revisions": ["final"], "tokens_per_step": 5}, "stepN"),
    ({"model": "EleutherAI/pythia-70m", "revisions": ["v0"]}, "cannot tell the tokens"),
    ({"model": "./some/folder", "family": "x", "tokens": 1, "revisions": ["step3"]}, "local folder"),
])
def test_config_errors_name_the_entry_and_the_fix(entry, message):
    with pytest.raises(CapcastError, match="evaluate.models\\[0\\]") as err:
        ev.checkpoints_from_entries([entry])
    assert message in str(err.value)


@pytest.mark.parametrize("argv, words", [
    (["--model", "someone/model-x", "--tokens", "1", "--tasks", MC], "give --family NAME"),
    (["--model", "someone/model-x", "--family", "x", "--tasks", MC], "give its training tokens: --tokens D or"),
    (["--model", "someone/model-x", "--family", "x", "--tokens=-1", "--tasks", MC], "--tokens: must be"),
    (["--model", "someone/model-x", "--family", "x", "--tokens", "1", "--tasks", MC, "--limit=-3"], "--limit: must be"),
    (["--model", "someone/model-x", "--family", "x", "--tokens", "1", "--tasks", MC, "--include-path", "/nope"],
     "--include-path: /nope is not a folder"),
    (["--model", "someone/model-x", "--family", "x", "--tokens", "1", "--tasks", MC, "--dtype", "float99"],
     "--dtype: 'float99' is not one of auto"),  # before any model loads
])
def test_command_line_errors_speak_of_flags_not_params_keys(argv, words, capsys):
    rc = evaluate_stage.main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and words in err, err
    assert "evaluate." not in err and "[0]" not in err, err


def test_registry_models_need_no_facts_in_params():
    cks = ev.checkpoints_from_entries([{"model": "EleutherAI/pythia-160m", "revisions": ["step3000", "main"]},
                                       "facebook/opt-125m"])
    assert [(c.family, c.step, c.tokens) for c in cks] == [
        ("pythia", 3000, 3000 * families.PYTHIA_TOKENS_PER_STEP),
        ("pythia", None, 143_000 * families.PYTHIA_TOKENS_PER_STEP),
        ("opt", None, families.OPT_TOKENS)]
    assert cks[0].slug == "EleutherAI__pythia-160m@step3000"
    with pytest.raises(CapcastError, match="same \\(model, step\\)"):
        ev.checkpoints_from_entries([{"model": "facebook/opt-125m", "revisions": ["main", "abc1234"]}])


def test_params_yaml_defaults_need_no_network(tmp_path, capsys):
    section = __import__("yaml").safe_load((ROOT / "params.yaml").read_text())["evaluate"]
    settings = ev.settings_from_params(section)
    assert section["models"] == [] and settings.tasks == ev.DEFAULT_TASKS
    params = tmp_path / "params.yaml"
    params.write_text(json.dumps({"evaluate": {**section, "out_dir": str(tmp_path / "evals")}}))
    assert evaluate_stage.main(["--from-params", "--params", str(params)]) == 0
    assert (tmp_path / "evals").is_dir() and "no checkpoints to evaluate" in capsys.readouterr().err
    empty = ev.load_eval_rows(tmp_path / "evals")
    assert empty.empty and list(empty.columns) == list(scores.ALL_COLUMNS)


# ------------------------------------------------------------------------------- pieces
def test_count_params_reproduces_pythias_published_counts():
    import torch
    from transformers import AutoModelForCausalLM, GPTNeoXConfig

    config = GPTNeoXConfig(vocab_size=50304, hidden_size=512, num_hidden_layers=6, num_attention_heads=8,
                           intermediate_size=2048, max_position_embeddings=2048, rotary_pct=0.25)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    _, facts = families.lookup("EleutherAI/pythia-70m")
    assert lmrun.count_params(model) == (facts.params, facts.params_non_embedding)


class FakeTask:
    """Just enough of an lm-eval Task for taskloss."""
    OUTPUT_TYPE = "multiple_choice"
    multiple_input = 0

    def doc_to_choice(self, doc):
        return doc["choices"]


def test_task_loss_of_one_document_by_hand():
    # the target logged as the choice's text, as some task YAMLs give it
    sample = {"doc_id": 0, "doc": {"choices": ["yes", "nö"]}, "target": "nö",
              "arguments": [("Q:", " yes"), ("Q:", " nö")], "filtered_resps": [(-1.0, True), (-3.0, False)]}
    spec = taskloss.TaskSpec("multiple_choice", " ")
    doc = taskloss.doc_scores(sample, spec, {("Q:", " nö"): 2},
                              lambda s, n: taskloss.gold_indices(FakeTask(), s, n))
    assert doc.gold == [1] and doc.chars == [3, 2] and doc.bytes == [3, 3]
    got = taskloss.per_doc_losses(doc)
    assert got["nll"] == 3.0 and got["nll_token"] == 1.5 and got["nll_char"] == 1.5
    assert got["bpb"] == pytest.approx(3.0 / 3 / math.log(2))
    assert got["prob_correct"] == pytest.approx(math.exp(-3) / (math.exp(-1) + math.exp(-3)))
    agg = taskloss.aggregate([doc, replace(doc, doc_id=1, gold=[])])  # an out-of-range label is left out
    assert agg["nll"] == {"value": 3.0, "stderr": None, "n": 1}


# ------------------------------------------------------------------------ evaluate -> collect -> fit
@pytest.mark.slow
def test_collect_folds_evaluations_beside_published_rows_and_a_law_fits(first_run):
    from pipeline.stages.collect import collect

    out, _ = first_run
    published = ROOT / "data" / "published" / "scores.csv"
    table = collect(published, out)
    mine = table[table.suite == ev.SUITE]
    assert len(mine) == len(ev.load_eval_rows(out)) and len(table) > len(mine)
    assert mine.source.str.endswith(".json").all()
    # a capcast law fitted on the evaluated rows: task loss (bpb) linear in log compute, GPT-NeoX checkpoints
    from pipeline.laws import make

    neox = mine[(mine.family == "tiny-neox") & (mine.task == MC) & (mine.metric == "bpb")]
    law = make("loglinear", target=f"{MC}:bpb", skip_fraction=0.0, n_bootstrap=20).fit(neox)
    pred = law.predict(neox)
    assert len(neox) == 3 and np.isfinite(pred["predicted"]).all()
    assert (pred["lower"] <= pred["predicted"]).all() and (pred["predicted"] <= pred["upper"]).all()
    first, last = pred.sort_values("step")["predicted"].iloc[[0, -1]]
    assert last < first  # training longer lowers the task loss


@pytest.mark.slow
def test_numbers_are_those_of_a_plain_simple_evaluate_call_few_shot_too(tiny_zoo, tmp_path):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    model = str(tiny_zoo.local["tiny-opt-s"])
    entries = [{"model": model, "name": "tiny-opt-s", "family": "tiny-opt", "tokens": 1}]
    lmrun.evaluate(ev.checkpoints_from_entries(entries), replace(zoo_settings(tiny_zoo, tmp_path), tasks=(MC,),
                                                              num_fewshot=2))
    plain = simple_evaluate(model="hf", model_args={"pretrained": model}, tasks=[MC], num_fewshot=2,
                            batch_size=8, device="cpu", bootstrap_iters=0, log_samples=True,
                            task_manager=TaskManager(include_defaults=False, include_path=str(tiny_zoo.include_path)))
    item = json.loads((tmp_path / "tiny-opt-s@main.json").read_text())["evaluations"][f"{MC}|2shot"]["tasks"][MC]
    assert item["n_shot"] == 2
    assert {m: v["value"] for m, v in item["metrics"].items()} == {
        m: plain["results"][MC][f"{m},none"] for m in ("acc", "acc_norm")}
    docs = ev.read_samples(tmp_path / item["samples"])
    assert [d["prompt_hash"] for d in docs] == [s["prompt_hash"] for s in plain["samples"][MC]]
    assert [d["ll"] for d in docs] == [[r[0] for r in s["filtered_resps"]] for s in plain["samples"][MC]]


def test_a_revision_missing_on_the_hub_is_named_with_close_ones(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(lmrun, "hub_refs", lambda repo: ["main", "step1000", "step3000", "step143000"])
    (ck,) = ev.checkpoints_from_entries([{"model": "EleutherAI/pythia-70m", "revisions": ["step300"]}])
    with pytest.raises(CapcastError, match="revision 'step300' does not exist on the hub .*close: step3000"):
        lmrun.check_revision(ck)
    lmrun.check_revision(replace(ck, revision="step3000"))  # exists: no error, no download
