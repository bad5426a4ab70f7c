"""Task loss from lm-eval's per-sample log-likelihoods: no second forward pass.

lm-eval scores a multiple-choice document as one ``(context, delimiter + choice)`` request per
choice and logs, per document, the log-likelihood of every request.  From those numbers alone
this module computes the losses that scaling-law work fits instead of (or before) accuracy:

* ``nll``: negative log-likelihood of the correct continuation, in nats per document;
* ``nll_token``, ``nll_char``, ``bpb``: the same divided by the continuation's length in
  tokens, characters or bytes (bits per byte: nats / bytes / ln 2) -- the "ranked
  classification" task loss of Bhagia et al. 2024 (OLMo model ladder);
* ``prob_correct``: probability mass on the correct choice, normalised over the choices
  (Schaeffer et al. 2024); multiple-choice tasks only.

Each is the mean over documents of a per-document value (per-document normalisation, as the
OLMo ladder does), with the standard error of that mean.  Lengths exclude the task's target
delimiter and leading whitespace: the space before an answer separates it, it is not part of
it (so chars and bytes equal what lm-eval's ``acc_norm`` / ``acc_bytes`` divide by).

The evaluate stage (the samples of its own run, in memory) and the lm-eval importer (the
``samples_<task>_*.jsonl`` files of ``lm_eval --log_samples``) both go through :func:`documents`
and :func:`aggregate`, and both take a task's random-guess level from :func:`chance`; they differ
only in where they read the task's facts (:class:`TaskSpec`) and the gold choice from.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from pipeline import scores

LN2 = math.log(2.0)


@dataclass(frozen=True)
class DocScores:
    """One document's log-likelihoods, as kept in the compressed samples file."""

    doc_id: int
    gold: list  # indices of correct continuations (several for multiple-target tasks)
    ll: list  # log-likelihood of every continuation, in nats
    greedy: list  # whether each continuation is the greedy decode
    tokens: list  # tokens lm-eval scored for each continuation (None if unknown)
    chars: list
    bytes: list
    continuations: list  # the scored continuation texts, delimiter included
    prompt_hash: str | None = None
    doc_hash: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TaskSpec:
    """What the task losses need to know of a task: lm-eval's output type, the delimiter it puts
    before each continuation, and whether ``acc_mutual_info`` adds an unconditional request per
    choice.  Built from an lm-eval Task (the evaluate stage) or from the task's entry in a results
    JSON's ``configs`` (the lm-eval importer), so that both compute the losses with one code path."""

    output_type: str
    delimiter: str = " "
    mutual_info: bool = False

    @classmethod
    def of_task(cls, task) -> "TaskSpec":
        delimiter = task.config.target_delimiter
        return cls(task.OUTPUT_TYPE, " " if delimiter is None else delimiter,
                   "acc_mutual_info" in getattr(task, "_metric_fn_list", {}))

    @classmethod
    def of_config(cls, config: dict) -> "TaskSpec":
        delimiter = config.get("target_delimiter")
        metrics = {m.get("metric") for m in config.get("metric_list") or [] if isinstance(m, dict)}
        return cls(str(config.get("output_type")), " " if delimiter is None else str(delimiter),
                   "acc_mutual_info" in metrics)


def scored_text(continuation: str, delimiter: str) -> str:
    """The answer text whose length normalises the loss: no delimiter, no leading space."""
    if delimiter and continuation.startswith(delimiter):
        continuation = continuation[len(delimiter):]
    return continuation.lstrip()


def choice_texts(arguments, delimiter: str) -> list[str]:
    """The choices as ``doc_to_choice`` gives them: lm-eval scores ``delimiter + choice``."""
    return [c[len(delimiter):] if delimiter and c.startswith(delimiter) else c for _, c in arguments]


def gold_from_target(target, n_choices: int, choices) -> list[int]:
    """Indices of the correct choice(s) from a target as lm-eval's ``process_results`` reads it: an
    index, a list of them, or a choice's text (``choices()`` gives the texts, asked only then).
    Labels out of range are dropped (lm-eval scores such a document as wrong)."""
    golds = target if isinstance(target, list) else [target]
    if any(isinstance(g, str) for g in golds):
        texts = list(choices())
        golds = [texts.index(g) if isinstance(g, str) and g in texts else g for g in golds]
    return [int(g) for g in golds
            if isinstance(g, (int, np.integer)) and not isinstance(g, bool) and 0 <= int(g) < n_choices]


def gold_indices(task, sample: dict, n_choices: int) -> list[int]:
    """Indices of the correct choice(s) of a sample of an lm-eval Task (the evaluate stage).

    Multiple-input tasks (winogrande: several contexts, one continuation) keep the answer in
    ``doc_to_text``; the others in ``doc_to_target``, which lm-eval already logged as the
    sample's ``target``.  Task templates are only rendered again where the log does not say, as
    rendering costs more than the rest of this module.
    """
    doc = sample["doc"]
    gold = task.doc_to_text(doc) if getattr(task, "multiple_input", 0) else sample["target"]
    return gold_from_target(gold, n_choices, lambda: task.doc_to_choice(doc))


def n_choices(spec: TaskSpec, sample: dict) -> int:
    """How many of the sample's requests are choices: acc_mutual_info adds as many unconditional ones."""
    n = len(sample["arguments"])
    return n // 2 if spec.mutual_info else n


def doc_scores(sample: dict, spec: TaskSpec, token_counts: dict, find_gold) -> DocScores | None:
    """Turn one lm-eval sample (``arguments`` as (context, continuation) pairs, ``filtered_resps`` as
    (log-likelihood, is_greedy) pairs) into :class:`DocScores`; None for tasks without a gold
    continuation.  ``find_gold(sample, n_choices)`` gives the indices of the correct choices of a
    multiple-choice sample (:func:`gold_indices` from the task, or the importer's reading of the log).
    """
    args = [tuple(a) for a in sample["arguments"]]
    resps = list(sample["filtered_resps"])
    delimiter = spec.delimiter
    if spec.output_type == "multiple_choice":
        n = n_choices(spec, sample)
        args, resps = args[:n], resps[:n]
        gold = find_gold(sample, n)
    elif spec.output_type == "loglikelihood":
        gold = [0]
        delimiter = ""  # lm-eval scores doc_to_target as it is: no delimiter was added
    else:  # generate_until, loglikelihood_rolling: lm-eval's own metrics only
        return None
    texts = [scored_text(cont, delimiter) for _, cont in args]
    return DocScores(
        doc_id=int(sample["doc_id"]),
        gold=gold,
        ll=[float(r[0]) for r in resps],
        greedy=[bool(r[1]) for r in resps],
        tokens=[token_counts.get(a) for a in args],
        chars=[len(t) for t in texts],
        bytes=[len(t.encode("utf-8")) for t in texts],
        continuations=[cont for _, cont in args],
        prompt_hash=sample.get("prompt_hash"),
        doc_hash=sample.get("doc_hash"),
    )


def documents(samples: list, spec: TaskSpec, token_counts: dict, find_gold) -> list[DocScores]:
    """:func:`doc_scores` of every document of a task's samples, by doc_id, one copy per document
    (lm-eval logs a sample per filter; their log-likelihoods are the same)."""
    seen, docs = set(), []
    for sample in sorted(samples, key=lambda s: s["doc_id"]):
        if sample["doc_id"] in seen:
            continue
        seen.add(sample["doc_id"])
        doc = doc_scores(sample, spec, token_counts, find_gold)
        if doc is not None:
            docs.append(doc)
    return docs


# Accuracy metrics whose random-guess level is the mean of 1 / number of choices (a uniform guess
# picks the gold choice, or puts that much probability on it).
MC_CHANCE_METRICS = {"acc", "acc_norm", "acc_bytes", "acc_mutual_info", "prob_correct", "mc1"}


def chance(spec: TaskSpec, samples: list) -> float | None:
    """Random-guess accuracy of a task from its samples: the mean over documents of 1 / number of
    choices for multiple choice, 0 for tasks with a free-form answer (loglikelihood: the greedy
    decode must equal the target; generate_until); None where it is not an accuracy
    (loglikelihood_rolling) or there are no documents."""
    if spec.output_type in ("loglikelihood", "generate_until"):
        return 0.0
    if spec.output_type != "multiple_choice":
        return None
    per_doc = {}
    for s in samples:  # one copy per filter
        per_doc.setdefault(s["doc_id"], 1.0 / max(n_choices(spec, s), 1))
    return float(np.mean(list(per_doc.values()))) if per_doc else None


def chance_of(metric: str, output_type: str | None, level: float | None) -> float | None:
    """The ``chance`` cell of one scores row: ``level`` (from :func:`chance`) for the accuracy
    metrics it is the level of, else empty (the built-in table, or ``--chance``, decides)."""
    if level is None or output_type is None:
        return None
    name = metric.split(",")[0]
    if output_type == "multiple_choice":
        return level if name in MC_CHANCE_METRICS else None
    return level if scores.metric_kind(name) == "accuracy" and name != "prob_correct" else None


def per_doc_losses(doc: DocScores) -> dict[str, float] | None:
    """The task-loss values of one document (None when it has no valid gold label)."""
    if not doc.gold:
        return None
    g = doc.gold[0]  # losses of the first correct continuation; prob_correct sums over all of them
    nll = -doc.ll[g]
    out = {"nll": nll}
    if doc.tokens[g]:
        out["nll_token"] = nll / doc.tokens[g]
    if doc.chars[g]:
        out["nll_char"] = nll / doc.chars[g]
        out["bpb"] = nll / (doc.bytes[g] * LN2)
    if len(doc.ll) > 1:
        ll = np.asarray(doc.ll, dtype=float)
        log_probs = ll - np.logaddexp.reduce(ll)
        out["prob_correct"] = float(np.exp(log_probs[doc.gold]).sum())
    return out


def aggregate(docs: list[DocScores]) -> dict[str, dict[str, float | int | None]]:
    """Mean and standard error over documents of each task-loss metric."""
    values: dict[str, list[float]] = {}
    for doc in docs:
        for name, value in (per_doc_losses(doc) or {}).items():
            values.setdefault(name, []).append(value)
    return {name: mean_and_stderr(v) for name, v in sorted(values.items())}


def mean_and_stderr(values) -> dict[str, float | int | None]:
    """{'value', 'stderr', 'n'}; stderr is the sample standard deviation / sqrt(n) (lm-eval's mean_stderr)."""
    arr = np.asarray(values, dtype=float)
    stderr = float(arr.std(ddof=1) / math.sqrt(len(arr))) if len(arr) > 1 else None
    return {"value": float(arr.mean()), "stderr": stderr, "n": int(len(arr))}
