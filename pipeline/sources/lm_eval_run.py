"""Running lm-eval on checkpoints: what ``python -m pipeline evaluate`` does (:func:`evaluate`).

For every checkpoint (:class:`pipeline.sources.evaluation.Checkpoint`) and every task,
:func:`evaluate` loads the model once with lm-eval (``HFLM``, or any lm-eval backend), runs each
task through lm-eval's Python API exactly as ``simple_evaluate`` does, with ``log_samples=True``
(see :func:`run_lm_eval`), and keeps, per task:

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
"""
from __future__ import annotations

import difflib
import functools
import gc
import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import CapcastError
from pipeline.parallel import bar
from pipeline.sources import taskloss
from pipeline.sources.evaluation import (Checkpoint, Settings, checkpoint_facts, describe_folder, evaluation_key,
                                         is_local, lm_eval_version, local_task_index, log, read_record, record_path,
                                         safe_name, wanted, write_json, write_samples)

_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")


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
                rel = Path("samples") / ck.slug / f"{safe_name(name)}.{num_fewshot}shot.jsonl.gz"
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


# -------------------------------------------------------------------------- evaluating checkpoints
@dataclass
class Outcome:
    evaluated: int = 0
    skipped: int = 0
    failed: list = field(default_factory=list)


def evaluate(checkpoints: list[Checkpoint], settings: Settings, progress=None) -> Outcome:
    """Evaluate every checkpoint on every task not already on disk; see the module docstring.
    ``progress``: a bar over the (checkpoint, task) evaluations to run (:mod:`pipeline.parallel`)."""
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
    done, counted = bar(progress, sum(len(todo) for _, todo in plan)), [0, 0]  # [tasks planned so far, shown]

    def tick():
        done.update()
        counted[1] += 1

    for ck, todo in plan:
        try:  # one bad checkpoint does not cost the others their evaluation
            started = time.perf_counter()
            lm = load_lm(ck, settings)
            load_s = time.perf_counter() - started
            outcome.evaluated += evaluate_checkpoint(lm, ck, todo, settings, loaded, local, load_s, tick)
        except CapcastError as exc:
            if len(plan) > 1:
                log(f"skipping {ck.label}: {exc}")
            outcome.failed.append(f"{ck.label}: {exc}")
        lm = None
        _free_memory()
        counted[0] += len(todo)
        done.update(counted[0] - counted[1])  # a failed checkpoint's tasks count as passed
        counted[1] = counted[0]
    done.close()
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
                        load_s: float, tick=None) -> int:
    """Run and record each task in turn (each written as soon as it is done); returns how many ran.
    ``tick``: called once per task done (a progress bar's step)."""
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
        if tick is not None:
            tick()
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
