"""Import lm-eval output folders into the scores table (suite ``lm_eval``).

    python -m pipeline ingest lm-eval DIR... [--family F] [--tokens D | --tokens-per-param R |
        --tokens-per-step S] [--params N] [--chance TASK=LEVEL,...] [--tokenizer ID] --out FILE

``DIR`` is what ``lm_eval ... --log_samples --output_path DIR`` wrote (or any folder above it, or
one results JSON).  Every ``results_*.json`` under it is one run of one checkpoint; from it come
the model (``config.model_args``: ``pretrained=``, and ``revision=stepN`` as the step), the shots
(``n-shot``), the task versions, ``model_num_parameters`` and lm-eval's aggregated metrics, as
rows.  Beside it, the ``samples_<task>_<date>.jsonl`` files of the same run give the task losses
(nll, nll_token, nll_char, bpb, prob_correct) and the random-guess level of each task, computed
by the same code as the evaluate stage (:mod:`pipeline.sources.taskloss`).

Token counts (for ``nll_token``) and the non-embedding parameter count need the checkpoint's
tokenizer and config.json; they are read from the model folder or the local Hugging Face cache
(never downloaded, no weights loaded), and tokenized exactly as lm-eval's ``hf`` model does.
Where they cannot be read, ``nll_token`` is left out (the other losses need no tokenizer) and
the import says so.

Everything is read and checked before anything is written: a malformed or partial folder stops
with one line naming the file, and ``--out`` is written atomically or not at all.
"""
from __future__ import annotations

import ast
import functools
import json
import logging
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import scores
from pipeline.parallel import fork_map
from pipeline.sources import families, taskloss
from pipeline.sources.lm_eval_files import (LmEvalError, date_id, missing_samples, orphan_samples,  # noqa: F401
                                            results_files, samples_files)

SUITE = "lm_eval"
# A local checkpoint folder named stepN is checkpoint N of the model in the folder above it.
STEP_FOLDER = re.compile(r"^step(\d+)$")


@dataclass(frozen=True)
class Facts:
    """What lm-eval does not record and the scores table needs (command line, or a
    ``collect.lm_eval_dirs`` entry of params.yaml)."""

    family: str | None = None
    tokens: float | None = None
    tokens_per_param: float | None = None
    tokens_per_step: float | None = None
    params: dict = field(default_factory=dict)  # {model: N}; key "*" for every model
    tokenizer: str | None = None
    chance: dict = field(default_factory=dict)  # {task: level}
    suite: str = SUITE

    def __post_init__(self):
        given = [k for k in ("tokens", "tokens_per_param", "tokens_per_step") if getattr(self, k) is not None]
        if len(given) > 1:
            raise LmEvalError(f"give one of --tokens, --tokens-per-param, --tokens-per-step, not "
                               f"{' and '.join('--' + k.replace('_', '-') for k in given)}")
        for k in given:
            if not (math.isfinite(getattr(self, k)) and getattr(self, k) > 0):
                raise LmEvalError(f"--{k.replace('_', '-')} must be a number > 0, got {getattr(self, k)}")


    @classmethod
    def from_entry(cls, entry: dict) -> "Facts":
        """From a ``collect.lm_eval_dirs`` entry of params.yaml (the CLI's options, as keys)."""
        number = {k: None if entry.get(k) is None else float(entry[k])
                  for k in ("tokens", "tokens_per_param", "tokens_per_step")}
        return cls(entry.get("family"), **number, params=parse_params(entry.get("params")),
                   tokenizer=entry.get("tokenizer"), chance=dict(entry.get("chance") or {}),
                   suite=entry.get("suite", SUITE))


def parse_params(spec: str | float | dict | None) -> dict:
    """``--params`` as ``N`` (every model) or ``MODEL=N[,MODEL=N...]`` -> {model or "*": N}."""
    if spec is None or spec == {}:
        return {}
    if isinstance(spec, dict):
        items = list(spec.items())
    elif isinstance(spec, (int, float)):
        items = [("*", spec)]
    else:
        items = []
        for part in str(spec).split(","):
            model, sep, value = part.strip().rpartition("=")
            items.append((model.strip() if sep else "*", value))
    out = {}
    for model, value in items:
        try:
            n = float(value)
        except (TypeError, ValueError):
            n = float("nan")
        if not (math.isfinite(n) and n > 0) or not model:
            raise LmEvalError(f"--params {spec!r}: give a count > 0 (--params 1.2e9) or MODEL=N pairs")
        out[str(model)] = n
    return out


# ------------------------------------------------------------------------------------ finding files
# --------------------------------------------------------------------------------------- one run
@dataclass
class Run:
    """One results JSON: one checkpoint evaluated on one or more tasks."""

    path: Path
    doc: dict
    args: dict  # config.model_args
    model: str  # the scores table's model
    pretrained: str  # what lm-eval loaded
    revision: str | None
    step: int | None


def read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise LmEvalError(f"{path}: not UTF-8 text ({exc.reason}); is this an lm-eval results file?") from None
    except ValueError as exc:
        raise LmEvalError(f"{path}: malformed JSON ({exc}); a partial file? re-run lm-eval for it or "
                           "remove it") from None
    except RecursionError:
        raise LmEvalError(f"{path}: nested too deeply to be an lm-eval results file; point at lm-eval's own "
                          "output") from None
    return doc


def model_args(config: dict, path: Path) -> dict:
    args = config.get("model_args")
    if isinstance(args, str):
        from lm_eval.utils import simple_parse_args_string

        args = simple_parse_args_string(args)
    if not isinstance(args, dict):
        raise LmEvalError(f"{path}: config.model_args is missing; is this an lm-eval results file?")
    return args


def read_run(path: Path) -> Run:
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), dict) or not doc["results"]:
        raise LmEvalError(f"{path}: no 'results' in it: not an lm-eval results JSON (or a partial one); "
                           "point at the folder lm_eval --output_path wrote")
    if not isinstance(doc.get("config"), dict):
        raise LmEvalError(f"{path}: no 'config' object; is this an lm-eval (0.4+) results file?")
    for section in ("results", "configs", "n-shot", "versions", "n-samples"):
        if doc.get(section) is not None and not isinstance(doc[section], dict):
            raise LmEvalError(f"{path}: '{section}' is not an object (task -> ...); not lm-eval's output, or an "
                              "edited one: re-run lm-eval for it or remove it")
    for section in ("results", "configs"):
        bad = sorted(t for t, v in (doc.get(section) or {}).items() if not isinstance(v, dict))
        if bad:
            raise LmEvalError(f"{path}: {section}.{bad[0]} is not an object of {'metrics' if section == 'results' else 'settings'}; "
                              "not lm-eval's output, or an edited one: re-run lm-eval for it or remove it")
    flat = [k for res in doc["results"].values() if isinstance(res, dict) for k in res if k != "alias"]
    if flat and not any("," in k for k in flat):
        raise LmEvalError(f"{path}: metrics without a filter ('acc', not 'acc,none'): an lm-eval 0.3 results file; "
                          "capcast reads lm-eval 0.4+ output: re-run the evaluation with lm-eval >= 0.4")
    args = model_args(doc["config"], path)
    pretrained = args.get("pretrained") or args.get("model") or doc.get("model_name")
    if not isinstance(pretrained, str) or not pretrained.strip():
        raise LmEvalError(f"{path}: config.model_args names no model (pretrained=...)")
    pretrained = pretrained.strip()
    revision = args.get("revision") or doc["config"].get("model_revision")
    revision = None if revision in (None, "", "main") else str(revision)
    model, step = pretrained.rstrip("/").removeprefix("./"), _step(revision)
    folder = STEP_FOLDER.match(Path(model).name)
    # a path (local here, or of the machine that ran lm-eval: a hub id has one slash at most)
    path_like = _is_local(pretrained) or model.count("/") >= 2 or pretrained.startswith((".", "/", "~"))
    if folder and revision is None and path_like:
        model, step = str(Path(model).parent), int(folder.group(1))
    return Run(path, doc, args, model, pretrained, revision, step)


def _is_local(model: str) -> bool:
    from pipeline.sources.evaluation import is_local

    return is_local(model)


def _step(revision: str | None) -> int | None:
    try:
        return families.parse_step(revision)
    except ValueError:  # a branch or tag that is not stepN: a checkpoint without a step
        return None


# ------------------------------------------------------------------------ counts from the checkpoint
def _meta_model(source: str, revision: str | None):
    """The model of ``source``'s config.json on the meta device: its shapes, no weights (read locally)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(source, revision=revision, local_files_only=True)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


@functools.lru_cache(maxsize=None)
def checkpoint_tools(pretrained: str, revision: str | None, tokenizer: str | None, add_bos: bool | None):
    """(parameter counts or None, token counter or None, why not): from the checkpoint's config.json
    and tokenizer (or ``tokenizer``), read locally (folder or Hugging Face cache), no weights loaded,
    nothing downloaded."""
    from transformers import AutoTokenizer

    from pipeline.sources.lm_eval_run import ContinuationTokens, count_params

    quiet = [logging.getLogger(n) for n in ("lm_eval", "transformers")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.ERROR)
    counts, model, why = None, None, ""
    try:
        try:
            model = _meta_model(pretrained, revision)
            counts = count_params(model)
        except Exception as exc:  # not on this machine, an unknown architecture, ...: counts come from elsewhere
            why = _first_line(exc)
            if not tokenizer:
                return None, None, why
            model = _meta_model(tokenizer, None)  # a host for the tokenizer, with its model type's settings
        from lm_eval.models.huggingface import HFLM

        tok = AutoTokenizer.from_pretrained(tokenizer or pretrained, revision=None if tokenizer else revision,
                                            local_files_only=True)
        # lm-eval's own tokenization of each request (HFLM._encode_pair), on a model without weights
        lm = HFLM(pretrained=model, tokenizer=tok, backend="causal", add_bos_token=add_bos)
        return counts, ContinuationTokens(lm), ""
    except Exception as exc:
        return counts, None, why or _first_line(exc)
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _bool_arg(value) -> bool | None:
    if value is None:
        return None
    return str(value).strip().lower() in ("1", "true", "yes")


# ------------------------------------------------------------------------------- the samples
def read_samples(path: Path) -> list[dict]:
    """A samples JSONL back in lm-eval's in-memory form: (context, continuation) arguments and
    (log-likelihood, is_greedy) responses (the file holds them as text)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                s = json.loads(line)
                s["arguments"] = _arguments(s["arguments"])
                s["filtered_resps"] = [_response(r) for r in s["filtered_resps"]]
                int(s["doc_id"])
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                raise LmEvalError(f"{path}: line {i} is not an lm-eval sample ({_first_line(exc)}); a partial "
                                   "file? re-run lm-eval for this checkpoint or remove the run's files") from None
            out.append(s)
    return out


def _arguments(args) -> list[tuple]:
    if isinstance(args, dict):  # {"gen_args_0": {"arg_0": context, "arg_1": continuation}, ...}
        items = sorted(args.items(), key=lambda kv: int(kv[0].rpartition("_")[2]))
        return [tuple(v[f"arg_{j}"] for j in range(len(v))) for _, v in items]
    return [tuple(a) for a in args]


def _response(r):
    """('-1.25', 'False') -> (-1.25, False); a generated text stays as it is."""
    if isinstance(r, (list, tuple)) and len(r) == 2:
        ll = float(r[0])
        greedy = r[1] if isinstance(r[1], bool) else str(r[1]) == "True"
        return ll, greedy
    return r


def _target(text):
    """The logged target (lm-eval writes ``str(target)``): an index, a list of them, or a text."""
    if not isinstance(text, str):
        return text
    t = text.strip()
    if re.fullmatch(r"-?\d+", t):
        return int(t)
    if t.startswith("["):
        try:
            value = ast.literal_eval(t)  # literals only: never code
        except (ValueError, SyntaxError):
            return text
        if isinstance(value, list) and all(isinstance(v, (int, str)) for v in value):
            return value
    return text


class NoGold(Exception):
    """The log does not say which choice is correct."""


def logged_gold(spec: taskloss.TaskSpec):
    """``find_gold`` for :func:`taskloss.documents` from a logged sample alone.

    The target is the logged ``doc_to_target`` (an index, indices, or a choice's text).  Tasks with
    several contexts and one continuation (winogrande) keep their answer in ``doc_to_text``, which
    lm-eval does not log; there the per-sample ``acc`` says it for two choices (right: the argmax;
    wrong: the other one), and :class:`NoGold` is raised otherwise."""
    def find(sample, n):
        args = sample["arguments"][:n]
        if n > 1 and len({c for _, c in args}) == 1 and len({c for c, _ in args}) > 1:
            acc = sample.get("acc")
            best = int(np.argmax([r[0] for r in sample["filtered_resps"][:n]]))
            if not isinstance(acc, (int, float)):
                raise NoGold("no per-sample acc")
            if acc >= 0.5:
                return [best]
            if n == 2:
                return [1 - best]
            raise NoGold(f"{n} contexts and a wrong answer")
        return taskloss.gold_from_target(_target(sample["target"]), n,
                                         lambda: taskloss.choice_texts(args, spec.delimiter))
    return find


def check_samples(path: Path, task: str, samples: list, docs: list, run: Run, spec: taskloss.TaskSpec) -> None:
    """The samples must be those of the results: same documents, same per-document accuracy."""
    n_docs = len({s["doc_id"] for s in samples})
    counts = (run.doc.get("n-samples") or {}).get(task) or {}
    expected = counts.get("effective")
    if isinstance(expected, int) and expected != n_docs:
        raise LmEvalError(f"{path}: {n_docs} documents, but {run.path.name} says {expected} for {task}; the "
                           "samples are not those of this run (keep each run's files together, or re-run it)")
    res = run.doc["results"].get(task, {})
    for key, value in res.items():
        metric, _, filt = key.partition(",")
        if not filt or "_stderr" in metric or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        per_doc = [s[metric] for s in samples if s.get("filter") == filt and isinstance(s.get(metric), (int, float))
                   and not isinstance(s.get(metric), bool)]
        if metric in ("acc", "acc_norm", "exact_match") and len(per_doc) == n_docs and n_docs:
            if abs(math.fsum(per_doc) / n_docs - value) > 1e-9:
                raise LmEvalError(f"{path}: the documents' {metric} averages {math.fsum(per_doc) / n_docs:.6g}, but "
                                   f"{run.path.name} says {value:.6g}; the samples are not those of this run")
    if spec.output_type != "multiple_choice" or spec.mutual_info:
        return
    by_id = {s["doc_id"]: s for s in samples}
    for d in docs:
        acc = by_id[d.doc_id].get("acc")
        if isinstance(acc, (int, float)) and (int(np.argmax(d.ll)) in d.gold) != (acc >= 0.5):
            raise LmEvalError(f"{path}: document {d.doc_id}: its logged acc ({acc:g}) does not follow from its "
                               "target and log-likelihoods; the file was edited or is not lm-eval's")


def documents(run: Run, task: str, path: Path, spec: taskloss.TaskSpec, counter) -> tuple[list, list]:
    """(samples, :class:`taskloss.DocScores` per document) of one task's samples file, checked
    against the run's results; :class:`NoGold` where the log does not say the correct choices."""
    samples = read_samples(path)
    counts = counter.lookup([tuple(a) for s in samples for a in s["arguments"] if len(a) == 2]) if counter else {}
    docs = taskloss.documents(samples, spec, counts, logged_gold(spec))
    check_samples(path, task, samples, docs, run, spec)
    return samples, docs


def task_losses(run: Run, task: str, path: Path, spec: taskloss.TaskSpec, counter, notes: list) -> dict:
    """(task losses, chance) of one task from its samples file."""
    try:
        samples, docs = documents(run, task, path, spec, counter)
    except NoGold as exc:
        notes.append(f"{path}: the log does not say which choice is correct ({exc}); task losses of {task} "
                     "left out, accuracies imported")
        return {"chance": taskloss.chance(spec, read_samples(path))}
    return {"task_loss": taskloss.aggregate(docs) if docs else {}, "chance": taskloss.chance(spec, samples)}


# ------------------------------------------------------------------------------------ rows
def facts_of(run: Run, facts: Facts, counts) -> dict:
    """family, params, params_non_embedding, tokens of one run's checkpoint."""
    found = families.find(run.model)
    family = facts.family or (found[0].name if found else None)
    if not family:
        raise LmEvalError(f"{run.path}: {run.model!r} is not in the families registry; give --family NAME "
                           "(the name of your ladder)")
    recorded = run.doc["config"].get("model_num_parameters")
    recorded = float(recorded) if isinstance(recorded, (int, float)) and recorded > 0 else None
    given = facts.params.get(run.model, facts.params.get("*"))
    params = given or recorded or (counts[0] if counts else None) or (found[1].params if found else None)
    if not params:
        raise LmEvalError(f"{run.path}: no parameter count for {run.model} (lm-eval recorded no "
                           "model_num_parameters and its config.json is not on this machine); pass --params N")
    non_emb = counts[1] if counts else (found[1].params_non_embedding if found else None)
    return {"family": family, "params": float(params), "params_non_embedding": non_emb,
            "tokens": tokens_of(run, facts, float(params), found)}


def tokens_of(run: Run, facts: Facts, params: float, found) -> float:
    if facts.tokens is not None:
        return facts.tokens
    if facts.tokens_per_param is not None:
        return facts.tokens_per_param * params
    if facts.tokens_per_step is not None:
        if run.step is None:
            raise LmEvalError(f"{run.path}: {run.model} has no step (revision=stepN, or a folder named stepN) "
                               "to multiply --tokens-per-step by; give --tokens D instead")
        return facts.tokens_per_step * run.step
    if found is not None and not (found[0].tokens_per_step and run.revision and run.step is None):
        return found[0].tokens_at(found[1], run.step)
    raise LmEvalError(f"{run.path}: how many training tokens had {run.model} seen? give --tokens D, "
                       "--tokens-per-param R or --tokens-per-step S")


def run_rows(run: Run, facts: Facts) -> tuple[list[dict], list[str]]:
    """Scores rows of one results JSON (lm-eval's metrics, task losses and chance per task), and
    notes for the user (what was left out, and why)."""
    from pipeline.sources.lm_eval_run import lm_eval_metrics

    notes: list[str] = []
    files = samples_files(run.path)
    stray = sorted(set(files) - set(run.doc["results"]))
    if stray:
        raise LmEvalError(f"{run.path}: samples files for {', '.join(stray)}, a task its results do not hold (files of "
                          "two runs mixed, or renamed); re-run lm-eval for this checkpoint or remove the stray files")
    if files and not run.doc.get("configs"):
        notes.append(f"{run.path}: no 'configs' in the results, so the samples cannot be read as choices: task losses "
                     "left out, accuracies imported")
    leaves = sorted(t for t in run.doc["results"] if t in (run.doc.get("configs") or {}))
    have = [t for t in leaves if t in files]
    if have and len(have) < len(leaves):
        missing = ", ".join(t for t in leaves if t not in files)
        raise LmEvalError(f"{run.path}: samples files for {', '.join(have)} but none for {missing} (an interrupted "
                           "run, or files moved apart); re-run lm-eval for this checkpoint or remove its files")
    counts, counter, why = checkpoint_tools(run.pretrained, run.revision, facts.tokenizer,
                                            _bool_arg(run.args.get("add_bos_token")))
    if have and counter is None:
        notes.append(f"{run.model}: nll_token left out: counting lm-eval's tokens needs the checkpoint's "
                     f"config.json and tokenizer, not found on this machine ({why}); --tokenizer ID_OR_FOLDER "
                     "names a local one")
    base = {"suite": facts.suite, "model": run.model, "step": run.step, "compute_flops": None,
            "source": str(run.path), **facts_of(run, facts, counts)}
    rows = []
    for task, res in sorted(run.doc["results"].items()):
        config = (run.doc.get("configs") or {}).get(task) or {}
        spec = taskloss.TaskSpec.of_config(config) if config else None
        item = {"chance": taskloss.chance(spec, []) if spec else None}
        _check_fractions(run, task, res)
        if task in files and spec is not None:
            item = task_losses(run, task, files[task], spec, counter, notes)
        shots = _shots(run, task)
        reported = lm_eval_metrics(res, None, [])
        for metric, v in sorted(reported.items()):  # a NaN would drop the row and keep its neighbours
            if v["value"] is None:
                raise LmEvalError(f"{run.path}: {task} {metric} is {_raw(res, metric)} in the results, not a number; "
                                  "lm-eval could not compute it: re-run that task, or remove it from the file")
        for metric, v in sorted({**reported, **item.get("task_loss", {})}.items()):
            if v["value"] is None:
                continue
            rows.append({**base, "task": task, "metric": metric, "value": v["value"], "stderr": v["stderr"],
                         "num_fewshot": shots,
                         "chance": taskloss.chance_of(metric, spec.output_type if spec else None, item["chance"]),
                         "task_version": _version(run.doc, task)})
    return rows, notes


def _shots(run: Run, task: str) -> int | None:
    """``n-shot`` of a task: a whole number (lm-eval's int, or its text), or None where not recorded."""
    shots = (run.doc.get("n-shot") or {}).get(task)
    if shots is None or (isinstance(shots, int) and not isinstance(shots, bool) and shots >= 0):
        return shots
    if isinstance(shots, str) and shots.strip().isdigit():
        return int(shots.strip())
    raise LmEvalError(f"{run.path}: n-shot of {task} is {shots!r}, not a whole number of examples; fix it (0 for "
                      "zero-shot) or re-run lm-eval")


def _raw(res: dict, metric: str) -> str:
    name, _, filt = metric.partition(",")
    return repr(res.get(f"{name},{filt or 'none'}"))


def _check_fractions(run: Run, task: str, res: dict) -> None:
    """lm-eval writes accuracies as fractions: a value above 1 in the results is the results' fault
    (an edited file, or another tool's percent), before any samples are compared with it."""
    for key, value in res.items():
        metric = key.partition(",")[0]
        if "_stderr" in metric or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if scores.metric_kind(metric) == "accuracy" and math.isfinite(value) and not 0 <= value <= 1:
            hint = "percent? lm-eval writes fractions: divide by 100" if 1 < value <= 100 else "fix the value"
            raise LmEvalError(f"{run.path}: {task} {key} is {value:g} in the results, outside [0, 1] ({hint}, or "
                              "re-run lm-eval)")


def _version(doc: dict, task: str):
    v = (doc.get("versions") or {}).get(task)
    return None if v is None else str(v)


def import_runs(paths, facts: Facts | None = None, log=None, progress=None, processes: int = 1) -> pd.DataFrame:
    """Validated scores rows of every run under ``paths`` (see the module docstring); ``progress``:
    a bar over the results files (:mod:`pipeline.parallel`); the runs are read in ``processes``
    forked workers (the same rows, in the same order, whatever the number)."""
    facts = facts or Facts()
    files = results_files(paths)
    orphans = orphan_samples(files)
    if orphans:
        raise LmEvalError(f"{orphans[0]}: no results JSON of the same run beside it (an interrupted run?); "
                           "re-run lm-eval for that checkpoint or remove the file")
    runs = [read_run(p) for p in files]
    unknown = sorted(set(facts.params) - {"*"} - {r.model for r in runs})
    if unknown:
        raise LmEvalError(f"--params names {', '.join(unknown)}, which no results file holds "
                           f"(models: {', '.join(sorted({r.model for r in runs}))})")
    if "*" in facts.params and len({r.model for r in runs}) > 1:
        raise LmEvalError(f"--params gives one count for {len({r.model for r in runs})} models; "
                           "give MODEL=N pairs, or import each model on its own")
    notes, rows, origin = [missing_samples(paths)], [], {}
    for run, (mine, said) in zip(runs, fork_map(lambda r: run_rows(r, facts), runs, processes, progress)):
        notes += said
        for row in mine:
            key = tuple(row[k] for k in scores.KEY)
            if key in origin:
                raise LmEvalError(f"{origin[key]} and {run.path} both hold {row['model']} step {row['step']} "
                                   f"{row['task']} {row['metric']} ({row['num_fewshot']}-shot); remove one of the two "
                                   "runs (or, for two revisions that are not stepN, import them separately)")
            origin[key] = str(run.path)
            rows.append(row)
    if not rows:
        raise LmEvalError(f"{files[0]}: no metrics in the results (lm-eval's 'acc,none', ...); is this an lm-eval "
                          "0.4+ results file?")
    steps = {}
    for run in runs:
        steps.setdefault(run.model, set()).add(run.step)
    several = sorted(m for m, s in steps.items() if len(s - {None}) > 1)
    if facts.tokens is not None and several:
        raise LmEvalError(f"--tokens gives every checkpoint {facts.tokens:g} tokens, but {several[0]} has checkpoints at "
                          "several steps, which saw different counts; give --tokens-per-step S instead")
    table = pd.DataFrame(rows)
    versions = table.dropna(subset=["task_version"]).groupby("task")["task_version"].unique()
    for task, vs in versions.items():
        if len(vs) > 1:
            raise LmEvalError(f"task {task} has versions {', '.join(sorted(vs))} among the results; numbers of "
                               "different task versions do not compare: import them separately (--suite)")
    table = scores.with_chance(table, facts.chance)
    for note in dict.fromkeys(filter(None, notes)):
        (log or (lambda m: print(f"ingest lm-eval: {m}", file=sys.stderr)))(note)
    return scores.validate(table, origin=f"lm-eval results under {', '.join(map(str, paths))}")
