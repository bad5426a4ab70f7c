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
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

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


def scored_text(continuation: str, delimiter: str) -> str:
    """The answer text whose length normalises the loss: no delimiter, no leading space."""
    if delimiter and continuation.startswith(delimiter):
        continuation = continuation[len(delimiter):]
    return continuation.lstrip()


def gold_indices(task, sample: dict, n_choices: int) -> list[int]:
    """Indices of the correct choice(s), found exactly as lm-eval's ``process_results`` finds them.

    Multiple-input tasks (winogrande: several contexts, one continuation) keep the answer in
    ``doc_to_text``; the others in ``doc_to_target``, which lm-eval already logged as the
    sample's ``target`` (an index, a list of them, or a choice's text).  Labels out of range
    are dropped (lm-eval scores such a document as wrong).  Task templates are only rendered
    again where the log does not say, as rendering costs more than the rest of this module.
    """
    doc = sample["doc"]
    gold = task.doc_to_text(doc) if getattr(task, "multiple_input", 0) else sample["target"]
    golds = gold if isinstance(gold, list) else [gold]
    if any(isinstance(g, str) for g in golds):
        choices = list(task.doc_to_choice(doc))
        golds = [choices.index(g) if isinstance(g, str) and g in choices else g for g in golds]
    return [int(g) for g in golds if isinstance(g, (int, np.integer)) and 0 <= int(g) < n_choices]


def n_choices(task, sample: dict) -> int:
    """How many of the sample's requests are choices: acc_mutual_info adds as many unconditional ones."""
    n = len(sample["arguments"])
    return n // 2 if "acc_mutual_info" in getattr(task, "_metric_fn_list", {}) else n


def doc_scores(sample: dict, task, token_counts: dict, delimiter: str) -> DocScores | None:
    """Turn one lm-eval logged sample into :class:`DocScores`; None for tasks without a gold continuation."""
    output_type = task.OUTPUT_TYPE
    args = [tuple(a) for a in sample["arguments"]]
    resps = list(sample["filtered_resps"])
    if output_type == "multiple_choice":
        n = n_choices(task, sample)
        args, resps = args[:n], resps[:n]
        gold = gold_indices(task, sample, n)
    elif output_type == "loglikelihood":
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
