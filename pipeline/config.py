"""The params.yaml schema, checked before any stage reads its section (``params.load``).

Every section (collect, evaluate, report, forecast, backtest, trends) is checked as a whole:
unknown keys, methods and law options, types and ranges.  The first problem stops the run with
one line naming the file and the path of the bad key, and a suggestion where one is close::

    params.yaml: backtest.splits.pythia_size.methods[0]: unknown method 'two_stpe'; did you mean 'two_step'?

Why a small explicit validator and not pydantic: half of this schema is only known at run
time — the method names come from :data:`pipeline.laws.METHODS` and their options from each
law's ``__init__`` signature (with its annotations), so adding a law or an option needs no
edit here — and every message must be one line in the YAML's own path syntax with a
"did you mean".  With pydantic that would be models built by ``create_model`` at import plus a
translator for its error lists; the validator below is about as long and owes nothing to a
library that is only a transitive dependency here.

To extend it: a new split key goes in :data:`SPLIT_KEYS` (with the kind of split it belongs
to), a new option check in :data:`OPTION_CHECKS`, a new section or key in :data:`SECTIONS`.
"""
from __future__ import annotations

import ast
import difflib
import inspect
import math
import re
from dataclasses import dataclass

from pipeline.errors import CapcastError


class ConfigError(CapcastError):
    """A bad params.yaml key or value; the message names the file, the key's path and the fix."""


class _Bad(Exception):
    """Raised inside the checks with (path, message); turned into ConfigError with the file name.

    ``typed``: the value had the right type and failed a range, choice or nested check (so, among
    alternatives, this is the message to show)."""

    def __init__(self, path: str, message: str, typed: bool = True):
        super().__init__(path, message)
        self.path, self.message, self.typed = path, message, typed


def _wrong_type(path: str, message: str) -> _Bad:
    return _Bad(path, message, typed=False)


def _close(word, choices) -> str:
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else f"; choose one of {', '.join(map(str, choices))}"


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ----------------------------------------------------------------------------- value checks
class Check:
    """A check of one value at ``path``; ``ctx`` is the whole params dict (for cross-references)."""

    def __call__(self, value, path: str, ctx: dict) -> None:
        raise NotImplementedError

    def __or__(self, other: "Check") -> "Check":
        return AnyOf(self, other)


class Anything(Check):
    def __call__(self, value, path, ctx):
        pass


class Null(Check):
    what = "null"

    def __call__(self, value, path, ctx):
        if value is not None:
            raise _wrong_type(path, f"must be null, got {_shown(value)}")


class AnyOf(Check):
    """Passes if one of ``checks`` passes.  Otherwise: the message of the alternative whose type
    the value has (-5 for "int >= 0 or null": "must be >= 0"), else "must be A or B"."""

    def __init__(self, *checks: Check):
        self.checks = checks
        self.what = " or ".join(getattr(c, "what", "something else") for c in checks)

    def __call__(self, value, path, ctx):
        errors = []
        for check in self.checks:
            try:
                check(value, path, ctx)
                return
            except _Bad as exc:
                errors.append(exc)
        typed = [e for e in errors if e.typed]
        if typed:
            raise typed[0]
        raise _wrong_type(path, f"must be {self.what}, got {_shown(value)}")


@dataclass
class Int(Check):
    ge: int | None = None
    le: int | None = None
    what = "a whole number"

    def __call__(self, value, path, ctx):
        if isinstance(value, bool) or not isinstance(value, int):
            hint = " (YAML reads 1e3 as text: write 1000)" if isinstance(value, str) and _is_number(value) else ""
            raise _wrong_type(path, f"must be a whole number{_range(self.ge, None, self.le, None)}, got {_shown(value)}{hint}")
        _in_range(value, path, ge=self.ge, le=self.le)


@dataclass
class Number(Check):
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    text_ok: bool = False  # the stage converts with float(): '1e9' (YAML 1.1 text) is fine there
    what = "a number"

    def __call__(self, value, path, ctx):
        if isinstance(value, str) and self.text_ok and _is_number(value):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            hint = " (YAML reads 1e9 as text: write 1.0e+9)" if isinstance(value, str) and _is_number(value) else ""
            raise _wrong_type(path, f"must be a number{_range(self.ge, self.gt, self.le, self.lt)}, "
                             f"got {_shown(value)}{hint}")
        if not math.isfinite(value):
            raise _Bad(path, f"must be a finite number, got {value!r}")
        _in_range(value, path, ge=self.ge, gt=self.gt, le=self.le, lt=self.lt)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _range(ge, gt, le, lt) -> str:
    parts = [f"{op} {bound}" for op, bound in ((">=", ge), (">", gt), ("<=", le), ("<", lt)) if bound is not None]
    return f" {' and '.join(parts)}" if parts else ""


def _in_range(value, path, ge=None, gt=None, le=None, lt=None) -> None:
    ok = ((ge is None or value >= ge) and (gt is None or value > gt)
          and (le is None or value <= le) and (lt is None or value < lt))
    if not ok:
        hint = "; a fraction (0.9, not 90)" if lt == 1 and 1 < value <= 100 else ""
        raise _Bad(path, f"must be{_range(ge, gt, le, lt)}, got {value!r}{hint}")


@dataclass
class Str(Check):
    choices: tuple | None = None
    what = "text"

    def __call__(self, value, path, ctx):
        if not isinstance(value, str):
            raise _wrong_type(path, f"must be text, got {_shown(value)}")
        if self.choices is not None and value not in self.choices:
            raise _Bad(path, f"unknown value {value!r}{_close(value, self.choices)}")


class Bool(Check):
    what = "true or false"

    def __call__(self, value, path, ctx):
        if not isinstance(value, bool):
            raise _wrong_type(path, f"must be true or false, got {_shown(value)}")


@dataclass
class ListOf(Check):
    item: Check
    min_len: int = 0
    what = "a list"

    def __call__(self, value, path, ctx):
        if not isinstance(value, list):
            raise _wrong_type(path, f"must be a list, got {_shown(value)}")
        if len(value) < self.min_len:
            raise _Bad(path, f"needs at least {self.min_len} item(s)")
        for i, item in enumerate(value):
            self.item(item, f"{path}[{i}]", ctx)


@dataclass
class MapOf(Check):
    key: Check
    value: Check
    names: str = ""  # the keys become file names (pipeline.files.check_names): what they are called
    what = "a mapping"

    def __call__(self, value, path, ctx):
        if not isinstance(value, dict):
            raise _wrong_type(path, f"must be a mapping (key: value), got {_shown(value)}")
        for k, v in value.items():
            self.key(k, f"{path}.{k}", ctx)
            self.value(v, f"{path}.{k}", ctx)
        if self.names:
            from pipeline.files import FilesError, check_names
            try:
                check_names(value, self.names)
            except FilesError as exc:
                raise _Bad(path, str(exc)) from None


@dataclass
class Struct(Check):
    """A mapping with known keys; unknown keys are errors with the closest known key."""

    fields: dict
    required: tuple = ()
    what = "a mapping"

    def __call__(self, value, path, ctx):
        if not isinstance(value, dict):
            raise _wrong_type(path, f"must be a mapping (key: value), got {_shown(value)}")
        for key in value:
            if key not in self.fields:
                raise _Bad(_join(path, key), f"unknown key{_close(key, self.fields)}")
        for key in self.required:
            if key not in value:
                raise _Bad(path, f"missing {key!r}")
        for key, v in value.items():
            self.fields[key](v, _join(path, key), ctx)


def _join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


class Query(Check):
    """A row query (:mod:`pipeline.query`) over the scores-table columns."""

    what = "a query"

    def __call__(self, value, path, ctx):
        from pipeline import query, scores

        Str()(value, path, ctx)
        try:
            tree = query.parse(value)
        except query.QueryError as exc:
            raise _Bad(path, f"{value!r}: {exc}") from None
        columns = set(scores.ALL_COLUMNS) | {"index"}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id not in columns:
                raise _Bad(path, f"{value!r}: unknown column {node.id!r}{_close(node.id, sorted(columns))}")


class TaskMetric(Check):
    what = "TASK:METRIC"

    def __call__(self, value, path, ctx):
        if not isinstance(value, str):
            raise _wrong_type(path, f"must be TASK:METRIC text (e.g. arc_easy:acc), got {_shown(value)}")
        task, sep, metric = value.rpartition(":")
        if not sep or not task.strip() or not metric.strip():
            raise _Bad(path, f"{_shown(value)} is not TASK:METRIC (e.g. arc_easy:acc)")


class Column(Check):
    what = "a column name"

    def __call__(self, value, path, ctx):
        from pipeline import scores

        Str(tuple(scores.ALL_COLUMNS))(value, path, ctx)


class Scalar(Check):
    what = "a number or text"

    def __call__(self, value, path, ctx):
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise _wrong_type(path, f"must be a number or text, got {_shown(value)}")


# ----------------------------------------------------------------------------- methods and their options
def methods() -> dict:
    from pipeline.laws import METHODS

    return METHODS


class Method(Check):
    what = "a method"

    def __call__(self, value, path, ctx):
        known = methods()
        if not isinstance(value, str) or value not in known:
            raise _Bad(path, f"unknown method {_shown(value)}{_close(value, sorted(known))}")


MAX_BOOTSTRAP = 10_000  # the most bootstrap resamples any option or flag takes (each is a refit)
# Checks of options by name, wherever a method takes that option; other options are checked
# against their annotation in the law's __init__ (int, float, str, bool, X | None).
OPTION_CHECKS: dict[str, Check] = {
    "n_bootstrap": Int(ge=0, le=MAX_BOOTSTRAP),
    "level": Number(gt=0, lt=1),
    "random_state": Int(ge=0) | Null(),
    "loss": TaskMetric() | Null(),
    "features": ListOf(TaskMetric(), min_len=1) | Null(),
    "chance": Number(ge=0, lt=1) | Null(),
    "skip_fraction": Number(ge=0, lt=1),
}
_ANNOTATION_CHECKS = {"int": Int(), "float": Number(), "str": Str(), "bool": Bool(), "None": Null()}


def law_options(method: str) -> dict[str, Check]:
    """{option: check} of a method, read from its class's ``__init__`` signature."""
    from pipeline.laws import AUTO_OPTIONS

    if method == "auto":
        return {name: OPTION_CHECKS[name] for name in AUTO_OPTIONS}
    params = inspect.signature(methods()[method].__init__).parameters
    out = {}
    for name, p in params.items():
        if name in ("self", "target") or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[name] = OPTION_CHECKS.get(name) or _from_annotation(p.annotation)
    return out


def _from_annotation(annotation) -> Check:
    """int, float, str, bool, None, Literal['a', 'b'] and unions of them (``X | None``); anything
    else is left to the law."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    text = str(text).strip().strip("'\"")  # a quoted annotation under `from __future__ import annotations`
    parts = [p.strip() for p in re.split(r"\|(?![^\[]*\])", str(text))] if text else []
    checks = [_ANNOTATION_CHECKS.get(p) or _literal(p) for p in parts]
    if not checks or any(c is None for c in checks):
        return Anything()  # no annotation, or one this checker does not read: the law checks it
    return checks[0] if len(checks) == 1 else AnyOf(*checks)


def _literal(text: str) -> Check | None:
    m = re.fullmatch(r"(?:typing\.)?Literal\[(.*)\]", text)
    if not m:
        return None
    try:
        values = ast.literal_eval(f"({m[1]},)")
    except (ValueError, SyntaxError):
        return None
    return Str(tuple(values)) if all(isinstance(v, str) for v in values) else None


class Options(Check):
    """``{option: value}`` of one method."""

    def __init__(self, method: str):
        self.method = method

    def __call__(self, value, path, ctx):
        if value is None:
            return
        valid = law_options(self.method)
        if not isinstance(value, dict):
            raise _Bad(path, f"must be a mapping of {self.method} options, got {_shown(value)}")
        for key, v in value.items():
            if key not in valid:
                raise _Bad(_join(path, key), f"unknown option of {self.method}{_close(key, sorted(valid))}")
            valid[key](v, _join(path, key), ctx)


class OptionsByMethod(Check):
    """``{method: {option: value}}``."""

    what = "a mapping of methods to options"

    def __call__(self, value, path, ctx):
        if value is None:
            return
        if not isinstance(value, dict):
            raise _Bad(path, f"must be a mapping of methods to their options, got {_shown(value)}")
        for method, opts in value.items():
            Method()(method, _join(path, method), ctx)
            Options(method)(opts, _join(path, method), ctx)


# ----------------------------------------------------------------------------- backtest splits
@dataclass(frozen=True)
class SplitKey:
    check: Check
    kind: str = "any"  # "any" split, "query" (train/test) splits only, or "leave_out" splits only
    required: bool = False  # required in the splits of its kind


# The one table of split keys (pipeline/forecasting/backtest.py reads them); extend it here.
SPLIT_KEYS: dict[str, SplitKey] = {
    "description": SplitKey(Str()),
    "targets": SplitKey(ListOf(TaskMetric(), min_len=1), required=True),
    "methods": SplitKey(ListOf(Method(), min_len=1), required=True),
    "options": SplitKey(OptionsByMethod()),
    "target_options": SplitKey(MapOf(TaskMetric(), OptionsByMethod())),
    "train": SplitKey(Query(), "query", required=True),
    "test": SplitKey(Query(), "query", required=True),
    "leave_out": SplitKey(Column(), "leave_out", required=True),
    "values": SplitKey(ListOf(Scalar(), min_len=1), "leave_out", required=True),
    "rows": SplitKey(Query(), "leave_out"),
    "keep_smallest": SplitKey(Int(ge=0), "leave_out"),
    "allow_overlap": SplitKey(Bool()), "allow_cross_suite": SplitKey(Bool()),  # opt-ins (README, "Guarantees")
}


class Split(Check):
    what = "a split"

    def __call__(self, value, path, ctx):
        if not isinstance(value, dict):
            raise _Bad(path, f"must be a mapping (train/test or leave_out/values, targets, methods), got {_shown(value)}")
        kind = "leave_out" if "leave_out" in value else "query"
        for key in value:
            spec = SPLIT_KEYS.get(key)
            if spec is None:
                raise _Bad(_join(path, key), f"unknown split key{_close(key, SPLIT_KEYS)}")
            if spec.kind not in ("any", kind):
                other = "a leave_out split (with leave_out: COLUMN)" if spec.kind == "leave_out" else \
                    "a train/test split (not with leave_out)"
                raise _Bad(_join(path, key), f"belongs to {other}")
        for key, spec in SPLIT_KEYS.items():
            if spec.required and spec.kind in ("any", kind) and key not in value:
                need = "train and test queries (or leave_out and values)" if key in ("train", "test") else repr(key)
                raise _Bad(path, f"missing {key!r}; a split needs {need}")
        for key, v in value.items():
            SPLIT_KEYS[key].check(v, _join(path, key), ctx)
        targets = set(value["targets"])
        for key in value.get("target_options") or {}:
            if key not in targets:
                raise _Bad(_join(_join(path, "target_options"), key),
                           f"not one of this split's targets{_close(key, sorted(targets))}")


# ----------------------------------------------------------------------------- sections
class SplitName(Check):
    """The name of a split in ``backtest.splits`` (when the file has that section)."""

    what = "a split name"

    def __call__(self, value, path, ctx):
        Str()(value, path, ctx)
        section = ctx.get("backtest")
        splits = section.get("splits") if isinstance(section, dict) else None
        if isinstance(splits, dict) and value not in splits:
            raise _Bad(path, f"no split {value!r} in backtest.splits{_close(value, list(splits))}")


class Evaluate(Check):
    """Types first, then the evaluate stage's own checks (settings and every model entry), before
    anything loads.  Keys are evaluate.SETTING_KEYS (that module owns them)."""

    TYPES = {"models": ListOf(Str() | MapOf(Str(), Anything())), "tasks": Str() | ListOf(Str()),
             "num_fewshot": Int(ge=0), "limit": Number(gt=0, text_ok=True) | Null(), "dtype": Str(), "backend": Str(),
             "include_path": Str() | Null(), "out_dir": Str(), "model_args": MapOf(Str(), Anything()) | Null()}

    def __call__(self, value, path, ctx):
        from pipeline.sources import evaluation as evaluate

        if not isinstance(value, dict):
            raise _Bad(path, f"must be a mapping, got {_shown(value)}")
        Struct({k: self.TYPES.get(k, Anything()) for k in evaluate.SETTING_KEYS})(value, path, ctx)
        try:
            evaluate.settings_from_params(value)
            evaluate.checkpoints_from_entries(value.get("models") or [])
        except CapcastError as exc:
            raise _Bad("", str(exc).removeprefix("params.yaml ")) from None


def _trends_section() -> Struct:
    """Explicit checks for the documented keys; any other key of pipeline.trends.settings (DEFAULTS, Settings)
    (the stage reads those too) is checked against the type of its default."""
    from dataclasses import fields

    from pipeline.trends.settings import DEFAULTS, Settings

    frac, boot = Number(gt=0, lt=1), Int(ge=0, le=MAX_BOOTSTRAP)
    explicit = {
        "x": Str(("compute", "params")), "min_scales": Int(ge=2), "bootstrap": boot, "seed": Int(ge=0),
        "interval": frac, "horizons": ListOf(Number(gt=0), min_len=1), "tau_trend": Number(), "tau_break": Number(),
        "alpha_gof": frac, "alpha_chance": frac, "min_flat_points": Int(ge=1), "z_rise": Number(ge=0),
        "z_turn": Number(ge=0), "turn_crit": Number(gt=0), "break_f": ListOf(Number(gt=0), min_len=1),
        "break_min_points": Int(ge=1), "min_stderr": Number(gt=0), "refine_rounds": Int(ge=0),
        "checkpoints": Struct({"min_step": Int(ge=0), "min_points": Int(ge=2), "refine_rounds": Int(ge=0)}),
        "emergence": Struct({
            "margin": frac, "max_decades": Number(gt=0), "continuous_metrics": ListOf(Str()), "pc_suite": Str(),
            "pc_exclude": ListOf(Str()), "n_pcs": Int(ge=1), "min_link_models": Int(ge=2), "bootstrap": boot,
            "report_suites": ListOf(Str()), "backtest_suites": ListOf(Str()), "backtest_min_points": Int(ge=1)}),
        "backtest": ListOf(Struct({"name": Str(), "universe": Query(), "train": Query()},
                                  required=("name", "universe", "train"))),
    }
    defaults = {**{f.name: f.default for f in fields(Settings)}, **DEFAULTS}
    return Struct({**{k: _like(v) for k, v in defaults.items()}, **explicit})


def _like(default) -> Check:
    if isinstance(default, bool):
        return Bool()
    if isinstance(default, int):
        return Int()
    if isinstance(default, float):
        return Number()
    if isinstance(default, str):
        return Str()
    if isinstance(default, (list, tuple)):
        return ListOf(Number() if default and all(isinstance(v, (int, float)) for v in default) else Anything())
    if isinstance(default, dict):
        return Struct({k: _like(v) for k, v in default.items()})
    return Anything()


def _lm_eval_dir() -> Struct:
    """One ``collect.lm_eval_dirs`` entry: a folder lm-eval wrote and the facts it does not record
    (the options of ``python -m pipeline ingest lm-eval``)."""
    size = Number(gt=0, text_ok=True)
    return Struct({"path": Str(), "family": Str(), "tokens": size, "tokens_per_param": size, "tokens_per_step": size,
                   "params": size | MapOf(Str(), size), "tokenizer": Str(), "suite": Str(),
                   "chance": MapOf(Str(), Number(ge=0, lt=1))}, required=("path",))


def _sections() -> dict[str, Check]:
    shots = Int(ge=0) | Null()
    size = Number(gt=0, text_ok=True)
    target = Struct({"name": Str(), "family": Str(), "suite": Str(), "params": size, "tokens": size,
                     "tokens_per_param": size, "loss": TaskMetric(), "methods": ListOf(Method(), min_len=1),
                     "options": OptionsByMethod()}, required=("name", "family", "suite", "params"))
    comparison = Struct({"suite": Str(), "num_fewshot": shots, "reference": Str(), "families": ListOf(Str(), min_len=2),
                         "common_range_margin": Number(gt=0) | Null(), "tasks": ListOf(Str()) | Null()},
                        required=("suite", "families"))
    skills = Struct({"name": Str(), "rows": Query(), "reference": Str(), "params": size, "tokens": size,
                     "backtest_split": SplitName() | Null(), "baseline": Method(), "options": Options("skills")},
                    required=("rows", "reference", "params", "tokens"))
    return {
        "collect": Struct({"published": Str(), "evals_dir": Str() | Null(), "out": Str(),
                           "lm_eval_dirs": ListOf(Str() | _lm_eval_dir())}),
        "evaluate": Evaluate(),
        "report": Struct({
            "suite": Str(), "plot_tasks": ListOf(Str()), "plot_metric": Str(), "num_fewshot": shots,
            "default_method": Method(), "heldout_splits": ListOf(SplitName()), "max_trend_plots": Int(ge=0),
            "processes": Int(ge=1), "min_evidence": Int(ge=1), "max_extrapolation": Number(gt=1),
            "family_curves": ListOf(Struct({"suite": Str(), "families": ListOf(Str(), min_len=1), "metric": Str(),
                                            "num_fewshot": shots}, required=("suite", "families"))),
            "goals": ListOf(Struct({"family": Str(), "suite": Str(), "goal": Str(), "tokens": size, "tokens_per_param":
                                    size, "method": Method(), "loss": TaskMetric(), "num_fewshot": shots},
                                   required=("family", "goal")))}),
        "forecast": Struct({
            "seed": Int(ge=0), "interval": Number(gt=0, lt=1), "metric": Str(), "num_fewshot": shots,
            "tasks": ListOf(Str()) | Null(), "methods": ListOf(Method(), min_len=1),
            "suite_wide_methods": ListOf(Method()), "method_options": OptionsByMethod(),
            "curve_points": Int(ge=2), "processes": Int(ge=1), "targets": ListOf(target), "family_comparison": ListOf(comparison),
            "family_skills": ListOf(skills)}),
        "backtest": Struct({
            "scores": Str(), "out_dir": Str(), "n_bootstrap": Int(ge=0, le=MAX_BOOTSTRAP), "level": Number(gt=0, lt=1),
            "random_state": Int(ge=0), "processes": Int(ge=1), "options": OptionsByMethod(),
            "splits": MapOf(Str(), Split(), names="split name")}),
        "trends": _trends_section(),
        "ladders": Struct({
            "scores": Str(), "forecasts": Str(), "out_dir": Str(), "suites": ListOf(Str(), min_len=1),
            "min_sizes": Int(ge=3), "losses": ListOf(TaskMetric()), "lineage": MapOf(Str(), Str()),
            "factors": ListOf(Number(gt=1), min_len=1), "candidates": ListOf(Method(), min_len=2),
            "level": Number(gt=0, lt=1), "processes": Int(ge=1), "beyond_support": Struct(
                {"learned_at": ListOf(Number(gt=1), min_len=1), "scored_at": Number(gt=1)}, ("learned_at", "scored_at")),
            "zoo": Struct({"per_design": Int(ge=0, le=1000), "seed": Int(ge=0), "folds": Int(ge=2)})}),
    }


SECTIONS = ("collect", "evaluate", "report", "forecast", "backtest", "trends", "ladders")


def check(params: dict, origin: str = "params.yaml") -> None:
    """Check every section present in ``params``; :class:`ConfigError` (one line) at the first problem."""
    if not isinstance(params, dict):
        raise ConfigError(f"{origin}: must be a mapping of sections ({', '.join(SECTIONS)}), got {_shown(params)}")
    try:
        for name in params:
            if name not in SECTIONS:
                raise _Bad(str(name), f"unknown section{_close(name, SECTIONS)}")
        for name, section in _sections().items():
            if params.get(name) is not None:
                section(params[name], name, params)
    except _Bad as exc:
        where = f"{origin}: {exc.path}: " if exc.path else f"{origin}: "
        raise ConfigError(where + exc.message) from None


def check_option(method: str, key: str, value, where: str) -> None:
    """One law option given outside params.yaml (``--set KEY=VALUE``, ``--bootstrap``, ...)."""
    try:
        Options(method)({key: value}, "", {})
    except _Bad as exc:
        raise ConfigError(f"{where}: {exc.message}") from None
