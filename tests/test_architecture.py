"""The layout of the package (docs/architecture.md), checked on its source: an ``ast`` walk of every
module's imports, function-level ones included.

* no import cycle among pipeline modules;
* no module over 600 lines, at most 14 modules directly in ``pipeline/``;
* the domain packages (laws, trends, sources, forecasting, report) never import the front doors
  (``pipeline.stages``, ``pipeline.cli``, ``pipeline.__main__``) nor params.yaml
  (``pipeline.params``, ``pipeline.config``); the report renders and never forecasts;
* the params schema (``pipeline.config``) imports no stage;
* every stage is a module of ``pipeline.stages`` with a ``main``, and ``python -m pipeline --help``
  lists each one.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.paths import ROOT

PACKAGE = ROOT / "pipeline"
MAX_LINES = 600
MAX_TOP_LEVEL = 14
DOMAIN = ("pipeline.laws", "pipeline.ladders", "pipeline.trends", "pipeline.sources", "pipeline.forecasting",
          "pipeline.report")
FRONT_DOORS = ("pipeline.stages", "pipeline.cli", "pipeline.__main__", "pipeline.params", "pipeline.config")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def resolve(name: str) -> str | None:
    """The pipeline module an imported name belongs to (the longest module prefix)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(name: str) -> set[str]:
    """Every pipeline module ``name`` imports, at any level of the file."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(resolve(a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            for a in node.names:  # `from pipeline import scores` imports the module pipeline.scores
                out.add(resolve(f"{base}.{a.name}") if f"{base}.{a.name}" in MODULES else resolve(base))
    return {m for m in out if m and m != name}


GRAPH = {name: imports(name) for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_walk_sees_the_imports():
    assert "pipeline.scores" in GRAPH["pipeline.stages.collect"]
    assert "pipeline.laws.policy" in GRAPH["pipeline.forecasting.targets"]  # a function-level import
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    found = cycles(GRAPH)
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_module_over_600_lines():
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}
    big = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_few_modules_at_the_top():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL, f"{len(top)} modules directly in pipeline/: {top}"


@pytest.mark.parametrize("package", DOMAIN)
def test_domain_packages_never_import_the_front_doors(package):
    bad = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() if within(m, [package])
                 for d in deps if within(d, FRONT_DOORS))
    assert not bad, f"{package} imports a stage, the CLI or params.yaml: {bad}"


def test_the_report_renders_and_never_forecasts():
    bad = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() if within(m, ["pipeline.report"])
                 for d in deps if within(d, ["pipeline.forecasting", "pipeline.stages"]))
    assert not bad, bad


def test_the_params_schema_imports_no_stage():
    bad = sorted(d for d in GRAPH["pipeline.config"] if within(d, ["pipeline.stages", "pipeline.cli"]))
    assert not bad, bad


def test_every_stage_is_a_module_with_main_and_is_listed():
    from pipeline.__main__ import STAGES, usage

    stages = {p.stem for p in (PACKAGE / "stages").glob("*.py") if p.stem != "__init__"}
    assert stages == set(STAGES)
    for stage in stages:
        tree = ast.parse((PACKAGE / "stages" / f"{stage}.py").read_text(encoding="utf-8"))
        assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body), stage
    listed = [line[2:].split("  ")[0] for line in usage().splitlines() if line.startswith("  ")]
    assert set(STAGES) | {"ingest lm-eval"} <= set(listed), listed


NUMERIC = ("numpy", "pandas", "scipy", "sklearn", "yaml")


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")))
def test_a_benchmark_that_runs_the_package_imports_it_before_numpy(script):
    """``import pipeline`` pins the BLAS and numpy kernels (pipeline/__init__.py) only before numpy
    loads: a benchmark that loads numpy first computes with other kernels than the pipeline, and
    its 'in use' numbers drift from the committed tables' in the last digits."""
    top = [node for node in ast.parse((ROOT / "benchmarks" / script).read_text()).body
           if isinstance(node, (ast.Import, ast.ImportFrom))]
    names = [(a.name if isinstance(node, ast.Import) else node.module or "") for node in top
             for a in (node.names if isinstance(node, ast.Import) else [node])]
    runs_package = [i for i, n in enumerate(names) if n == "pipeline" or n.startswith("pipeline.")]
    if not runs_package:
        return  # runs other revisions in subprocesses (their own pipeline pins them)
    numeric = [i for i, n in enumerate(names) if n.split(".")[0] in NUMERIC]
    assert not numeric or min(numeric) > min(runs_package), f"{script}: import pipeline before {names[min(numeric)]}"
