"""Row queries (``--train``, ``--test``, the split queries of params.yaml): a small safe language.

A query is a Python-like expression over the columns of a scores table::

    suite == 'pythia_evals' and family in ['pythia', 'pythia-deduped'] and params <= 1.5e9
    tokens / params >= 20 and not (step < 1000)
    1e8 < params < 1e10

It is parsed with :mod:`ast` and checked node by node against a short list (:data:`ALLOWED`);
anything else (``@variables``, attributes, calls, subscripts, lambdas, f-strings, ...) is refused
before anything runs.  The checked tree is then evaluated here, on the frame's columns, with
pandas' vectorised operators; the string is never handed to ``DataFrame.query``/``eval`` or to
Python's ``eval``, so a query cannot reach a module, a file or a process.

Comparisons must compare like with like (numbers with numbers, text with text): a text column
compared with a number is an error that names the column, not a silent empty selection.
A comparison with an empty cell is unknown, whatever the operator (``!=`` and ``not in``
too) and the column's dtype, and an unknown row is not selected; ``not``/``and``/``or`` follow
three-valued logic (``not unknown`` is unknown), as pandas does on its nullable columns.  ``index`` is the row's position label
(``index == index`` selects every row).
"""
from __future__ import annotations

import ast
import difflib
import keyword
import operator
import re

import numpy as np
import pandas as pd

from pipeline.errors import CapcastError

ALLOWED = ("column names, numbers, 'text' in quotes, True/False, comparisons (== != < <= > >=, chained), "
           "and / or / not, in / not in [list], arithmetic (+ - * / // % **) and parentheses")

_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
# What a refused node is called in the message.
_NAMES = {ast.Attribute: "attribute access (a.b)", ast.Call: "function calls", ast.Subscript: "subscripts (a[...])",
          ast.Lambda: "lambdas", ast.JoinedStr: "f-strings", ast.FormattedValue: "f-strings",
          ast.Dict: "dicts", ast.Set: "sets", ast.ListComp: "comprehensions", ast.SetComp: "comprehensions",
          ast.DictComp: "comprehensions", ast.GeneratorExp: "comprehensions", ast.IfExp: "if/else expressions",
          ast.NamedExpr: "assignments (:=)", ast.Starred: "* unpacking", ast.Await: "await", ast.Yield: "yield",
          ast.Slice: "slices", ast.Is: "'is'", ast.IsNot: "'is not'", ast.MatMult: "'@'",
          ast.BitAnd: "'&' (write 'and')", ast.BitOr: "'|' (write 'or')", ast.BitXor: "'^'",
          ast.Invert: "'~' (write 'not')", ast.LShift: "'<<'", ast.RShift: "'>>'"}


class QueryError(CapcastError):
    """A query that is not in the language, names no column, or compares unlike values."""


def parse(text: str) -> ast.Expression:
    """The checked syntax tree of ``text``; :class:`QueryError` for anything outside :data:`ALLOWED`."""
    if not isinstance(text, str) or not text.strip():
        raise QueryError(f"empty query; write a condition such as \"params <= 1.5e9\" ({ALLOWED})")
    if "@" in _outside_quotes(text):
        raise QueryError(f"'@' (local variables) is not allowed; allowed: {ALLOWED}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        words = [w for w in re.findall(r"[A-Za-z_]\w*", _outside_quotes(text))
                 if keyword.iskeyword(w) and w not in ("and", "or", "not", "in", "True", "False")]
        if words:
            raise QueryError(f"{words[0]!r} is a Python keyword, so a query cannot name a column {words[0]!r}; "
                             f"rename the column (e.g. {words[0]}_)") from None
        raise QueryError(f"not a valid query ({exc.msg}); allowed: {ALLOWED}") from None
    except (RecursionError, MemoryError):
        raise QueryError("the query is nested too deeply; simplify it") from None
    for node in ast.walk(tree):
        _check(node)
    return tree


def _outside_quotes(text: str) -> str:
    """``text`` with the contents of '...' and "..." blanked, to find operators outside string literals."""
    out, quote = [], None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
            out.append(" ")
        else:
            quote = ch if ch in "'\"" else None
            out.append(ch)
    return "".join(out)


def _check(node: ast.AST) -> None:
    ok = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.Compare,
          ast.In, ast.NotIn, ast.BinOp, ast.Name, ast.Load, ast.List, ast.Tuple, *_COMPARE, *_ARITH)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (bool, int, float, str)) and not isinstance(node.value, complex):
            return
        raise QueryError(f"the literal {node.value!r} is not allowed; allowed: {ALLOWED}")
    if isinstance(node, ast.Name) and node.id.startswith("__"):
        raise QueryError(f"the name {node.id!r} is not allowed; allowed: {ALLOWED}")
    if not isinstance(node, ok):
        what = _NAMES.get(type(node), f"'{type(node).__name__}'")
        raise QueryError(f"{what} not allowed in a query; allowed: {ALLOWED}")


class Condition:
    """A row condition held as a checked syntax tree, never as text: a parsed query
    (:func:`condition`), a column compared with a value (:func:`compare`, :func:`one_of`), or these
    combined with ``&``, ``|`` and ``~``.  Combining builds a tree of the parts, so a part cannot
    change how another is read (``--rows "a) or (b"`` is one invalid query, not two);
    ``str()`` shows the parts for messages and is never parsed again."""

    __slots__ = ("node", "text")

    def __init__(self, node: ast.expr, text: str):
        for sub in ast.walk(node):
            _check(sub)
        self.node, self.text = node, text

    def _part(self) -> str:
        return f"({self.text})" if isinstance(self.node, (ast.BoolOp, ast.UnaryOp)) else self.text

    def _join(self, other, op: ast.boolop, word: str) -> "Condition":
        other = condition(other)
        return Condition(ast.BoolOp(op=op, values=[self.node, other.node]), f"{self._part()} {word} {other._part()}")

    def __and__(self, other: "Condition") -> "Condition":
        return self._join(other, ast.And(), "and")

    def __or__(self, other: "Condition") -> "Condition":
        return self._join(other, ast.Or(), "or")

    def __invert__(self) -> "Condition":
        return Condition(ast.UnaryOp(op=ast.Not(), operand=self.node), f"not {self._part()}")

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return repr(self.text)


def condition(query) -> Condition:
    """A query's text (checked by :func:`parse`) or a :class:`Condition` as a Condition."""
    return query if isinstance(query, Condition) else Condition(parse(query).body, query.strip())


_OPS = {"==": ast.Eq, "!=": ast.NotEq, "<": ast.Lt, "<=": ast.LtE, ">": ast.Gt, ">=": ast.GtE}


def _literal(value) -> ast.Constant:
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, (bool, int, float, str)):
        raise QueryError(f"{value!r} is not a number, text or true/false")
    return ast.Constant(value)


def compare(column: str, op: str, value) -> Condition:
    """``column op value`` as a Condition (any column name, a keyword or one with spaces included)."""
    node = ast.Compare(left=ast.Name(id=str(column), ctx=ast.Load()), ops=[_OPS[op]()], comparators=[_literal(value)])
    return Condition(node, f"{column} {op} {_literal(value).value!r}")


def one_of(column: str, values, negate: bool = False) -> Condition:
    """``column in [values]`` (``not in`` with ``negate``) as a Condition."""
    items = [_literal(v) for v in values]
    node = ast.Compare(left=ast.Name(id=str(column), ctx=ast.Load()), ops=[ast.NotIn() if negate else ast.In()],
                       comparators=[ast.List(elts=items, ctx=ast.Load())])
    return Condition(node, f"{column} {'not in' if negate else 'in'} {[v.value for v in items]!r}")


def mask(frame: pd.DataFrame, text) -> np.ndarray:
    """Boolean row mask of ``frame`` for the query ``text`` (or a :class:`Condition`; empty cells never match)."""
    node = condition(text).node
    try:
        value = _Evaluator(frame).eval(node)
    except RecursionError:
        raise QueryError("the query is nested too deeply; simplify it") from None
    if value.kind != "bool":
        raise QueryError(f"{text!r} gives {_plural(value.kind)}, not a condition; compare it, e.g. \"params <= 1.5e9\"")
    if not isinstance(value.data, pd.Series):  # a constant condition: every row or none
        return np.full(len(frame), bool(value.data))
    return value.data.fillna(False).to_numpy(dtype=bool)


def select(frame: pd.DataFrame, text: str, what: str, error=QueryError) -> pd.DataFrame:
    """The rows of ``frame`` matching ``text``; ``error`` (one line, naming ``what``) when the query
    is not valid or selects nothing."""
    try:
        rows = frame[mask(frame, text)]
    except QueryError as exc:
        raise error(f"{what} query {text!r}: {exc}") from None
    if rows.empty:
        suites = ", ".join(sorted(map(str, frame["suite"].unique()))) if "suite" in frame else "none"
        raise error(f"{what} query {text!r} selects no rows (the table has {len(frame)} rows, suites {suites}); "
                    "loosen it")
    return rows


class _Value:
    """A column (pandas Series) or a scalar, with its kind: 'number', 'text' or 'bool'."""

    def __init__(self, data, kind: str, label: str):
        self.data, self.kind, self.label = data, kind, label

    def describe(self) -> str:
        """'column 'family' holds text', '3 is a number', ... for messages."""
        if isinstance(self.data, pd.Series):
            return f"{self.label} holds {_plural(self.kind)}"
        return f"{self.label} is {_SINGULAR.get(self.kind, _plural(self.kind))}"


def _kind(data) -> str:
    if isinstance(data, (bool, np.bool_)):
        return "bool"
    if isinstance(data, (int, float, np.number)):
        return "number"
    if isinstance(data, str):
        return "text"
    dtype = data.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    return "text"


class _Evaluator:
    def __init__(self, frame: pd.DataFrame):
        self.frame = frame

    def eval(self, node: ast.AST) -> _Value:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:  # unreachable after parse(); kept so an unchecked node can never run
            raise QueryError(f"'{type(node).__name__}' not allowed in a query; allowed: {ALLOWED}")
        return method(node)

    def _Constant(self, node):
        return _Value(node.value, _kind(node.value), repr(node.value))

    def _Name(self, node):
        name, frame = node.id, self.frame
        if name in frame.columns:
            col = frame[name]
            return _Value(col, _kind(col), f"column {name!r}")
        if name == "index":
            return _Value(pd.Series(frame.index, index=frame.index), "number", "index")
        close = difflib.get_close_matches(name, [str(c) for c in frame.columns], n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise QueryError(f"unknown column {name!r}; {hint}columns: {', '.join(map(str, frame.columns))}")

    def _List(self, node):
        items = [self.eval(e) for e in node.elts]
        if any(isinstance(v.data, pd.Series) for v in items):
            raise QueryError("a list may hold literals only (numbers, 'text', True/False)")
        kinds = {v.kind for v in items}
        if len(kinds) > 1:
            raise QueryError(f"a list mixes {' and '.join(_plural(k) for k in sorted(kinds))}; give one kind of value")
        return _Value([v.data for v in items], "list:" + (kinds.pop() if kinds else "any"), "a list")

    _Tuple = _List

    def _UnaryOp(self, node):
        v = self.eval(node.operand)
        if isinstance(node.op, ast.Not):
            _need(v, "bool", "'not'")
            return _Value(~v.data if isinstance(v.data, pd.Series) else not v.data, "bool", "a condition")
        _need(v, "number", "a sign")
        return _Value(-v.data if isinstance(node.op, ast.USub) else +v.data, "number", v.label)

    def _BoolOp(self, node):
        values = [self.eval(e) for e in node.values]
        for v in values:
            _need(v, "bool", "'and' / 'or'")
        join = operator.and_ if isinstance(node.op, ast.And) else operator.or_
        out = values[0].data
        for v in values[1:]:
            out = join(_as_series(out, self.frame), _as_series(v.data, self.frame))
        return _Value(out, "bool", "a condition")

    def _BinOp(self, node):
        left, right = self.eval(node.left), self.eval(node.right)
        op = type(node.op)
        for v in (left, right):
            _need(v, "number", "arithmetic")
        a, b = left.data, right.data
        if not isinstance(a, pd.Series) and not isinstance(b, pd.Series):  # numpy floats: overflow is inf, never a hang
            a, b = np.float64(a), np.float64(b)
        with np.errstate(all="ignore"):
            try:
                return _Value(_ARITH[op](a, b), "number", "an expression")
            except (ArithmeticError, TypeError, ValueError) as exc:
                raise QueryError(f"arithmetic failed ({exc})") from None

    def _Compare(self, node):
        out, left = None, self.eval(node.left)
        for op, right_node in zip(node.ops, node.comparators):
            right = self.eval(right_node)
            part = self._compare(left, op, right)
            out = part if out is None else operator.and_(_as_series(out, self.frame), _as_series(part, self.frame))
            left = right
        return _Value(out, "bool", "a condition")

    def _compare(self, left: _Value, op, right: _Value):
        if isinstance(op, (ast.In, ast.NotIn)):
            if not right.kind.startswith("list:"):
                raise QueryError("'in' needs a list on its right, e.g. family in ['pythia', 'opt']")
            kind = right.kind.split(":")[1]
            if kind not in ("any", left.kind):
                raise QueryError(f"{left.describe()} but the list holds {_plural(kind)}")
            data = _as_series(left.data, self.frame)
            hit = data.isin(right.data)
            return self._unknown_where_empty(~hit if isinstance(op, ast.NotIn) else hit, left, right)
        if left.kind.startswith("list") or right.kind.startswith("list"):
            raise QueryError("a list can only follow 'in' or 'not in'")
        if left.kind != right.kind:
            raise QueryError(f"{left.describe()} but {right.describe()}; compare like with like "
                             "(quote text: family == 'opt')")
        if left.kind == "bool" and not isinstance(op, (ast.Eq, ast.NotEq)):
            raise QueryError("true/false values compare with == and != only")
        try:
            result = _COMPARE[type(op)](left.data, right.data)
        except (TypeError, ArithmeticError, ValueError) as exc:
            raise QueryError(f"cannot compare {left.label} with {right.label} ({exc})") from None
        return self._unknown_where_empty(result, left, right)

    def _unknown_where_empty(self, result, *operands: _Value):
        """A comparison with an empty cell is unknown (NA), whatever the operator and the column's
        dtype; ``not``, ``and``, ``or`` then follow three-valued logic and unknown never selects."""
        if not isinstance(result, pd.Series):
            return result
        out = result.astype("boolean")
        for v in operands:
            if isinstance(v.data, pd.Series):
                out[v.data.isna().to_numpy()] = pd.NA
        return out


def _need(v: _Value, kind: str, where: str) -> None:
    if v.kind != kind:
        want = "conditions" if kind == "bool" else _plural(kind)
        raise QueryError(f"{where} needs {want}, but {v.describe()}")


def _plural(kind: str) -> str:
    return {"bool": "true/false values", "number": "numbers", "text": "text", "any": "nothing",
            "list:number": "a list of numbers", "list:text": "a list of text", "list:bool": "a list of true/false",
            "list:any": "an empty list"}.get(kind, kind)


_SINGULAR = {"bool": "a true/false value", "number": "a number", "text": "text"}


def _as_series(data, frame: pd.DataFrame) -> pd.Series:
    if isinstance(data, pd.Series):
        return data
    return pd.Series(data, index=frame.index)
