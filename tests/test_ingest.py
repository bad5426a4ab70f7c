import io
import json
import shutil

import pandas as pd
import pytest

from pipeline import scores
from pipeline.sources import published as ingest
from pipeline.sources.published import IngestError, Store
from pipeline.stages import ingest as ingest_stage
from tests.paths import EXTERNAL, ROOT, needs_shared

pytestmark = needs_shared


@pytest.fixture(scope="module")
def table():
    return ingest.ingest(str(EXTERNAL))[0]


def test_rebuild_is_byte_identical_to_the_committed_table(tmp_path, table):
    out = tmp_path / "scores.csv"
    scores.write(table, out)
    assert out.read_bytes() == (ROOT / "data/published/scores.csv").read_bytes()


def test_pythia_evals_cover_16_models_all_checkpoints_both_shots(table):
    py = table[(table.suite == "pythia_evals") & table.family.str.startswith("pythia")]
    assert py.model.nunique() == 16
    per_model = py.groupby(["model", "num_fewshot"]).step.nunique().unstack()
    assert (per_model[0] == 27).all() and (per_model[5] == 15).all()
    row = py.query("model == 'EleutherAI/pythia-1.4b' and step == 143000 and task == 'piqa' and metric == 'acc' "
                   "and num_fewshot == 0").iloc[0]
    raw = json.loads((EXTERNAL / "pythia_evals/pythia-v1/pythia-1.4b/zero-shot/1.4b_step143000.json").read_text())
    assert row.value == pytest.approx(raw["results"]["piqa"]["acc"], rel=1e-9)
    assert row.tokens == 143000 * 2_097_152
    assert row.source.startswith("EleutherAI/pythia@a19eecb807ec2c79a39ebf18108816e6ffffc1d5:evals/pythia-v1/")


def test_every_family_and_suite_is_present_and_cited(table):
    assert set(table.suite) >= {"pythia_evals", "cerebras_card", "cerebras_modelzoo", "obsscaling",
                                "obsscaling_emergent", "inverse_scaling_pythia", "llm_line"}
    opt = table.query("suite == 'pythia_evals' and family == 'opt'")
    assert sorted(opt.model.unique()) == sorted(f"facebook/opt-{s}" for s in
                                                ("125m", "350m", "1.3b", "2.7b", "6.7b", "13b", "30b", "66b"))
    assert table.query("suite == 'cerebras_card'").model.nunique() == 7
    inv = table.query("suite == 'inverse_scaling_pythia'")
    assert inv.model.nunique() == 8 and inv.step.nunique() == 8 and inv.task.nunique() == 12
    assert table.source.str.match(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}:").all()


def test_mmlu_is_the_mean_of_57_subjects(table):
    raw = json.loads((EXTERNAL / "pythia_evals/opt/opt-13b.json").read_text())["results"]
    subjects = [v["acc"] for k, v in raw.items() if k.startswith("hendrycksTest-")]
    row = table.query("suite == 'pythia_evals' and model == 'facebook/opt-13b' and task == 'mmlu' and metric == 'acc'")
    assert len(subjects) == 57 and row.value.iloc[0] == pytest.approx(sum(subjects) / 57)


# ------------------------------------------------------------ malformed inputs: each names the file and the row
def copy_tree(tmp_path, *parts):
    root = tmp_path / "external"
    for part in parts:
        src = EXTERNAL / part
        dst = root / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst) if src.is_dir() else shutil.copy(src, dst)
    return root


def one_json(tmp_path, doc):
    root = tmp_path / "external"
    path = root / "pythia_evals/pythia-v1/pythia-70m/zero-shot/70m_step1000.json"
    path.parent.mkdir(parents=True)
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    for sub in ("opt", "bloom"):
        (root / "pythia_evals" / sub).mkdir()
    return Store(str(root))


GOOD = {"results": {"piqa": {"acc": 0.6, "acc_stderr": 0.01, "acc_norm": 0.61, "acc_norm_stderr": 0.01}},
        "config": {"model_args": "pretrained=EleutherAI/pythia-70m,revision=step1000", "num_fewshot": 0}}


def test_good_fixture_reads(tmp_path):
    df = ingest.read_pythia_evals(one_json(tmp_path, GOOD))
    assert set(df.metric) == {"acc", "acc_norm"} and (df.step == 1000).all()


@pytest.mark.parametrize("doc, message", [
    ("{not json", "malformed JSON"),
    ({"config": GOOD["config"]}, "not an lm-eval results JSON"),
    ({**GOOD, "config": {"model_args": "pretrained=acme/llm-7b", "num_fewshot": 0}}, "unknown model 'acme/llm-7b'"),
    ({**GOOD, "results": {"piqa": {"acc": float("nan")}}}, "must be finite"),
    ({**GOOD, "results": {"piqa": {"acc": "high"}}}, "'high' is not a number"),
    ({**GOOD, "config": {**GOOD["config"], "num_fewshot": 5}}, "num_fewshot=5 but the folder says 0-shot"),
    ({**GOOD, "results": {"crows_pairs_english": {"pct_stereotype": 0.5}}}, "none of the expected tasks"),
])
def test_malformed_json_names_the_file(tmp_path, doc, message):
    with pytest.raises(IngestError, match="70m_step1000.json") as err:
        ingest.read_pythia_evals(one_json(tmp_path, doc))
    assert message in str(err.value)


def test_malformed_tables_name_file_and_row(tmp_path):
    root = copy_tree(tmp_path, "inverse_scaling")
    tsv = root / "inverse_scaling/emergent_inabilities_pythia/results/all_results.tsv"
    df = pd.read_csv(tsv, sep="\t")
    df.loc[5, "ModelName"] = "acme/llm-7b"
    df.to_csv(tsv, sep="\t", index=False)
    with pytest.raises(IngestError, match=r"all_results.tsv: row 7: unknown model 'acme/llm-7b'"):
        ingest.read_inverse_scaling(Store(str(root)))
    df.loc[5, "ModelName"] = "EleutherAI/pythia-70m"
    df.drop(columns=["Accuracy_SE"]).to_csv(tsv, sep="\t", index=False)
    with pytest.raises(IngestError, match=r"missing column\(s\) \['Accuracy_SE'\]"):
        ingest.read_inverse_scaling(Store(str(root)))


def test_obsscaling_text_cell_and_duplicate_model(tmp_path):
    root = copy_tree(tmp_path, "obsscaling")
    path = root / "obsscaling/base_llm_benchmark_eval.v2024-05-31_43dad32.csv"
    df = pd.read_csv(path, dtype=str)
    df.loc[0, "MMLU"] = "n/a"
    df.to_csv(path, index=False)
    with pytest.raises(IngestError, match=r"row 2 \(meta-llama/Llama-2-7b-hf\), column 'MMLU': 'n/a' is not a number"):
        ingest.read_obsscaling(Store(str(root)))
    pd.concat([pd.read_csv(path).iloc[:4], pd.read_csv(path).iloc[[0]]]).to_csv(path, index=False)
    with pytest.raises(IngestError, match="listed twice"):
        ingest.read_obsscaling(Store(str(root)))


def test_missing_input_folder_is_a_clear_error(tmp_path):
    with pytest.raises(IngestError, match="no such directory"):
        Store(str(tmp_path / "nowhere"))
    assert ingest_stage.main(["--from", str(tmp_path / "nowhere")]) == 2


class FakeResponse(io.BytesIO):
    """What urllib.request.urlopen returns, enough for ingest's reads (a context manager with read())."""


def test_github_mode_builds_pinned_urls(monkeypatch):
    seen = []

    def fake_urlopen(url, timeout):
        seen.append(url)
        return FakeResponse((EXTERNAL / "inverse_scaling/emergent_inabilities_pythia/results/all_results.tsv").read_bytes())

    monkeypatch.setattr(ingest.urllib.request, "urlopen", fake_urlopen)
    df = ingest.read_inverse_scaling(Store("github"))
    assert seen == ["https://raw.githubusercontent.com/jmichaelov/emergent-inabilities/"
                    "eb36a6c85b852601f283c4a045221b44373fb987/results/all_results.tsv"]
    assert len(df) == 768


def test_cerebras_llm_line_and_modelzoo_readers(table):
    card = table.query("suite == 'cerebras_card' and model == 'cerebras/Cerebras-GPT-13B' and task == 'piqa'")
    assert dict(zip(card.num_fewshot, card.value)) == {0: 0.766, 5: 0.768}
    zoo = table.query("suite == 'cerebras_modelzoo' and task == 'arc_challenge' and num_fewshot == 0")
    assert set(zoo.family) == {"cerebras-gpt", "pythia", "pythia-deduped", "opt"}
    assert zoo.query("model == 'facebook/opt-13b'").value.iloc[0] == 0.329
    assert "pile" not in set(table.query("suite == 'cerebras_modelzoo' and family == 'opt'").task)  # '\\-' cells
    line = table.query("suite == 'llm_line'")
    assert set(line.metric) == {"acc", "nll", "bpb", "xent"} and "EleutherAI/pythia-12b" in set(line.model)


def test_cerebras_card_and_llm_line_malformed(tmp_path):
    root = copy_tree(tmp_path, "cerebras_gpt", "pythia_task_losses")
    card = root / "cerebras_gpt/cerebras_gpt_model_card_evals.csv"
    df = pd.read_csv(card, dtype=str)
    df.loc[2, "zs_piqa"] = "NaN"
    df.to_csv(card, index=False)
    with pytest.raises(IngestError, match=r"cerebras_gpt_model_card_evals.csv: row 4, zs_piqa: value is"):
        ingest.read_cerebras_card(Store(str(root)))
    line = root / "pythia_task_losses/llm_line/latest_pm_hf.csv"
    text = line.read_text().replace("ARC-Easy BPB", "ARC-Easy Bits", 1)
    line.write_text(text)
    with pytest.raises(IngestError, match=r"latest_pm_hf.csv: missing column\(s\) \['ARC-Easy BPB'\]"):
        ingest.read_llm_line(Store(str(root)))


def test_modelzoo_readme_without_its_table(tmp_path):
    root = tmp_path / "external"
    readme = root / ingest.MODELZOO_LOCAL
    readme.parent.mkdir(parents=True)
    readme.write_text("# Cerebras-GPT\n\nno evaluation tables here\n")
    with pytest.raises(IngestError, match="no heading '#### 0-shot Evaluation'"):
        ingest.read_cerebras_modelzoo(Store(str(root)))


def test_github_mode_lists_the_results_tree_at_the_pinned_commit(monkeypatch):
    """--from github: the JSON listing comes from the git tree API at the pinned commit, files from raw URLs."""
    local = EXTERNAL / "pythia_evals/opt/opt-125m.json"
    tree = {"tree": [{"path": "evals/opt/opt-125m.json"}, {"path": "evals/opt/README.md"},
                     {"path": "evals/pythia-v1/x.txt"}]}
    seen = []

    def fake_urlopen(url, timeout):
        seen.append(url)
        body = json.dumps(tree).encode() if url.startswith("https://api.github.com/") else local.read_bytes()
        return FakeResponse(body)

    monkeypatch.setattr(ingest.urllib.request, "urlopen", fake_urlopen)
    df = ingest.read_pythia_evals(Store("github"))
    commit = ingest.PYTHIA.commit
    assert f"https://api.github.com/repos/EleutherAI/pythia/git/trees/{commit}?recursive=1" in seen
    assert f"https://raw.githubusercontent.com/EleutherAI/pythia/{commit}/evals/opt/opt-125m.json" in seen
    assert set(df.model) == {"facebook/opt-125m"} and (df.source == f"EleutherAI/pythia@{commit}:evals/opt/opt-125m.json").all()
