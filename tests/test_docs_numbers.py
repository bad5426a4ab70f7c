"""The backtest numbers the README and docs/laws.md print are the committed reports' cells.

Both documents carry tables of "MAE (coverage)" per split and method; a change to a law reruns the
backtest stage and rewrites reports/backtest.csv, and this test fails until the tables say the same.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
CELL = re.compile(r"^\**(\d+\.\d+)\** \((\d\.\d\d)\)$")
METHOD_NAMES = {"link (true loss)": "link"}


def result_tables(path: Path):
    """(split, method, mae, coverage) of every table row naming a split in backticks, under a header
    whose columns are method names."""
    header = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "split":
            header = [METHOD_NAMES.get(c, c) for c in cells]
            continue
        split = re.search(r"`(\w+)`", cells[0])
        if header is None or split is None:
            continue
        for method, cell in zip(header[1:], cells[1:]):
            m = CELL.match(cell)
            if m:
                yield split.group(1), method, float(m.group(1)), float(m.group(2))


@pytest.fixture(scope="module")
def backtest_all():
    b = pd.read_csv(ROOT / "reports/backtest.csv")
    return b[b["task"] == "ALL"].set_index(["split", "method"])


@pytest.mark.parametrize("doc", ["README.md", "docs/laws.md"])
def test_printed_backtest_cells_are_the_committed_reports(doc, backtest_all):
    rows = list(result_tables(ROOT / doc))
    assert len(rows) >= 20, f"{doc}: the results tables were not found"
    wrong = []
    for split, method, mae, coverage in rows:
        r = backtest_all.loc[(split, method)]
        if f"{r['mae']:.2f}" != f"{mae:.2f}" or f"{r['coverage']:.2f}" != f"{coverage:.2f}":
            wrong.append(f"{split}/{method}: printed {mae:.2f} ({coverage:.2f}), "
                         f"reports/backtest.csv {r['mae']:.2f} ({r['coverage']:.2f})")
    assert not wrong, f"{doc}:\n" + "\n".join(wrong)


def readme_block(first_line_start: str) -> list[str]:
    """The lines of the README code block whose first line starts with ``first_line_start``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n" + first_line_start) + 1
    return text[start:text.index("```", start)].rstrip("\n").splitlines()


def test_the_readme_backtest_example_prints_what_the_readme_shows(tmp_path, capsys):
    from pipeline.stages import backtest as backtest_stage

    block = readme_block("$ python -m pipeline backtest")
    ends = next(i for i, line in enumerate(block) if not line.endswith("\\"))  # the command's last line
    command = " ".join(line.rstrip("\\") for line in block[:ends + 1])
    argv = shlex.split(command.removeprefix("$ python -m pipeline backtest"))
    argv[argv.index("--out") + 1] = str(tmp_path / "out.csv")
    assert backtest_stage.main(argv) == 0
    assert capsys.readouterr().out.splitlines() == block[ends + 1:]


def test_the_readme_forecast_example_prints_what_the_readme_shows(capsys):
    from pipeline.stages import forecast as forecast_stage

    argv = ("--scores data/published/scores.csv --family pythia --suite pythia_evals --num-fewshot 0 "
            "--params 30e9,70e9 --tokens 3e11 --tasks arc_easy,piqa,sciq --loss lambada_openai:ppl").split()
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert " ".join(argv) in " ".join(text.split()), "the README names another forecast command"
    assert forecast_stage.main(argv) == 0
    assert capsys.readouterr().out.splitlines() == readme_block("pythia (8 models")


def test_the_ladders_doc_prints_the_committed_leave_one_ladder_out_table():
    """docs/ladders.md's three summaries are pipeline.ladders.table.markdown of reports/ladders/lolo.csv,
    beyond_support.csv and new_design.csv (rerun `python -m pipeline ladders --evaluate-only` and
    paste them after changing an interval)."""
    from pipeline.ladders import table

    doc = (ROOT / "docs/ladders.md").read_text(encoding="utf-8").splitlines()
    starts = [i for i, line in enumerate(doc) if line == table.MARKDOWN_HEADER]
    names = ("lolo.csv", "beyond_support.csv", "new_design.csv")
    assert len(starts) == 3, "docs/ladders.md prints the leave-one-ladder-out table, the beyond-support one and the new-design one"
    for start, name in zip(starts, names):
        expected = table.markdown(pd.read_csv(ROOT / "reports/ladders" / name)).splitlines()
        assert doc[start:start + len(expected)] == expected, name


def test_the_readme_dvc_metrics_block_shows_the_committed_metrics():
    import json

    text = (ROOT / "README.md").read_text()
    shown = re.findall(r"^(reports/\S+\.json)\s+(\S+)\s+\S+\s+\.\.\.\s+(\S+)\s+(\d+)$", text, flags=re.M)
    assert len(shown) >= 2  # the block's metric lines: path, coverage, -, ..., mae, n
    for path, coverage, mae, n in shown:
        committed = json.loads((ROOT / path).read_text())
        assert (float(coverage), float(mae), int(n)) == (committed["coverage"], committed["mae"], committed["n"]), path


def test_the_calibrated_and_sharp_count_in_docs_is_the_committed_backtests():
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import backtest_calibration

    table = backtest_calibration.judge(pd.read_csv(ROOT / "reports/backtest.csv"))
    text = " ".join((ROOT / "docs/laws.md").read_text(encoding="utf-8").split())
    said = re.search(r"holds for (\d+) of the (\d+) pairs", text)
    assert said, "docs/laws.md no longer states how many split x method pairs are calibrated and sharp"
    assert (int(said.group(1)), int(said.group(2))) == (int(table["passes"].sum()), len(table))
    # the judge can fail a pair on either test
    assert (~table["calibrated"]).any() and (~table["sharp"]).any()


def test_the_interval_variant_tables_in_use_row_is_the_committed_leave_one_ladder_out_table():
    """The first row of docs/ladders.md's variant table (auto as in use, from
    benchmarks/interval_variants.py) is auto's rows of reports/ladders/lolo.csv and new_design.csv
    (to its rounding: the CSVs hold three decimals, the benchmark rounds the unrounded score)."""
    doc = (ROOT / "docs/ladders.md").read_text(encoding="utf-8").splitlines()
    row = next(line for line in doc if line.startswith("| in use:"))
    cells = [[float(v) for v in c.split(",")] for c in [c.strip() for c in row.strip("|").split("|")][1:]]
    expected = [("lolo.csv", "real", "coverage", 2), ("lolo.csv", "real", "interval_score", 1),
                ("lolo.csv", "ALL", "coverage", 2), ("lolo.csv", "ALL", "median_width", 1),
                ("lolo.csv", "ALL", "interval_score", 1), ("new_design.csv", "ALL", "coverage", 2),
                ("new_design.csv", "ALL", "interval_score", 1)]
    assert len(cells) == len(expected)
    for shown, (name, cls, column, digits) in zip(cells, expected):
        t = pd.read_csv(ROOT / "reports/ladders" / name)
        committed = t.loc[(t["method"] == "auto") & (t["ladder_class"] == cls)].sort_values("factor")[column]
        assert np.allclose(shown, committed, rtol=0, atol=0.5 * 10**-digits + 0.0005), (name, cls, column)
