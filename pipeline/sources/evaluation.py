"""Evaluate stage: lm-eval on checkpoints -> ``data/evals/<model>@<revision>.json``.

For every (model, revision) listed in ``params.yaml`` (``evaluate:``) or on the command line,
and every task, this stage loads the model once with lm-eval (``HFLM``, or any lm-eval backend),
runs each task through lm-eval's Python API exactly as ``simple_evaluate`` does, with
``log_samples=True`` (see :func:`run_lm_eval`), and keeps, per task:

* lm-eval's own aggregated metrics (acc, acc_norm, perplexity, ...);
* task losses computed from the same run's per-sample log-likelihoods (see
  :mod:`pipeline.sources.taskloss`; no second forward pass): ``nll``, ``nll_token``, ``nll_char``,
  ``bpb`` and ``prob_correct``;
* every choice's log-likelihood per document, gzipped, under ``samples/``;
* lm-eval and task versions, the parameter counts of the loaded model, tokens seen.

It is incremental: an evaluation already on disk with the same settings (task, shots, limit,
dtype, lm-eval version, local task YAML) is skipped, so adding a model to ``params.yaml``
evaluates only that model, and a killed run resumes where it stopped.  Batch size and
device are deliberately not part of that key: they move log-likelihoods by ~1e-8 only.
Each finished task is written at once and atomically.  Wall times live in ``timing/``,
apart from the JSON that collect reads, so that the same run gives the same bytes.

:func:`load_eval_rows` turns the JSON files into validated scores-table rows (suite
``capcast_eval``) for the collect stage.
"""
from __future__ import annotations

import argparse
import difflib
import functools
import gc
import gzip
import hashlib
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path

import pandas as pd

from pipeline import params, scores
from pipeline.sources import families, taskloss
from pipeline.errors import CapcastError

SUITE = "capcast_eval"
SCHEMA = "capcast-eval/1"
DEFAULT_TASKS = ("lambada_openai", "piqa", "arc_easy", "arc_challenge", "sciq", "winogrande", "hellaswag")
MODEL_KEYS = {"model", "revisions", "revision", "family", "name", "tokens", "tokens_per_step", "model_args"}
SETTING_KEYS = {"models", "tasks", "num_fewshot", "limit", "batch_size", "device", "dtype", "backend",
                "include_path", "out_dir", "model_args"}
_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")


def log(message: str) -> None:
    print(f"evaluate: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Checkpoint:
    """One (model, revision) to evaluate, with the facts the scores table needs."""

    pretrained: str  # what lm-eval loads: a hub id or a local folder
    revision: str  # "main" for the final checkpoint and for local folders
    name: str  # the scores table's ``model``
    family: str
    tokens: float  # training tokens seen at this checkpoint
    tokens_source: str
    step: int | None
    params_published: float | None = None
    model_args: dict = field(default_factory=dict)  # extra backend arguments (parallelize, tensor_parallel_size, ...)

    @property
    def slug(self) -> str:
        return f"{_safe(self.name)}@{_safe(self.revision)}"

    @property
    def label(self) -> str:
        return self.name if self.revision == "main" else f"{self.name}@{self.revision}"


@dataclass(frozen=True)
class Settings:
    tasks: tuple[str, ...] = DEFAULT_TASKS
    num_fewshot: int = 0
    limit: int | float | None = None
    batch_size: int | str = "auto"
    device: str = "auto"
    dtype: str = "auto"
    backend: str = "hf"
    include_path: str | None = None
    out_dir: Path = Path("data/evals")
    model_args: dict = field(default_factory=dict)


def _safe(text: str) -> str:
    """File-name-safe form of a model id or revision: 'EleutherAI/pythia-70m' -> 'EleutherAI__pythia-70m'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text.strip("./").replace("/", "__"))


def is_local(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or os.path.isdir(model)


def _number(value, where: str) -> float:
    try:  # PyYAML reads 1e9 as a string (YAML 1.1); accept it anyway
        out = float(value)
    except (TypeError, ValueError):
        raise CapcastError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(out) or out < 0:
        raise CapcastError(f"{where}: must be a finite number >= 0, got {value!r}")
    return out


def _tokens(entry: dict, model: str, revision: str, where: str) -> tuple[float, str]:
    """Training tokens seen at ``revision``: from the entry, else from the families registry."""
    step = _step(revision)
    if "tokens" in entry:
        tokens = entry["tokens"]
        if isinstance(tokens, dict):
            if revision not in tokens:
                raise CapcastError(f"{where}.tokens: no entry for revision {revision!r}; add '{revision}: <tokens>'")
            return _number(tokens[revision], f"{where}.tokens.{revision}"), "params.yaml (tokens)"
        if len(_revisions(entry, where)) > 1:
            raise CapcastError(f"{where}.tokens: one number for several revisions; give tokens_per_step, "
                               "or a mapping {revision: tokens}")
        return _number(tokens, f"{where}.tokens"), "params.yaml (tokens)"
    if "tokens_per_step" in entry:
        if step is None:
            raise CapcastError(f"{where}: tokens_per_step needs revisions named stepN, got {revision!r}; "
                               "give tokens: {revision: tokens} instead")
        return step * _number(entry["tokens_per_step"], f"{where}.tokens_per_step"), "params.yaml (tokens_per_step x step)"
    found = families.find(model)
    if found is None:
        raise CapcastError(f"{where}: {model!r} is not in the families registry (pipeline/sources/families.py); "
                           "give its training tokens: 'tokens: N', 'tokens: {revision: N}' or 'tokens_per_step: N'")
    fam, facts = found
    if fam.tokens_per_step is not None and revision != "main" and step is None:
        raise CapcastError(f"{where}: cannot tell the tokens seen at revision {revision!r} of {model}; "
                           "use a stepN revision or give 'tokens: {revision: N}'")
    return fam.tokens_at(facts, step), f"families registry ({fam.name})"


def _step(revision: str) -> int | None:
    try:
        return families.parse_step(revision)
    except ValueError:
        return None


def _revisions(entry: dict, where: str) -> list[str]:
    revs = entry.get("revisions", entry.get("revision"))
    if revs is None:
        return ["main"]
    revs = [revs] if isinstance(revs, (str, int)) else list(revs)
    if not revs:
        raise CapcastError(f"{where}.revisions: empty list; leave it out for the final checkpoint ('main')")
    return [str(r) for r in revs]


def checkpoints_from_entries(entries: list, where: str = "evaluate.models") -> list[Checkpoint]:
    """Expand ``evaluate.models`` entries into checkpoints; every config error is raised here, before any work."""
    out: list[Checkpoint] = []
    for i, entry in enumerate(entries or []):
        at = f"{where}[{i}]"
        entry = {"model": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or not entry.get("model"):
            raise CapcastError(f"{at}: each entry needs 'model: <hub id or local folder>'")
        unknown = sorted(set(entry) - MODEL_KEYS)
        if unknown:
            raise CapcastError(f"{at}: unknown key(s) {unknown}; known: {sorted(MODEL_KEYS)}")
        model = str(entry["model"])
        found = families.find(model)
        family = entry.get("family") or (found[0].name if found else None)
        if not family:
            raise CapcastError(f"{at}: {model!r} is not in the families registry; give 'family: <name>'")
        name = str(entry.get("name") or (model if not is_local(model) else model.rstrip("/").removeprefix("./")))
        for revision in _revisions(entry, at):
            if is_local(model) and revision != "main":
                raise CapcastError(f"{at}: revision {revision!r} for local folder {model}; a folder holds one "
                                   "checkpoint: list each checkpoint folder as its own entry")
            tokens, source = _tokens(entry, model, revision, at)
            out.append(Checkpoint(model, revision, name, str(family), tokens, source, _step(revision),
                                  found[1].params if found else None, dict(entry.get("model_args") or {})))
    seen: dict = {}
    for ck in out:  # the scores table tells checkpoints apart by (model, step)
        key = (ck.name, ck.step)
        if key in seen:
            raise CapcastError(f"{where}: {seen[key].label} and {ck.label} are the same (model, step) in the scores "
                               "table; give one of them another 'name' or a stepN revision")
        seen[key] = ck
    return out


_DEVICE = re.compile(r"^(auto|cpu|mps|meta|(cuda|xpu|npu|hpu|mps)(:\d+)?)$")


def check_batch_size(value, where: str) -> int | str:
    """A whole number >= 1, 'auto' or 'auto:N' (lm-eval's forms), checked before any model loads."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if (isinstance(value, int) and not isinstance(value, bool) and value >= 1) or \
            (isinstance(value, str) and re.fullmatch(r"auto(:\d+)?", value)):
        return value
    raise CapcastError(f"{where}: {value!r} is not a batch size; give a whole number >= 1, 'auto', or 'auto:N' "
                       "(auto, re-tuned N times)")


def check_device(value, where: str) -> str:
    """auto, cpu, cuda, cuda:N, mps, ... (the device names torch knows), checked before any model loads."""
    if isinstance(value, str) and _DEVICE.match(value.strip()):
        return value.strip()
    raise CapcastError(f"{where}: {value!r} is not a device; give auto, cpu, cuda, cuda:N (a GPU index) or mps")


def settings_from_params(section: dict) -> Settings:
    unknown = sorted(set(section) - SETTING_KEYS)
    if unknown:
        raise CapcastError(f"params.yaml evaluate: unknown key(s) {unknown}; known: {sorted(SETTING_KEYS)}")
    defaults = Settings()
    tasks = section.get("tasks") or defaults.tasks
    tasks = tuple(t.strip() for t in (tasks.split(",") if isinstance(tasks, str) else tasks) if t.strip())
    shots = section.get("num_fewshot", 0)
    if not isinstance(shots, int) or isinstance(shots, bool) or shots < 0:
        raise CapcastError(f"evaluate.num_fewshot: must be a whole number >= 0 (0 for zero-shot), got {shots!r}")
    limit = section.get("limit")
    if limit is not None:
        limit = _number(limit, "evaluate.limit")
        if limit == 0:
            raise CapcastError("evaluate.limit: 0 documents; use null for all of them, or a number > 0")
        limit = int(limit) if limit >= 1 and limit == int(limit) else limit
    backend = str(section.get("backend") or "hf")
    return Settings(
        tasks=tasks, num_fewshot=shots, limit=limit,
        batch_size=check_batch_size(section.get("batch_size") or defaults.batch_size, "evaluate.batch_size"),
        device=check_device(section.get("device") or defaults.device, "evaluate.device"),
        dtype=str(section.get("dtype") or defaults.dtype),
        backend=backend,
        include_path=str(section["include_path"]) if section.get("include_path") else None,
        out_dir=Path(section.get("out_dir") or defaults.out_dir),
        model_args=dict(section.get("model_args") or {}),
    )


# ------------------------------------------------------------------------------------- the records
def record_path(out_dir: Path, ck: Checkpoint) -> Path:
    return Path(out_dir) / f"{ck.slug}.json"


def evaluation_key(task: str, num_fewshot: int) -> str:
    return f"{task}|{num_fewshot}shot"


def lm_eval_version() -> str:
    return metadata.version("lm_eval")


def local_task_index(include_path: str | None) -> dict:
    """{task name: YAML path} of the tasks under include_path (fast: no datasets are touched)."""
    if not include_path:
        return {}
    if not Path(include_path).is_dir():
        raise CapcastError(f"evaluate.include_path: {include_path} is not a folder of task YAMLs")
    from lm_eval.tasks import TaskManager

    index = TaskManager(include_defaults=False, include_path=include_path).task_index
    return {name: entry.yaml_path for name, entry in index.items() if entry.yaml_path}


def task_source(task: str, local: dict) -> str:
    """What defines the task: a local YAML (hashed, so editing it re-evaluates) or lm-eval's copy."""
    if task in local:
        digest = hashlib.sha256(Path(local[task]).read_bytes()).hexdigest()[:16]
        return f"{Path(local[task]).name} sha256:{digest}"
    return f"lm_eval=={lm_eval_version()}"


def wanted(task: str, settings: Settings, local: dict) -> dict:
    """The settings an evaluation on disk must match to be skipped (no batch size, no device)."""
    return {"task": task, "num_fewshot": settings.num_fewshot, "limit": settings.limit,
            "dtype": settings.dtype, "lm_eval_version": lm_eval_version(), "task_source": task_source(task, local)}


def read_record(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CapcastError(f"{path}: unreadable ({exc}); delete it to evaluate that checkpoint again") from None
    if record.get("schema") != SCHEMA:
        raise CapcastError(f"{path}: not a capcast evaluation ({SCHEMA}); move it out of the evals folder")
    return record


def checkpoint_facts(ck: Checkpoint) -> dict:
    return {"schema": SCHEMA, "model": ck.name, "pretrained": ck.pretrained, "revision": ck.revision,
            "family": ck.family, "step": ck.step, "tokens": ck.tokens, "tokens_source": ck.tokens_source,
            "params_published": ck.params_published}


def write_json(path: Path, obj: dict) -> None:
    text = json.dumps(obj, indent=1, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"
    scores.atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_samples(path: Path, docs: list[taskloss.DocScores]) -> str:
    """Gzipped JSON lines, byte-for-byte reproducible (no timestamp, no file name in the header)."""
    def writer(tmp):
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
            for doc in docs:
                gz.write((json.dumps(doc.to_json(), sort_keys=True, ensure_ascii=False) + "\n").encode())
    scores.atomic_write(path, writer)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_samples(path: str | os.PathLike) -> list[dict]:
    """The per-document log-likelihoods of one evaluation (see :class:`pipeline.sources.taskloss.DocScores`)."""
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


# ---------------------------------------------------------------------------------------- lm-eval
class ContinuationTokens:
    """Counts the tokens lm-eval scores for each (context, continuation), as it tokenizes them.

    Wraps the model's ``_loglikelihood_tokens``, which receives lm-eval's own encodings,
    so nll per token costs no second tokenization and matches what was scored exactly.
    """

    def __init__(self, lm):
        self.lm = lm
        self.counts: dict = {}
        inner = getattr(lm, "_loglikelihood_tokens", None)
        if inner is None:
            return

        def recording(requests, *args, **kwargs):
            requests = list(requests)
            for request in requests:  # ((context, continuation), context tokens, continuation tokens)
                if len(request) == 3 and isinstance(request[0], tuple):
                    self.counts[request[0]] = len(request[2])
            return inner(requests, *args, **kwargs)

        lm._loglikelihood_tokens = recording

    def lookup(self, requests) -> dict:
        """Counts for ``requests``; any not seen on this process (multi-GPU) are tokenized here."""
        for key in requests:
            if key not in self.counts:
                try:
                    self.counts[key] = len(self._continuation(*key))
                except Exception:  # a backend without lm-eval's TemplateLM tokenization: leave unknown
                    pass
        return self.counts

    def _continuation(self, context: str, continuation: str) -> list:
        """The continuation's tokens as lm-eval's ``loglikelihood`` encodes them (an empty context
        is the prefix token, which a continuation starting with it supplies itself)."""
        if context:
            return self.lm._encode_pair(context, continuation)[1]
        enc = self.lm.tok_encode(continuation, add_special_tokens=False)
        return enc[1:] if enc and enc[0] == self.lm.prefix_token_id else enc


def count_params(model) -> tuple[int, int]:
    """(total, non-embedding) parameters; non-embedding excludes token and position embeddings and an untied output head.

    ``parameters()`` yields a tied weight once, so a tied head is neither double counted nor
    subtracted twice.  This reproduces Pythia's published non-embedding counts.
    """
    import torch

    total = sum(p.numel() for p in model.parameters())
    embedding = {id(p): p.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding)
                 for p in m.parameters(recurse=False)}
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None:
        embedding.update({id(p): p.numel() for p in head.parameters(recurse=False)})
    return int(total), int(total - sum(embedding.values()))


def count_params_from_config(ck: Checkpoint) -> tuple[int, int]:
    """For backends that hide the torch module (vLLM): build the model on the meta device and count."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(ck.pretrained, revision=ck.revision)
    with torch.device("meta"):
        return count_params(AutoModelForCausalLM.from_config(config))


def check_revision(ck: Checkpoint) -> None:
    """Fail early, with the fix in the message, on a missing local folder or hub revision."""
    if is_local(ck.pretrained):
        if not (Path(ck.pretrained).expanduser() / "config.json").is_file():
            raise CapcastError(f"no model folder at {ck.pretrained} (no config.json); fix the path in evaluate.models")
        return
    if ck.revision == "main" or _COMMIT.match(ck.revision):
        return
    from huggingface_hub import constants, try_to_load_from_cache
    from huggingface_hub.errors import RepositoryNotFoundError

    if constants.HF_HUB_OFFLINE:
        if isinstance(try_to_load_from_cache(ck.pretrained, "config.json", revision=ck.revision), str):
            return
        refs = Path(constants.HF_HUB_CACHE) / ("models--" + ck.pretrained.replace("/", "--")) / "refs"
        cached = sorted(p.name for p in refs.iterdir()) if refs.is_dir() else []
        raise CapcastError(
            f"revision {ck.revision!r} is not in the local Hugging Face cache and the hub is off "
            f"(HF_HUB_OFFLINE=1); cached revisions: {', '.join(cached) or 'none'}; fix the revision or go online")
    try:
        names = hub_refs(ck.pretrained)
    except RepositoryNotFoundError:
        raise CapcastError(f"no model {ck.pretrained} on the Hugging Face hub (or it is gated: "
                           "run `hf auth login`); fix evaluate.models") from None
    except Exception:  # network trouble: let the load itself report it
        return
    if ck.revision not in names:
        close = difflib.get_close_matches(ck.revision, names, n=3)
        raise CapcastError(f"revision {ck.revision!r} does not exist on the hub "
                           f"({len(names)} branches and tags{'; close: ' + ', '.join(close) if close else ''}); "
                           "fix its revisions in evaluate.models")


@functools.lru_cache(maxsize=None)
def hub_refs(repo_id: str) -> list[str]:
    """Branch and tag names of a hub model (one request per model, not per revision)."""
    from huggingface_hub import HfApi

    refs = HfApi().list_repo_refs(repo_id)
    return [r.name for r in refs.branches] + [r.name for r in refs.tags]


def resolve_device(device: str) -> str | None:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_lm(ck: Checkpoint, settings: Settings):
    """The lm-eval model object for one checkpoint (``hf`` by default, any lm-eval backend by name)."""
    check_revision(ck)
    from lm_eval.api.registry import get_model

    try:
        backend = get_model(settings.backend)
    except Exception as exc:
        raise CapcastError(f"evaluate.backend {settings.backend!r}: lm-eval cannot use it ({_first_line(exc)}); "
                           "use 'hf', or install the backend's package (vllm: pip install vllm)") from None
    args = {"pretrained": ck.pretrained, "revision": ck.revision, "dtype": settings.dtype,
            **settings.model_args, **ck.model_args}
    try:
        return backend.create_from_arg_obj(args, {"batch_size": settings.batch_size,
                                                  "device": resolve_device(settings.device)})
    except Exception as exc:  # transformers/hub/vllm raise many kinds; the first line says what went wrong
        raise CapcastError(f"cannot load it ({_first_line(exc)}); fix its entry in evaluate.models, re-download "
                           "broken files, or lower memory use (dtype: bfloat16)") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def task_manager(tasks: list[str], include_path: str | None, local: dict):
    """lm-eval's TaskManager; built-in tasks are indexed (~6 s) only when a task is not local."""
    from lm_eval.tasks import TaskManager

    local_only = all(t in local for t in tasks)
    tm = TaskManager(include_path=include_path, include_defaults=not local_only)
    unknown = [t for t in tasks if t not in tm.task_index and not Path(t).is_file()]
    if unknown:
        hints = []
        for t in unknown:
            close = difflib.get_close_matches(t, tm.all_tasks, n=3)
            hints.append(f"{t!r} (did you mean {' or '.join(map(repr, close))}?)" if close else repr(t))
        raise CapcastError(f"unknown task(s) {', '.join(hints)}: lm-eval {lm_eval_version()} has no such task, "
                           "group or tag; fix evaluate.tasks (or --tasks), or put its YAML under evaluate.include_path")
    return tm


def load_task(tm, name: str) -> dict:
    """lm-eval's task dict ({'tasks', 'groups', 'group_map'}) for one name; lm-eval reads the data here."""
    try:
        return tm.load([name])
    except Exception as exc:
        raise CapcastError(f"task {name!r}: lm-eval could not load it ({_first_line(exc)}); check its dataset is "
                           "reachable (offline: HF_DATASETS_OFFLINE=1 needs it in the datasets cache)") from None


def run_lm_eval(lm, task_dict: dict, settings: Settings) -> dict | None:
    """One lm-eval run of one task (or group) with ``log_samples``; None on non-zero ranks.

    This is ``simple_evaluate`` minus what it adds after the run (environment report,
    git hash, hub look-up of the model's sha: ~0.7 s per call, which one call per task
    would pay again and again): the same seeds, the same few-shot set-up, then lm-eval's
    own ``evaluate``.  tests/test_evaluate.py checks that the numbers are simple_evaluate's.
    """
    import random

    import numpy as np
    from lm_eval import evaluator
    from lm_eval.defaults import DEFAULT_OTHER_SEED, DEFAULT_RANDOM_SEED
    from lm_eval.utils import set_torch_seed

    random.seed(DEFAULT_RANDOM_SEED)
    np.random.seed(DEFAULT_OTHER_SEED)
    set_torch_seed(DEFAULT_OTHER_SEED)
    for task in task_dict["tasks"].values():
        if task.get_config("num_fewshot") != 0:  # as simple_evaluate: a task fixed at 0 shots stays at 0
            task.set_config(key="num_fewshot", value=settings.num_fewshot)
        task.set_fewshot_seed(seed=DEFAULT_OTHER_SEED)
    results = evaluator.evaluate(lm=lm, task_dict=task_dict, limit=settings.limit, bootstrap_iters=0,
                                 log_samples=True, fewshot_as_multiturn=True)
    if int(os.environ.get("LOCAL_RANK", "0")) != 0:  # tensor parallel: every rank calls itself 0
        return None
    return results


# ------------------------------------------------------------------------------ one evaluation entry
def summarise(results: dict, leaves: dict, tokens: ContinuationTokens, out_dir: Path, ck: Checkpoint,
              num_fewshot: int) -> tuple[dict, int]:
    """The JSON entry of one lm-eval run (metrics, task loss, sample files) and its request count."""
    entry, n_requests = {}, 0
    for name, res in sorted(results["results"].items()):
        task = leaves.get(name)
        samples = results.get("samples", {}).get(name, [])
        metrics = lm_eval_metrics(res, task, samples)
        item = {"version": results.get("versions", {}).get(name), "n_shot": results.get("n-shot", {}).get(name),
                "n_samples": results.get("n-samples", {}).get(name), "metrics": metrics}
        if task is not None and samples:
            spec = taskloss.TaskSpec.of_task(task)
            docs = doc_scores(samples, task, spec, tokens)
            n_requests += sum(len(s["arguments"]) for s in samples)
            item["output_type"] = task.OUTPUT_TYPE
            item["chance"] = taskloss.chance(spec, samples)
            if docs:
                item["task_loss"] = taskloss.aggregate(docs)
                rel = Path("samples") / ck.slug / f"{_safe(name)}.{num_fewshot}shot.jsonl.gz"
                item["samples"] = rel.as_posix()
                item["samples_sha256"] = write_samples(out_dir / rel, docs)
        entry[name] = item
    return entry, n_requests


def doc_scores(samples: list, task, spec: taskloss.TaskSpec, tokens: ContinuationTokens) -> list[taskloss.DocScores]:
    keys = [tuple(a) for s in samples for a in s["arguments"] if len(a) == 2]
    counts = tokens.lookup(keys)
    return taskloss.documents(samples, spec, counts, lambda sample, n: taskloss.gold_indices(task, sample, n))


def lm_eval_metrics(res: dict, task, samples: list) -> dict:
    """{metric: {value, stderr}} from lm-eval's aggregated results; metric 'acc' for filter 'none'."""
    from lm_eval.api.metrics import mean

    aggregations = task.aggregation() if task is not None else {}
    out = {}
    for key, value in res.items():
        if "," not in key or "_stderr," in key or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        metric, filt = key.split(",", 1)
        stderr = res.get(f"{metric}_stderr,{filt}")
        if not isinstance(stderr, (int, float)) and aggregations.get(metric) is mean:
            values = [s[metric] for s in samples if s.get("filter") == filt and isinstance(s.get(metric), (int, float))]
            stderr = taskloss.mean_and_stderr(values)["stderr"] if values else None
        name = metric if filt == "none" else f"{metric},{filt}"
        out[name] = {"value": _finite(value), "stderr": _finite(stderr) if isinstance(stderr, (int, float)) else None}
    return out


def _finite(x):
    return float(x) if x is not None and math.isfinite(x) else None


# ------------------------------------------------------------------------------------- the stage
@dataclass
class Outcome:
    evaluated: int = 0
    skipped: int = 0
    failed: list = field(default_factory=list)


def evaluate(checkpoints: list[Checkpoint], settings: Settings) -> Outcome:
    """Evaluate every checkpoint on every task not already on disk; see the module docstring."""
    out_dir = Path(settings.out_dir)
    describe_folder(out_dir)
    local = local_task_index(settings.include_path)
    plan, stale, outcome = plan_work(checkpoints, settings, local)
    loaded = {}
    if plan:  # validate every task, and read its data, before writing or loading anything
        needed = sorted({t for _, todo in plan for t in todo})
        tm = task_manager(needed, settings.include_path, local)
        loaded = {t: load_task(tm, t) for t in needed}
    for path, record in stale:  # corrected facts (tokens, family, name) need no re-evaluation
        write_json(path, record)
    if not plan:
        log(f"all {outcome.skipped} evaluations up to date in {out_dir}")
        return outcome
    for ck, todo in plan:
        try:  # one bad checkpoint does not cost the others their evaluation
            started = time.perf_counter()
            lm = load_lm(ck, settings)
            load_s = time.perf_counter() - started
            outcome.evaluated += evaluate_checkpoint(lm, ck, todo, settings, loaded, local, load_s)
        except CapcastError as exc:
            if len(plan) > 1:
                log(f"skipping {ck.label}: {exc}")
            outcome.failed.append(f"{ck.label}: {exc}")
        lm = None
        _free_memory()
    if outcome.failed:
        raise CapcastError(" | ".join(outcome.failed) + f" (finished results are kept in {out_dir})")
    return outcome


def plan_work(checkpoints: list[Checkpoint], settings: Settings, local: dict) -> tuple[list, list, Outcome]:
    """([(checkpoint, tasks to run)], [(path, record with refreshed facts)], counts); reads only."""
    plan, stale, outcome = [], [], Outcome()
    for ck in checkpoints:
        path = record_path(settings.out_dir, ck)
        record = read_record(path) or {"evaluations": {}}
        facts = checkpoint_facts(ck)
        if record["evaluations"] and any(record.get(k) != v for k, v in facts.items()):
            stale.append((path, {**record, **facts}))
        todo = [t for t in settings.tasks
                if record["evaluations"].get(evaluation_key(t, settings.num_fewshot), {}).get("settings")
                != wanted(t, settings, local)]
        outcome.skipped += len(settings.tasks) - len(todo)
        if todo:
            plan.append((ck, todo))
    return plan, stale, outcome


def evaluate_checkpoint(lm, ck: Checkpoint, todo: list[str], settings: Settings, loaded: dict, local: dict,
                        load_s: float) -> int:
    """Run and record each task in turn (each written as soon as it is done); returns how many ran."""
    out_dir = Path(settings.out_dir)
    path = record_path(out_dir, ck)
    tokens = ContinuationTokens(lm)
    n_params, n_non_embedding = model_params(lm, ck)
    for i, task in enumerate(todo, 1):
        started = time.perf_counter()
        try:
            results = run_lm_eval(lm, loaded[task], settings)
        except Exception as exc:  # out of memory, a context too long, ...: the first line says which
            raise CapcastError(f"{task}: lm-eval failed ({_first_line(exc)}); if out of memory, lower "
                               "evaluate.batch_size or use dtype: bfloat16") from exc
        wall_s = time.perf_counter() - started
        if results is None:  # not rank 0 of a multi-GPU run: rank 0 writes
            continue
        entry, n_requests = summarise(results, loaded[task]["tasks"], tokens, out_dir, ck, settings.num_fewshot)
        tokens.counts.clear()  # keyed by whole prompts: do not hold them past their task
        record = read_record(path) or {"evaluations": {}}
        record.update(checkpoint_facts(ck), params=n_params, params_non_embedding=n_non_embedding,
                      model_class=type(getattr(lm, "model", lm)).__name__)
        record["evaluations"][evaluation_key(task, settings.num_fewshot)] = {
            "settings": wanted(task, settings, local), "tasks": entry}
        write_json(path, record)
        rate = n_requests / wall_s if wall_s > 0 else float("nan")
        write_timing(out_dir, ck, evaluation_key(task, settings.num_fewshot),
                     {"wall_s": wall_s, "load_s": load_s, "requests": n_requests, "requests_per_s": rate,
                      "batch_size": str(settings.batch_size), "device": settings.device, "backend": settings.backend})
        log(f"[{i}/{len(todo)}] {ck.label} {task}: {headline(entry)} ({wall_s:.1f} s, {rate:.0f} requests/s)")
    return len(todo)


def model_params(lm, ck: Checkpoint) -> tuple[int, int]:
    import torch

    module = getattr(lm, "model", None)
    if isinstance(module, torch.nn.Module):
        return count_params(module)
    return count_params_from_config(ck)


def write_timing(out_dir: Path, ck: Checkpoint, key: str, timing: dict) -> None:
    """Wall times go beside, not into, the record: collect's input stays byte-reproducible."""
    path = Path(out_dir) / "timing" / f"{ck.slug}.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    write_json(path, {**old, key: {k: _finite(v) if isinstance(v, float) else v for k, v in timing.items()}})


def headline(entry: dict) -> str:
    parts = []
    for name, item in entry.items():
        shown = {k: v["value"] for k, v in {**item["metrics"], **item.get("task_loss", {})}.items()
                 if k in ("acc", "acc_norm", "bpb") and v["value"] is not None}
        parts.append(f"{name} " + " ".join(f"{k} {v:.3f}" for k, v in shown.items()))
    return "; ".join(parts)


def _free_memory() -> None:
    """Give the GPU memory of the last model back before loading the next (CPU memory frees itself)."""
    import torch

    if torch.cuda.is_available():
        gc.collect()  # HF models hold reference cycles: without this the weights outlive `del`
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------------- scores rows
def load_eval_rows(evals_dir: str | os.PathLike) -> pd.DataFrame:
    """Validated scores-table rows (suite ``capcast_eval``) of every ``<evals_dir>/*.json``.

    One row per (checkpoint, task, metric): lm-eval's metrics and the task losses.  ``params``
    is the count of the loaded model, ``tokens`` from the registry or params.yaml, ``compute_flops``
    6*N*D, ``source`` the JSON file.  No timing goes in, so the rows are deterministic.
    Returns an empty frame with the schema's columns when there is nothing evaluated yet.
    """
    rows, origin = [], {}
    for path in sorted(Path(evals_dir).glob("*.json")):
        record = read_record(path)
        for row in record_rows(record, str(path)):
            key = tuple(row[k] for k in scores.KEY)
            if key in origin:
                if origin[key] != str(path):
                    raise CapcastError(f"{origin[key]} and {path} both hold {row['model']} step {row['step']} "
                                       f"{row['task']} {row['metric']}; delete one of the two files")
                continue  # the same leaf task through a group and alone: one measurement
            origin[key] = str(path)
            rows.append(row)
    if not rows:
        return pd.DataFrame({c.name: pd.Series(dtype=c.dtype) for c in scores.COLUMNS})
    return scores.validate(pd.DataFrame(rows), origin=f"evaluations in {evals_dir}")


def record_rows(record: dict, source: str) -> list[dict]:
    base = {"suite": SUITE, "model": record["model"], "family": record["family"], "params": record.get("params"),
            "params_non_embedding": record.get("params_non_embedding"),
            "tokens": record["tokens"], "compute_flops": None, "step": record.get("step"), "source": source}
    rows = []
    for key in sorted(record["evaluations"]):
        for task, item in sorted(record["evaluations"][key]["tasks"].items()):
            shots = item.get("n_shot")
            for metric, v in sorted({**item["metrics"], **item.get("task_loss", {})}.items()):
                if v["value"] is not None:
                    rows.append({**base, "task": task, "metric": metric, "value": v["value"],
                                 "stderr": v["stderr"], "num_fewshot": shots,
                                 "chance": taskloss.chance_of(metric, item.get("output_type"), item.get("chance"))})
    return rows


# ------------------------------------------------------------------------------------------ CLI
def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pipeline evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--from-params", action="store_true", help="read everything from params.yaml's evaluate: section")
    p.add_argument("--params", default="params.yaml", help="params file for --from-params (default: params.yaml)")
    p.add_argument("--model", help="Hugging Face id or local folder")
    p.add_argument("--revision", action="append", help="revision(s), e.g. step3000; repeat or comma-separate")
    p.add_argument("--family", help="model family (default: from the families registry)")
    p.add_argument("--name", help="model name in the scores table (default: the id or path)")
    p.add_argument("--tokens", type=float, help="training tokens at this checkpoint (models outside the registry)")
    p.add_argument("--tokens-per-step", type=float, help="tokens per training step, for stepN revisions")
    p.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated lm-eval task names")
    p.add_argument("--include-path", help="folder of local task YAMLs")
    p.add_argument("--num-fewshot", type=int, default=0)
    p.add_argument("--limit", type=float, help="documents per task (testing only; <1 means a fraction)")
    p.add_argument("--batch-size", default="auto", help="int or 'auto' (not part of the skip key)")
    p.add_argument("--device", default="auto", help="cuda, cuda:1, cpu, mps or auto")
    p.add_argument("--dtype", default="auto", help="auto (the checkpoint's), float32, bfloat16, float16")
    p.add_argument("--backend", default="hf", help="lm-eval model type: hf (default) or vllm")
    p.add_argument("--model-args", help="extra backend args, lm-eval style: parallelize=True,tensor_parallel_size=2")
    p.add_argument("--out", help="output folder (default: data/evals)")
    p.add_argument("--shard", help="K/N: evaluate only every N-th checkpoint from the K-th (0-based), to run "
                                   "N processes side by side, e.g. one per GPU")
    return p.parse_args(argv)


def shard(checkpoints: list[Checkpoint], spec: str | None) -> list[Checkpoint]:
    if not spec:
        return checkpoints
    match = re.fullmatch(r"(\d+)/(\d+)", spec.strip())
    if not match or not int(match[1]) < int(match[2]):
        raise CapcastError(f"--shard {spec!r}: give K/N with 0 <= K < N, e.g. --shard 0/4")
    k, n = int(match[1]), int(match[2])
    return checkpoints[k::n]


def config_from_args(args: argparse.Namespace) -> tuple[list[Checkpoint], Settings]:
    if args.from_params:
        if args.model:
            raise CapcastError("--from-params reads the models from params.yaml; drop --model (or drop --from-params)")
        section = params.load("evaluate", args.params)
        settings = settings_from_params(section)
        if args.out:
            settings = replace(settings, out_dir=Path(args.out))
        return checkpoints_from_entries(section.get("models") or []), settings
    if not args.model:
        raise CapcastError("give --model ID_OR_PATH (and --tasks), or --from-params to use params.yaml")
    from lm_eval.utils import simple_parse_args_string

    entry = {"model": args.model, "family": args.family, "name": args.name,
             "model_args": simple_parse_args_string(args.model_args)}
    if args.revision:
        entry["revisions"] = [r.strip() for rs in args.revision for r in rs.split(",") if r.strip()]
    if args.tokens is not None:
        entry["tokens"] = args.tokens
    if args.tokens_per_step is not None:
        entry["tokens_per_step"] = args.tokens_per_step
    entry = {k: v for k, v in entry.items() if v not in (None, {})}
    batch = check_batch_size(args.batch_size, "--batch-size")
    settings = settings_from_params({
        "tasks": args.tasks, "num_fewshot": args.num_fewshot, "limit": args.limit, "batch_size": batch,
        "device": check_device(args.device, "--device"), "dtype": args.dtype, "backend": args.backend, "include_path": args.include_path,
        "out_dir": args.out or "data/evals"})
    return checkpoints_from_entries([entry], where="--model"), settings


def describe_folder(out_dir: Path) -> None:
    """Create the output folder with a README, so that the DVC output exists (and is not empty) with no models;
    remove the temp files a killed run left in it (they would end up in the DVC-tracked output)."""
    for path in scores.clean_stale_temps(out_dir, recursive=True):
        log(f"removed {path}, left by an interrupted write")
    readme = out_dir / "README.txt"
    if not readme.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        readme.write_text(
            "capcast evaluations (python -m pipeline evaluate; see README, 'Evaluating checkpoints')\n"
            "<model>@<revision>.json  metrics and task losses per task; what collect reads\n"
            "samples/                 every choice's log-likelihood per document, gzipped JSON lines\n"
            "timing/                  wall time and throughput per evaluation\n")


def _main(argv: list[str]) -> int:
    args = parse_args(argv)
    checkpoints, settings = config_from_args(args)
    checkpoints = shard(checkpoints, args.shard)
    if not checkpoints:
        describe_folder(Path(settings.out_dir))
        log(f"no checkpoints to evaluate (evaluate.models is empty, or this shard has none); {settings.out_dir} kept as is")
        return 0
    outcome = evaluate(checkpoints, settings)
    log(f"{outcome.evaluated} evaluated, {outcome.skipped} already up to date, results in {settings.out_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from pipeline.cli import run_cli

    try:
        return run_cli(_main, list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        print("error: interrupted; every finished evaluation is kept, re-run the same command to resume",
              file=sys.stderr)
        return 130
