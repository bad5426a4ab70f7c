"""The conventions every command keeps: lm-eval's own spellings of the options it shares, one name
for the output flag, help text on every option, both modes in the help of forecast and report,
and progress bars that show on a terminal only (pipeline/cli.py)."""
from __future__ import annotations

import argparse
import importlib
import io
import sys

import pytest

from pipeline import cli, parallel
from pipeline.__main__ import MODES, STAGES, usage

# capcast's spelling -> lm-eval's (lm_eval --help)
LM_EVAL = {"--num-fewshot": "--num_fewshot", "--include-path": "--include_path", "--batch-size": "--batch_size",
           "--model-args": "--model_args", "--out": "--output_path"}


def all_parsers() -> dict[str, argparse.ArgumentParser]:
    out = {}
    for stage in STAGES:
        out.update(importlib.import_module(f"pipeline.stages.{stage}").parsers())
    return out


PARSERS = all_parsers()


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: a for a in parser._actions for flag in a.option_strings}


def test_every_command_and_mode_has_its_parsers():
    modes = set(STAGES) | {m.split(" ")[0] + " " + m.split(" ")[1] for ms in MODES.values() for m in ms}
    assert modes == set(PARSERS), sorted(PARSERS)
    listed = [line[2:].split("  ")[0] for line in usage().splitlines() if line.startswith("  ")]
    assert set(PARSERS) <= set(listed), "python -m pipeline --help lists every command and mode"


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_option_has_help(name):
    parser = PARSERS[name]
    bare = [a.option_strings or a.dest for a in parser._actions if not (a.help or "").strip()]
    assert not bare, f"{name}: options without help: {bare}"


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_lm_evals_spellings_are_aliases_where_the_option_exists(name):
    opts = options(PARSERS[name])
    for ours, theirs in LM_EVAL.items():
        if ours in opts:
            assert opts.get(theirs) is opts[ours], f"{name}: {theirs} is not an alias of {ours}"
    # and the one output flag is --out: no other spelling without it
    for flag in ("--out-dir", "--output_path", "--output-dir"):
        if flag in opts:
            assert opts.get("--out") is opts[flag], f"{name}: {flag} without --out"


def parse(name: str, argv: list[str]) -> argparse.Namespace:
    return PARSERS[name].parse_args(argv)


def test_lm_evals_spellings_parse_to_the_same_values():
    ours = parse("evaluate", ["--model", "m", "--num-fewshot", "5", "--batch-size", "8", "--include-path", "tasks",
                              "--model-args", "parallelize=True", "--out", "evals"])
    theirs = parse("evaluate", ["--model", "m", "--num_fewshot", "5", "--batch_size", "8", "--include_path", "tasks",
                                "--model_args", "parallelize=True", "--output_path", "evals"])
    assert vars(ours) == vars(theirs)
    assert parse("ingest lm-eval", ["out/", "--output_path", "mine.csv"]).out == "mine.csv"
    family = ["--scores", "s.csv", "--family", "f", "--params", "7e9", "--tokens", "1e11"]
    assert parse("forecast --family", family + ["--num_fewshot", "0", "--output_path", "f.csv"]).out == "f.csv"
    assert parse("report --family", family + ["--output_path", "dir"]).out == "dir"


def test_the_old_spellings_still_work():
    for name in ("forecast", "report"):
        assert parse(name, ["--out-dir", "x"]).out == parse(name, ["--out", "x"]).out == "x"
        # --params is a file in the stage mode (its old spelling) and N in the family mode
        assert parse(name, ["--params", "p.yaml"]).params_file == parse(name, ["--params-file", "p.yaml"]).params_file
    assert parse("evaluate", ["--params", "p.yaml"]).params_file == "p.yaml"
    assert parse("trends", ["--params", "p.yaml"]).params_file == "p.yaml"


@pytest.mark.parametrize("command", ["forecast", "report"])
def test_help_shows_both_modes(command, capsys):
    main = importlib.import_module(f"pipeline.stages.{command}").main
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "DVC-stage mode (no --family)" in out and "Family mode (--family)" in out
    for flag in ("--params-file", "--family NAME", "--params N[,N...]", "--tokens-per-param", "--output_path"):
        assert flag in out, flag
    with pytest.raises(SystemExit):  # --family --help: the family mode's alone
        main(["--family", "x", "--help"])
    alone = capsys.readouterr().out
    assert "Family mode" in alone and "DVC-stage mode" not in alone


# ------------------------------------------------------------------------------------ progress
class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_silent_when_stderr_is_not_a_terminal(capsys):
    with cli.progress("work", "item") as bars:
        bar = bars(3)
        assert isinstance(bar, parallel.Quiet)
        assert parallel.fork_map(lambda x: x * 2, [1, 2, 3], 1, progress=bars) == [2, 4, 6]
        assert parallel.fork_map(lambda x: x * 2, [1, 2, 3], 2, progress=bars) == [2, 4, 6]
    assert capsys.readouterr().err == ""


def test_progress_shows_a_bar_on_a_terminal(monkeypatch):
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    with cli.progress("work", "item") as bars:
        assert parallel.fork_map(lambda x: x + 1, [1, 2, 3], 1, progress=bars) == [2, 3, 4]
        with parallel.shown(bars):  # for a fork_map deep in code that passes no bar along
            assert parallel.fork_map(lambda x: x, [1, 2], 2) == [1, 2]
    shown = term.getvalue()
    assert "work: " in shown and "/3 [" in shown and "/2 [" in shown and "item/s" in shown
    assert shown.endswith("\r")  # each bar is cleared when its work is done (the next line starts clean)
    assert parallel.fork_map(lambda x: x, [1], 1) == [1]  # outside shown(): no bar
    assert term.getvalue() == shown



@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_parser_fails_in_one_line_naming_the_fix(name, capsys):
    parser = PARSERS[name]
    assert isinstance(parser, cli.Parser)
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--no-such-option"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert ("--no-such-option" in err or "are required" in err) and "--help" in err


def test_a_negative_number_in_scientific_notation_is_a_value_for_the_commands_own_check(capsys):
    from pipeline.stages import forecast

    from tests.paths import ROOT

    rc = forecast.main(["--scores", str(ROOT / "data/published/scores.csv"), "--family", "pythia", "--suite",
                        "pythia_evals", "--params", "7e9", "--tokens", "-2e12"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--tokens '-2e12': give numbers > 0" in err, err
