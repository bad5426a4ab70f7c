"""Readers of published results: each upstream format -> scores-table rows with a citation.

Each reader turns one published format into scores-table rows with a ``source`` that cites
repository@commit:path.  Inputs come from a local copy (a :class:`Store` on a folder laid out like
``shared/data/external``) or from the upstream repositories at their pinned commits (``github``),
so a user with network can rebuild the table from the sources.  :func:`ingest` runs every reader
(``python -m pipeline ingest``, :mod:`pipeline.stages.ingest`).
"""
from __future__ import annotations

import io
import json
import math
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from pipeline import scores
from pipeline.errors import CapcastError
from pipeline.sources import families


class IngestError(CapcastError):
    pass


@dataclass(frozen=True)
class Upstream:
    """Where a local folder's files live upstream: repo@commit, and the path prefix there."""

    repo: str
    commit: str
    prefix: str

    def cite(self, rel: str) -> str:
        return f"{self.repo}@{self.commit}:{PurePosixPath(self.prefix, rel)}"

    def url(self, rel: str) -> str:
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{PurePosixPath(self.prefix, rel)}"


PYTHIA = Upstream("EleutherAI/pythia", "a19eecb807ec2c79a39ebf18108816e6ffffc1d5", "evals")
OBS_BENCH = Upstream("ryoungj/ObsScaling", "43dad3252c7fab354de3ee2e197a0a467cb5d327", "eval_results")
OBS_LATER = Upstream("ryoungj/ObsScaling", "4d6e1e43fd2635d04654aa77d1df9d5266ea0382", "eval_results")
INVERSE = Upstream("jmichaelov/emergent-inabilities", "eb36a6c85b852601f283c4a045221b44373fb987", "")
LLM_LINE = Upstream("brendel-group/llm-line", "e57749dab976fbe2dc58596ad1c0f61518ac0644", "data")
CEREBRAS_CARD = Upstream(
    "Azure/azureml-assets", "4e4843880b1f562f68626cdf6f5cae19a6832b6d",
    "assets/models/system/cerebras-Cerebras-GPT-111M",
)

# local path (under --from) -> (upstream, path relative to its prefix)
FILES = {
    "obsscaling/base_llm_benchmark_eval.v2024-05-31_43dad32.csv": (OBS_BENCH, "base_llm_benchmark_eval.csv"),
    "obsscaling/base_llm_emergent_capability_eval.csv": (OBS_LATER, "base_llm_emergent_capability_eval.csv"),
    "obsscaling/base_llm_post_training_eval.csv": (OBS_LATER, "base_llm_post_training_eval.csv"),
    "inverse_scaling/emergent_inabilities_pythia/results/all_results.tsv": (INVERSE, "results/all_results.tsv"),
    "pythia_task_losses/llm_line/latest_pm_hf.csv": (LLM_LINE, "latest_pm_hf.csv"),
}


def _utf8(data: bytes, where) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start}); is this the published "
                          "file, whole and unedited?") from None


class Store:
    """Reads input files from a local folder or from GitHub at the pinned commits."""

    def __init__(self, root: str):
        self.remote = root == "github"
        self.root = None if self.remote else Path(root)
        if self.root is not None and not self.root.is_dir():
            raise IngestError(f"--from {root}: no such directory (expected shared/data/external or 'github')")

    def text(self, local: str, upstream: Upstream, rel: str) -> str:
        if self.remote:
            with urllib.request.urlopen(upstream.url(rel), timeout=60) as resp:  # noqa: S310 (pinned https)
                return _utf8(resp.read(), upstream.url(rel))
        path = self.root / local
        if not path.is_file():
            raise IngestError(f"{path}: missing input file; is --from the shared/data/external folder?")
        return _utf8(path.read_bytes(), path)

    def listing(self, local_dir: str, upstream: Upstream, rel_dir: str) -> list[str]:
        """Relative paths (under rel_dir) of the JSON files of a results folder, sorted."""
        if self.remote:
            api = f"https://api.github.com/repos/{upstream.repo}/git/trees/{upstream.commit}?recursive=1"
            with urllib.request.urlopen(api, timeout=60) as resp:  # noqa: S310
                tree = json.load(resp)["tree"]
            base = str(PurePosixPath(upstream.prefix, rel_dir)) + "/"
            return sorted(t["path"][len(base):] for t in tree if t["path"].startswith(base) and t["path"].endswith(".json"))
        folder = self.root / local_dir
        if not folder.is_dir():
            raise IngestError(f"{folder}: missing input folder; is --from the shared/data/external folder?")
        return sorted(str(p.relative_to(folder).as_posix()) for p in folder.rglob("*.json"))


# ---------------------------------------------------------------- Pythia / OPT / BLOOM lm-eval JSON
PYTHIA_EVAL_TASKS = {  # task -> metrics kept (the others in those files are bias probes or MMLU subjects)
    "lambada_openai": ("acc", "ppl"), "piqa": ("acc", "acc_norm"), "arc_easy": ("acc", "acc_norm"),
    "arc_challenge": ("acc", "acc_norm"), "sciq": ("acc", "acc_norm"), "logiqa": ("acc", "acc_norm"),
    "winogrande": ("acc",), "wsc": ("acc",),
}
MMLU_PREFIX = "hendrycksTest-"
MMLU_SUBJECTS = 57


def _model_args(config: dict) -> dict:
    args = config.get("model_args", "")
    return dict(kv.split("=", 1) for kv in args.split(",") if "=" in kv)


def _registry_model(name: str, where: str) -> tuple[families.Family, families.Model]:
    found = families.find(name)
    if found is None:
        raise IngestError(f"{where}: unknown model {name!r}; add it to pipeline/sources/families.py")
    return found


def _finite(x, where: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise IngestError(f"{where}: {x!r} is not a number") from None
    if not math.isfinite(v):
        raise IngestError(f"{where}: value is {x!r}; published numbers must be finite (fix or drop the source row)")
    return v


def lm_eval_json_rows(doc: dict, where: str, shots_expected: int | None, cite: str) -> list[dict]:
    """Rows of one lm-eval (v0.x) results JSON: kept tasks, plus the MMLU mean over its 57 subjects."""
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), dict) or "config" not in doc:
        raise IngestError(f"{where}: not an lm-eval results JSON (needs 'results' and 'config' objects)")
    args = _model_args(doc["config"])
    if "pretrained" not in args:
        raise IngestError(f"{where}: config.model_args names no 'pretrained=' model")
    family, model = _registry_model(args["pretrained"], where)
    step = families.parse_step(args.get("revision")) if family.tokens_per_step else None
    shots = doc["config"].get("num_fewshot")
    if shots_expected is not None and shots != shots_expected:
        raise IngestError(f"{where}: config.num_fewshot={shots} but the folder says {shots_expected}-shot")
    base = dict(suite="pythia_evals", model=model.hf_id, family=family.name, params=model.params,
                tokens=family.tokens_at(model, step), step=step, num_fewshot=shots, source=cite)
    rows = []
    results = doc["results"]
    for task, metrics in PYTHIA_EVAL_TASKS.items():
        for metric in metrics if task in results else ():
            if metric not in results[task]:
                raise IngestError(f"{where}: results[{task!r}] has no {metric!r}")
            value = _finite(results[task][metric], f"{where}: results[{task!r}][{metric!r}]")
            stderr = results[task].get(f"{metric}_stderr")
            rows.append(dict(base, task=task, metric=metric, value=value,
                             stderr=None if stderr is None else _finite(stderr, f"{where}: {task} {metric}_stderr")))
    rows += _mmlu_rows(results, base, where)
    if not rows:
        raise IngestError(f"{where}: none of the expected tasks ({', '.join(PYTHIA_EVAL_TASKS)}) in 'results'")
    return rows


def _mmlu_rows(results: dict, base: dict, where: str) -> list[dict]:
    """MMLU as the unweighted mean of its 57 subject accuracies (the Open LLM Leaderboard convention)."""
    subjects = [t for t in results if t.startswith(MMLU_PREFIX)]
    if not subjects:
        return []
    if len(subjects) != MMLU_SUBJECTS:
        raise IngestError(f"{where}: {len(subjects)} MMLU subjects, expected {MMLU_SUBJECTS}; a partial mean is not MMLU")
    rows = []
    for metric in ("acc", "acc_norm"):
        vals = np.array([_finite(results[s][metric], f"{where}: {s} {metric}") for s in sorted(subjects)])
        ses = np.array([_finite(results[s].get(f"{metric}_stderr", np.nan), f"{where}: {s}") if
                        f"{metric}_stderr" in results[s] else np.nan for s in sorted(subjects)])
        stderr = float(np.sqrt(np.sum(ses**2)) / len(ses)) if np.all(np.isfinite(ses)) else None
        rows.append(dict(base, task="mmlu", metric=metric, value=float(vals.mean()), stderr=stderr))
    return rows


def read_pythia_evals(store: Store) -> pd.DataFrame:
    """EleutherAI/pythia evals/: pythia-v1/<model>/{zero,five}-shot/*.json, opt/*.json, bloom/*.json."""
    rows = []
    shots_by_dir = {"zero-shot": 0, "five-shot": 5}
    for sub in ("pythia-v1", "opt", "bloom"):
        for rel in store.listing(f"pythia_evals/{sub}", PYTHIA, sub):
            where = f"pythia_evals/{sub}/{rel}"
            parts = PurePosixPath(rel).parts
            shots = shots_by_dir.get(parts[-2]) if len(parts) >= 2 else None
            try:
                doc = json.loads(store.text(where, PYTHIA, f"{sub}/{rel}"))
            except json.JSONDecodeError as exc:
                raise IngestError(f"{where}: malformed JSON ({exc})") from None
            rows += lm_eval_json_rows(doc, where, shots, PYTHIA.cite(f"{sub}/{rel}"))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- Observational-scaling tables (Ruan et al. 2024)
# Open LLM Leaderboard v1 settings for the benchmark table (task, metric, shots).
OBS_BENCHMARKS = {
    "MMLU": ("mmlu", "acc", 5), "ARC-C": ("arc_challenge", "acc_norm", 25), "HellaSwag": ("hellaswag", "acc_norm", 10),
    "Winograd": ("winogrande", "acc", 5), "TruthfulQA": ("truthfulqa", "mc2", 0), "GSM8K": ("gsm8k", "exact_match", 5),
    "XWinograd": ("xwinograd", "acc", None), "HumanEval": ("humaneval", "pass@1", 0),
}
OBS_FAMILY = {"Pythia": "pythia-deduped", "OPT": "opt", "BLOOM": "bloom", "Cerebras-GPT": "cerebras-gpt"}
# lm-eval column names of the later tables: <task>_<shots>_<metric>[,<filter>]
OBS_COLUMN = re.compile(r"^(?P<task>.+?)_(?P<shots>\d+)_(?P<metric>acc|exact_match|bleu)(?:,(?P<filter>.+))?$")


def _csv(store: Store, local: str, **kw) -> pd.DataFrame:
    upstream, rel = FILES[local]
    try:
        # Only an empty cell is missing; 'n/a', 'NaN', ... are text to be reported, not silently dropped.
        return pd.read_csv(io.StringIO(store.text(local, upstream, rel)), keep_default_na=False, na_values=[""], **kw)
    except pd.errors.ParserError as exc:
        raise IngestError(f"{local}: malformed table ({exc})") from None


def _need(df: pd.DataFrame, cols, where: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise IngestError(f"{where}: missing column(s) {missing}; is this the published file?")


def _obs_models(store: Store) -> tuple[pd.DataFrame, list[str]]:
    """The benchmark table's models with size facts; models without N, D or C are set aside (listed)."""
    local = "obsscaling/base_llm_benchmark_eval.v2024-05-31_43dad32.csv"
    df = _csv(store, local)
    _need(df, ["Model", "Model Family", "Model Size (B)", "Pretraining Data Size (T)", "FLOPs (1E21)", *OBS_BENCHMARKS], local)
    dup = df["Model"].duplicated()
    if dup.any():
        raise IngestError(f"{local}: row {int(np.flatnonzero(dup)[0]) + 2}: model {df.Model[dup].iloc[0]!r} listed twice")
    sizes = df[["Model Size (B)", "Pretraining Data Size (T)", "FLOPs (1E21)"]]
    unsized = df.loc[sizes.isna().any(axis=1), "Model"].tolist()
    df = df[sizes.notna().all(axis=1)].copy()
    df["family"] = df["Model Family"].map(lambda f: OBS_FAMILY.get(f, re.sub(r"[^a-z0-9.]+", "-", f.lower()).strip("-")))
    df["params"], df["tokens"] = df["Model Size (B)"] * 1e9, df["Pretraining Data Size (T)"] * 1e12
    df["compute_flops"] = df["FLOPs (1E21)"] * 1e21
    return df, unsized


def _melt(df: pd.DataFrame, columns: dict, suite: str, cite: str, where: str) -> pd.DataFrame:
    """Wide (one row per model) -> scores rows; empty cells are 'not evaluated', text is an error."""
    rows = []
    for col, (task, metric, shots) in columns.items():
        values = pd.to_numeric(df[col], errors="coerce")
        bad = df[col].notna() & values.isna()
        if bad.any():
            i = df.index[bad][0]
            raise IngestError(f"{where}: row {i + 2} ({df.Model[i]}), column {col!r}: {df[col][i]!r} is not a number")
        part = df.loc[values.notna(), ["Model", "family", "params", "tokens", "compute_flops"]].rename(columns={"Model": "model"})
        part = part.assign(suite=suite, task=task, metric=metric, value=values[values.notna()], num_fewshot=shots, source=cite)
        rows.append(part)
    return pd.concat(rows, ignore_index=True)


def read_obsscaling(store: Store) -> tuple[pd.DataFrame, list[str]]:
    models, unsized = _obs_models(store)
    local = "obsscaling/base_llm_benchmark_eval.v2024-05-31_43dad32.csv"
    out = [_melt(models, OBS_BENCHMARKS, "obsscaling", OBS_BENCH.cite("base_llm_benchmark_eval.csv"), local)]
    skipped = [f"{m} (obsscaling: no size, tokens or FLOPs)" for m in unsized]
    for local, suite in (("obsscaling/base_llm_emergent_capability_eval.csv", "obsscaling_emergent"),
                         ("obsscaling/base_llm_post_training_eval.csv", "obsscaling_post_training")):
        df = _csv(store, local)
        _need(df, ["Model"], local)
        columns = {}
        for col in df.columns[1:]:
            m = OBS_COLUMN.match(col)
            if m is None:
                raise IngestError(f"{local}: column {col!r} is not <task>_<shots>_<metric>[,<filter>]")
            if (m["filter"] or "").endswith("norm"):
                continue  # (x - chance) / (1 - chance): derivable from the raw score, not a measurement
            metric = m["metric"] + (f",{m['filter']}" if m["filter"] else "")
            columns[col] = (m["task"], metric, int(m["shots"]))
        known = df["Model"].isin(models["Model"])
        skipped += [f"{m} ({suite}: not in the sized benchmark table)" for m in df.loc[~known, "Model"]]
        merged = df[known].merge(models[["Model", "family", "params", "tokens", "compute_flops"]], on="Model")
        upstream, rel = FILES[local]
        out.append(_melt(merged, columns, suite, upstream.cite(rel), local))
    table = pd.concat(out, ignore_index=True)
    return table.assign(stderr=_known_binomial_stderr(table)), skipped


# Item counts of tasks whose published scores come without stderr, where the count is documented.
# GPT-3 arithmetic (Brown et al. 2020, sec. 3.9.1): "2,000 random instances of each task"; the
# published values are all multiples of 1/2000.
ITEM_COUNTS = {"arithmetic_2da": 2000, "arithmetic_2dm": 2000, "arithmetic_3da": 2000, "arithmetic_3ds": 2000}


def _known_binomial_stderr(table: pd.DataFrame) -> pd.Series:
    """sqrt(p(1-p)/n) for accuracies of tasks with a documented item count; NaN elsewhere."""
    n = table["task"].map(ITEM_COUNTS)
    p = table["value"]
    return np.sqrt(p * (1 - p) / n).where(n.notna() & table["metric"].eq("acc"))


# ---------------------------------------------------------------- Pythia inverse scaling (Michaelov & Bergen 2023)
def read_inverse_scaling(store: Store) -> pd.DataFrame:
    local = "inverse_scaling/emergent_inabilities_pythia/results/all_results.tsv"
    df = _csv(store, local, sep="\t")
    _need(df, ["ModelName", "ModelRevision", "Task", "Accuracy", "Accuracy_SE"], local)
    rows = []
    for i, r in df.iterrows():
        where = f"{local}: row {i + 2}"
        family, model = _registry_model(str(r.ModelName), where)
        step = families.parse_step(str(r.ModelRevision))
        rows.append(dict(suite="inverse_scaling_pythia", model=model.hf_id, family=family.name, params=model.params,
                         tokens=family.tokens_at(model, step), step=step, task=str(r.Task), metric="acc",
                         value=_finite(r.Accuracy, where), stderr=_finite(r.Accuracy_SE, where), num_fewshot=0,
                         source=INVERSE.cite("results/all_results.tsv")))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- Pythia task losses (llm-line)
LLM_LINE_TASKS = {
    "ARC-Challenge": "arc_challenge", "ARC-Easy": "arc_easy", "HellaSwag": "hellaswag", "MMLU": "mmlu",
    "Winogrande": "winogrande", "PIQA": "piqa", "Social IQa": "social_iqa", "CommonSenseQA": "commonsense_qa",
    "COPA": "copa", "OpenBookQA": "openbookqa",
}
LLM_LINE_CORPORA = {"C4": "c4", "The Pile UC": "pile_uc", "RefineWeb": "refinedweb", "Slimpajama": "slimpajama",
                    "FineWeb-Edu": "fineweb_edu"}
LLM_LINE_METRICS = {"Accuracy": "acc", "Loss": "nll", "BPB": "bpb"}


def read_llm_line(store: Store) -> pd.DataFrame:
    """Registry models (Pythia) from llm-line's public-model table: task acc / loss / bpb, corpus loss / bpb."""
    local = "pythia_task_losses/llm_line/latest_pm_hf.csv"
    df = _csv(store, local, skiprows=[1])  # row 2 is a sub-header
    _need(df, ["Name"], local)
    columns = {f"{name} {label}": (task, metric, None)
               for name, task in LLM_LINE_TASKS.items() for label, metric in LLM_LINE_METRICS.items()}
    columns.update({f"{name} Validation {label}": (task, "xent" if label == "Loss" else "bpb", None)
                    for name, task in LLM_LINE_CORPORA.items() for label in ("Loss", "BPB")})
    _need(df, list(columns), local)
    df = df[df["Name"].map(lambda n: families.find(str(n)) is not None)].copy()
    facts = df["Name"].map(families.lookup)
    df["family"] = [f.name for f, _ in facts]
    df["Model"] = [m.hf_id for _, m in facts]
    df["params"] = [m.params for _, m in facts]
    df["tokens"] = [m.train_tokens for _, m in facts]
    df["compute_flops"] = 6 * df["params"] * df["tokens"]
    out = _melt(df.reset_index(drop=True), columns, "llm_line", LLM_LINE.cite("latest_pm_hf.csv"), local)
    return out.assign(step=families.PYTHIA_FINAL_STEP)


# ---------------------------------------------------------------- Cerebras-GPT model card (transcribed table)
CEREBRAS_TASKS = {"hellaswag": "hellaswag", "piqa": "piqa", "winogrande": "winogrande", "lambada": "lambada_openai",
                  "arc_e": "arc_easy", "arc_c": "arc_challenge", "openbookqa": "openbookqa"}


def read_cerebras_card(store: Store) -> pd.DataFrame:
    """The Cerebras-GPT card's 0-shot and 5-shot tables (a local transcription: the card itself is Markdown)."""
    local = "cerebras_gpt/cerebras_gpt_model_card_evals.csv"
    if store.remote:
        raise IngestError("the Cerebras-GPT card table is a transcription of a Markdown card; ingest it with --from DIR")
    path = store.root / local
    if not path.is_file():
        raise IngestError(f"{path}: missing input file")
    df = pd.read_csv(path)
    _need(df, ["model", "train_tokens", "train_flops", "pile_test_xent_0shot_table",
               *(f"{p}_{t}" for p in ("zs", "fs5") for t in CEREBRAS_TASKS)], local)
    rows = []
    for i, r in df.iterrows():
        where = f"{local}: row {i + 2}"
        family, model = _registry_model(str(r.model), where)
        base = dict(suite="cerebras_card", model=model.hf_id, family=family.name, params=model.params,
                    tokens=_finite(r.train_tokens, where), compute_flops=_finite(r.train_flops, where),
                    source=CEREBRAS_CARD.cite("description.md") + " (transcribed)")
        rows.append(dict(base, task="pile", metric="xent", value=_finite(r.pile_test_xent_0shot_table, where), num_fewshot=0))
        for prefix, shots in (("zs", 0), ("fs5", 5)):
            for col, task in CEREBRAS_TASKS.items():
                rows.append(dict(base, task=task, metric="acc", num_fewshot=shots,
                                 value=_finite(r[f"{prefix}_{col}"], f"{where}, {prefix}_{col}")))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- Cerebras modelzoo README (three families, one harness)
MODELZOO = Upstream("Cerebras/modelzoo", "85864f91909ccab00ef25bb72b951983660e196a",
                    "modelzoo/transformers/pytorch/gpt3/configs/Cerebras_GPT")
MODELZOO_LOCAL = "../upstream/cerebras-modelzoo/modelzoo/transformers/pytorch/gpt3/configs/Cerebras_GPT/README.md"
MODELZOO_GROUPS = {"Cerebras": "cerebras/Cerebras-GPT-{}", "Pythia": "EleutherAI/pythia-{}",
                   "Pythia deduped": "EleutherAI/pythia-{}-deduped", "OPT": "facebook/opt-{}"}
MODELZOO_COLUMNS = {"PILE test xent": ("pile", "xent"), "Hella- Swag": ("hellaswag", "acc"), "PIQA": ("piqa", "acc"),
                    "Wino- Grande": ("winogrande", "acc"), "Lambada": ("lambada_openai", "acc"),
                    "ARC-e": ("arc_easy", "acc"), "ARC-c": ("arc_challenge", "acc"), "OpenBookQA": ("openbookqa", "acc")}


def markdown_table_after(text: str, heading: str, where: str) -> list[dict]:
    """The first pipe table after a heading line, as dicts; blank first cells repeat the one above."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    except StopIteration:
        raise IngestError(f"{where}: no heading {heading!r}; has the README changed?") from None
    table = []
    for line in lines[start + 1:]:
        if not line.startswith("|"):
            if table:
                break
            continue
        table.append([c.strip() for c in line.strip().strip("|").split("|")])
    header, body = table[0], [r for r in table[2:] if len(r) == len(table[0])]
    rows, last = [], ""
    for cells in body:
        last = cells[0] or last
        rows.append(dict(zip(header, [last, *cells[1:]])))
    return rows


def read_cerebras_modelzoo(store: Store) -> tuple[pd.DataFrame, list[str]]:
    """Cerebras-GPT, Pythia and OPT final checkpoints evaluated by Cerebras with one harness set-up.

    N and D come from the families registry (the README's FLOPs column is not 6ND for OPT).
    """
    text = store.text(MODELZOO_LOCAL, MODELZOO, "README.md")
    rows, skipped = [], set()
    for heading, shots in (("#### 0-shot Evaluation", 0), ("#### 5-shot Evaluation", 5)):
        for i, r in enumerate(markdown_table_after(text, heading, "Cerebras_GPT/README.md")):
            where = f"Cerebras_GPT/README.md {heading[5:]} row {i + 1}"
            template = MODELZOO_GROUPS.get(r.get("Model", ""))
            if template is None:
                skipped.add(f"{r.get('Model')} {r.get('Count')} (cerebras_modelzoo: not in the families registry)")
                continue
            family, model = families.lookup(template.format(r["Count"] if r["Model"] == "Cerebras" else r["Count"].lower()))
            base = dict(suite="cerebras_modelzoo", model=model.hf_id, family=family.name, params=model.params,
                        tokens=model.train_tokens, num_fewshot=shots, source=MODELZOO.cite("README.md"),
                        step=model.final_step if family.tokens_per_step else None)
            for col, (task, metric) in MODELZOO_COLUMNS.items():
                if col in r and r[col] not in ("\\-", "-"):
                    rows.append(dict(base, task=task, metric=metric, value=_finite(r[col], f"{where}, {col}")))
    return pd.DataFrame(rows), sorted(skipped)


# ---------------------------------------------------------------- all together
def non_embedding_counts(models: pd.Series) -> pd.Series:
    """Non-embedding parameter counts from the families registry (published, or from the family's
    published shapes), NaN for models it does not hold: the laws read N from the table."""
    known = {}
    for m in models.astype(str).unique():
        found = families.find(m)
        known[m] = found[1].params_non_embedding if found and found[1].params_non_embedding else np.nan
    return models.astype(str).map(known).astype(float)


def ingest(root: str) -> tuple[pd.DataFrame, list[str]]:
    store = Store(root)
    obs, skipped = read_obsscaling(store)
    zoo, zoo_skipped = read_cerebras_modelzoo(store)
    parts = [read_pythia_evals(store), read_cerebras_card(store), zoo, obs, read_inverse_scaling(store),
             read_llm_line(store)]
    skipped += zoo_skipped
    table = pd.concat(parts, ignore_index=True)
    table["params_non_embedding"] = non_embedding_counts(table["model"])
    return scores.sort(scores.validate(table, origin=f"ingest --from {root}")), skipped
