"""Evaluate stage: lm-eval on checkpoints -> ``data/evals/<model>@<revision>.json``.

    python -m pipeline evaluate --from-params | --model ID_OR_PATH [--revision stepN,...] [--tasks ...]

The checkpoints and settings come from ``params.yaml`` (``evaluate:``) or the command line
(:mod:`pipeline.sources.evaluation`); what runs, what is kept and when an evaluation on disk is
skipped: :mod:`pipeline.sources.lm_eval_run`.
"""
from __future__ import annotations

import argparse
import re
import sys
from dataclasses import replace
from pathlib import Path

from pipeline import files, params
from pipeline.cli import Parser, progress
from pipeline.errors import CapcastError
from pipeline.sources.evaluation import (DEFAULT_TASKS, Checkpoint, Settings, check_batch_size, check_device,
                                         checkpoints_from_entries, describe_folder, log, settings_from_params)
from pipeline.sources.lm_eval_run import evaluate


def parser() -> argparse.ArgumentParser:
    """The command's options; lm-eval's own spellings (``--model_args``, ``--num_fewshot``, ``--batch_size``,
    ``--include_path``, ``--output_path``) are accepted beside capcast's."""
    p = Parser(prog="python -m pipeline evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--from-params", action="store_true", help="read everything from params.yaml's evaluate: section")
    p.add_argument("--params-file", "--params", dest="params_file", metavar="FILE", default="params.yaml",
                   help="params file for --from-params (default: params.yaml; --params is the old spelling)")
    p.add_argument("--model", help="Hugging Face id or local folder")
    p.add_argument("--revision", action="append", help="revision(s), e.g. step3000; repeat or comma-separate")
    p.add_argument("--family", help="model family (default: from the families registry)")
    p.add_argument("--name", help="model name in the scores table (default: the id or path)")
    p.add_argument("--tokens", type=float, help="training tokens at this checkpoint (models outside the registry)")
    p.add_argument("--tokens-per-step", type=float, help="tokens per training step, for stepN revisions")
    p.add_argument("--tasks", default=",".join(DEFAULT_TASKS),
                   help=f"comma-separated lm-eval task names (default: {', '.join(DEFAULT_TASKS)})")
    p.add_argument("--include-path", "--include_path", dest="include_path", metavar="DIR", help="folder of local task YAMLs")
    p.add_argument("--num-fewshot", "--num_fewshot", dest="num_fewshot", metavar="N", type=int, default=0,
                   help="shots per task (default 0)")
    p.add_argument("--limit", type=float, help="documents per task (testing only; <1 means a fraction)")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", metavar="N", default="auto",
                   help="int or 'auto' (not part of the skip key)")
    p.add_argument("--device", default="auto", help="cuda, cuda:1, cpu, mps or auto")
    p.add_argument("--dtype", default="auto", help="auto (the checkpoint's), float32, bfloat16, float16")
    p.add_argument("--backend", default="hf", help="lm-eval model type: hf (default) or vllm")
    p.add_argument("--model-args", "--model_args", dest="model_args", metavar="ARGS",
                   help="extra backend args, lm-eval style: parallelize=True,tensor_parallel_size=2")
    p.add_argument("--out", "--output_path", dest="out", metavar="DIR", help="output folder (default: data/evals)")
    p.add_argument("--shard", help="K/N: evaluate only every N-th checkpoint from the K-th (0-based), to run "
                                   "N processes side by side, e.g. one per GPU")
    return p


def parsers() -> dict:
    """Every parser of the command, by mode."""
    return {"evaluate": parser()}


def parse_args(argv: list[str]) -> argparse.Namespace:
    return parser().parse_args(argv)


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
        section = params.load("evaluate", args.params_file)
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


# params.yaml's words -> the flags of the command-line mode, for its messages
CLI_WORDS = [
    (r"--model\[0\]\.tokens_per_step", "--tokens-per-step"), (r"--model\[0\]\.tokens", "--tokens"),
    (r"--model\[0\]: ", "--model: "), (r"give 'family: <name>'", "give --family NAME"),
    (r"give tokens: \{revision: tokens\} instead", "give --tokens D instead (or one count per revision in "
     "params.yaml: tokens: {revision: tokens})"),
    (r"give its training tokens: 'tokens: N', 'tokens: \{revision: N\}' or 'tokens_per_step: N'",
     "give its training tokens: --tokens D or --tokens-per-step S"),
    (r"fix evaluate\.tasks \(or --tasks\)", "fix --tasks"), (r"evaluate\.models", "--model"),
    (r"\bdtype: bfloat16", "--dtype bfloat16"),
    (r"evaluate\.(\w+)", lambda m: "--" + m.group(1).replace("_", "-")),
]


def in_flags(message: str) -> str:
    """A settings error in the words of the command line (``--limit``, not ``evaluate.limit``)."""
    for pattern, flag in CLI_WORDS:
        message = re.sub(pattern, flag, message)
    return message


def _main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        return _evaluate(args)
    except CapcastError as exc:
        if args.from_params:
            raise
        raise CapcastError(in_flags(str(exc))) from None


def _evaluate(args: argparse.Namespace) -> int:
    checkpoints, settings = config_from_args(args)
    files.check_output(settings.out_dir, "--out" if args.out else "evaluate.out_dir", folder=True)
    checkpoints = shard(checkpoints, args.shard)
    if not checkpoints:
        describe_folder(Path(settings.out_dir))
        log(f"no checkpoints to evaluate (evaluate.models is empty, or this shard has none); {settings.out_dir} kept as is")
        return 0
    with progress("evaluate", "task") as bars:  # checkpoints x tasks
        outcome = evaluate(checkpoints, settings, progress=bars)
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
