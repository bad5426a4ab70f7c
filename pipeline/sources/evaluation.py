"""The evaluate stage's data: the checkpoints and settings to evaluate, and the records it keeps.

* :class:`Checkpoint` and :class:`Settings`, from ``params.yaml`` (``evaluate:``) or the command
  line (:func:`checkpoints_from_entries`, :func:`settings_from_params`): every configuration error
  is raised here, before any model loads (the params.yaml schema, :mod:`pipeline.config`, runs the
  same checks);
* the records: ``<out_dir>/<model>@<revision>.json``, one per checkpoint, with lm-eval's metrics
  and the task losses per task and the settings an evaluation on disk must match to be skipped
  (:func:`wanted`); every choice's log-likelihood per document under ``samples/``
  (:func:`read_samples`);
* :func:`load_eval_rows`: the records as validated scores-table rows (suite ``capcast_eval``) for
  the collect stage.

Running lm-eval on the checkpoints is :mod:`pipeline.sources.lm_eval_run`'s.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pandas as pd

from pipeline import scores
from pipeline.errors import CapcastError
from pipeline.sources import families, taskloss

SUITE = "capcast_eval"
SCHEMA = "capcast-eval/1"
DEFAULT_TASKS = ("lambada_openai", "piqa", "arc_easy", "arc_challenge", "sciq", "winogrande", "hellaswag")
MODEL_KEYS = {"model", "revisions", "revision", "family", "name", "tokens", "tokens_per_step", "model_args"}
SETTING_KEYS = {"models", "tasks", "num_fewshot", "limit", "batch_size", "device", "dtype", "backend",
                "include_path", "out_dir", "model_args"}


def log(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"evaluate: {message}", file=sys.stderr)  # above the progress bar, where one is shown
    sys.stderr.flush()


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
        return f"{safe_name(self.name)}@{safe_name(self.revision)}"

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


def safe_name(text: str) -> str:
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
    files: dict = {}
    for ck in out:  # and each checkpoint's record is its own file (a/b and a__b would share one)
        other = files.setdefault(ck.slug, ck)
        if other is not ck and (other.name, other.revision) != (ck.name, ck.revision):
            raise CapcastError(f"{where}: {other.label} and {ck.label} would share the record file {ck.slug}.json; "
                               "give one of them another 'name'")
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
        dtype=check_dtype(str(section.get("dtype") or defaults.dtype)),
        backend=backend,
        include_path=str(section["include_path"]) if section.get("include_path") else None,
        out_dir=Path(section.get("out_dir") or defaults.out_dir),
        model_args=dict(section.get("model_args") or {}),
    )


DTYPES = ("auto", "float32", "float16", "bfloat16", "float", "half", "float64")  # what lm-eval's hf model takes


def check_dtype(dtype: str) -> str:
    """The weights' dtype, checked before any model loads (a typo would surface as a load failure)."""
    if dtype not in DTYPES:
        raise CapcastError(f"evaluate.dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    return dtype


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
    except RecursionError:
        raise CapcastError(f"{path}: nested too deeply to be a capcast evaluation; move it out of the evals "
                           "folder") from None
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
