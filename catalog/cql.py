"""CQL2 filters to DuckDB SQL with parameters.

The ``cql2`` package parses and validates the filter (text or JSON); we walk its JSON tree and
emit SQL in which every value the user wrote is a ``?`` parameter and every property is a column
from the allow-list (:mod:`catalog.queryables`). Nothing the user typed is pasted into SQL.

Supported: ``and or not``, comparisons, ``isNull``, ``like``, ``between``, ``in``, ``casei``,
``accenti``, arithmetic, the array functions (``a_equals a_contains a_containedBy a_overlaps``),
the spatial functions (``s_intersects`` ... on ``geometry``, with a bbox pre-filter that Parquet
statistics can use) and the temporal functions (``t_after`` ... ``t_intersects``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from catalog.geometry import check_bbox, check_geometry
from catalog.limits import check_filter_json, check_filter_size, check_filter_text
from catalog.queryables import Queryables
from catalog.times import EARLIEST, LATEST, OPEN, parse_time
from lake.errors import QueryError

FILTER_LANGS = ("cql2-text", "cql2-json")
_MISSING = object()


@dataclass(frozen=True)
class Sql:
    """A piece of SQL and its parameters, in order of their ``?``.

    Attributes:
        sql: The SQL text.
        params: The values of its ``?`` placeholders.
        kind: What it evaluates to (``string``, ``number``, ``boolean``, ``timestamp``,
            ``geometry``, ``array``, ``interval``).
        literal: The user's value when this is a single literal (for type coercion).
        name: The property name when this is a property reference (for messages).
    """

    sql: str
    params: tuple[Any, ...] = ()
    kind: str = "boolean"
    literal: Any = field(default=_MISSING, compare=False)
    name: str | None = None

    def __str__(self) -> str:
        return self.name or (repr(self.literal) if self.literal is not _MISSING else self.sql)


def parse_filter(value: str | Mapping[str, Any], lang: str | None = None) -> dict[str, Any]:
    """Parse a CQL2 filter into its JSON form.

    The parse is the ``cql2`` package's; its JSON Schema validation is skipped (it costs about
    30 ms a filter) because :func:`filter_sql` checks every node it translates anyway.

    Args:
        value: CQL2 text, CQL2 JSON as a string, or CQL2 JSON as a dict.
        lang: ``cql2-text`` or ``cql2-json``; guessed when None (a dict or a string starting
            with ``{`` is JSON).

    Raises:
        QueryError: The language is unknown, the filter is over a size or nesting limit
            (:mod:`catalog.limits`), or it does not parse or validate.
    """
    import cql2

    if lang is not None and lang not in FILTER_LANGS:
        raise QueryError(f"filter-lang {lang!r} is not supported: use cql2-text or cql2-json")
    if lang is None:
        is_json = not isinstance(value, str) or value.lstrip().startswith("{")
        lang = "cql2-json" if is_json else "cql2-text"
    if isinstance(value, str):
        check_filter_text(value, lang)  # before cql2 parses it: deep nesting kills the process
        shown = value
    elif isinstance(value, Mapping):
        check_filter_json(value)
        shown = json.dumps(value, default=repr)
        check_filter_size(shown, lang)
    else:
        raise QueryError(f"filter {value!r} must be CQL2 text or a CQL2 JSON object")
    try:
        if not isinstance(value, str):
            expr = cql2.Expr(dict(value))
        elif lang == "cql2-json":
            expr = cql2.parse_json(value)
        else:
            expr = cql2.parse_text(value)
        tree = expr.to_json()
    except Exception as exc:
        detail = " ".join(str(exc).split())[:300]
        raise QueryError(f"filter {shown[:200]!r} is not valid {lang}: {detail}") from None
    if isinstance(value, str) and lang == "cql2-json" and isinstance(tree, dict):
        check_filter_json(tree)  # the text's JSON depth bounds this; the 'op' depth is checked here
    if not isinstance(tree, dict | bool):
        raise QueryError(f"filter {shown[:200]!r} is not a boolean expression")
    return tree if isinstance(tree, dict) else {"op": "=", "args": [tree, True]}


def filter_sql(tree: Mapping[str, Any], queryables: Queryables) -> Sql:
    """Translate a parsed CQL2 filter into a boolean SQL expression with parameters.

    Raises:
        QueryError: An unknown property, an unsupported operator, or mismatched types.
    """
    try:
        out = _Translator(queryables).expr(tree)
    except RecursionError:  # parse_filter's depth limit keeps this from happening
        raise QueryError("the filter nests too deep to translate: write it flatter") from None
    except (TypeError, KeyError, ValueError, AttributeError, IndexError) as exc:
        if isinstance(exc, QueryError):
            raise
        shown = json.dumps(tree)[:200]
        raise QueryError(f"filter {shown} is not a valid CQL2 expression ({exc!r})") from None
    if out.kind != "boolean":
        raise QueryError(f"filter must be a condition, not a {out.kind} value ({out})")
    return out


def _join(op: str, parts: Sequence[Sql]) -> Sql:
    sql = f" {op} ".join(p.sql for p in parts)
    params = tuple(v for p in parts for v in p.params)
    return Sql(f"({sql})", params, "boolean")


def _param(value: Any, kind: str) -> Sql:
    return Sql("?", (value,), kind, literal=value)


def _geometry(value: Mapping[str, Any]) -> Sql:
    import shapely

    if "bbox" in value and "type" not in value:
        bbox = value["bbox"]
        if not isinstance(bbox, list):
            raise QueryError(f"the filter's bbox {json.dumps(bbox)[:200]} must be a list")
        geom = shapely.box(*check_bbox(bbox, f"the filter's bbox {json.dumps(bbox)[:200]}"))
    else:
        geom = check_geometry(value, "the filter's geometry")
    return Sql("ST_GeomFromWKB(?)", (shapely.to_wkb(geom),), "geometry", literal=geom)


class _Translator:
    """Walks a CQL2 JSON tree; one instance per filter."""

    def __init__(self, queryables: Queryables) -> None:
        self.q = queryables

    def expr(self, node: Any) -> Sql:
        if isinstance(node, bool):
            return _param(node, "boolean")
        if isinstance(node, int | float):
            return _param(node, "number")
        if isinstance(node, str):
            return _param(node, "string")
        if isinstance(node, list):
            return self._array(node)
        if not isinstance(node, Mapping):
            raise QueryError(f"unsupported CQL2 value {node!r}")
        if "property" in node:
            q = self.q.get(str(node["property"]))
            if q.kind == "geometry":
                return Sql(f"ST_GeomFromWKB({q.sql})", (), "geometry", name=q.name)
            return Sql(q.sql, (), q.kind, name=q.name)
        if "timestamp" in node:
            return _param(parse_time(str(node["timestamp"]), "timestamp")[0], "timestamp")
        if "date" in node:
            return _param(parse_time(str(node["date"]), "date")[0], "timestamp")
        if "interval" in node:
            return self._interval(node["interval"])
        if "bbox" in node or "coordinates" in node or "geometries" in node:
            return _geometry(node)
        if "op" in node:
            return self._op(str(node["op"]), list(node.get("args", [])))
        raise QueryError(f"unsupported CQL2 expression {json.dumps(node)[:200]}")

    # ------------------------------------------------------------------ values

    def _array(self, values: list[Any]) -> Sql:
        items = [self.expr(v) for v in values]
        if any(
            i.literal is _MISSING or i.kind not in ("string", "number", "boolean") for i in items
        ):
            raise QueryError(f"array {values!r}: only literal strings, numbers or booleans")
        return _param([i.literal for i in items], "array")

    def _interval(self, ends: Any) -> Sql:
        if not isinstance(ends, list) or len(ends) != 2:
            raise QueryError(f"interval {ends!r} must have a start and an end")
        bounds = []
        for i, end in enumerate(ends):
            if isinstance(end, str) and end in OPEN:
                bounds.append(_param(EARLIEST if i == 0 else LATEST, "timestamp"))
            elif isinstance(end, str):
                bounds.append(_param(parse_time(end, "interval")[i], "timestamp"))
            else:
                bound = self.expr(end)
                if bound.kind != "timestamp":
                    raise QueryError(f"interval end {bound} is not a time")
                bounds.append(bound)
        return Sql("", bounds[0].params + bounds[1].params, "interval", literal=tuple(bounds))

    def _coerce(self, value: Sql, kind: str, other: Sql) -> Sql:
        """Make a literal fit the kind of what it is compared with (string -> time)."""
        if value.kind == kind:
            return value
        if kind == "timestamp" and value.kind == "string" and value.literal is not _MISSING:
            return _param(parse_time(value.literal, str(other))[0], "timestamp")
        raise QueryError(f"cannot compare {other} ({kind}) with {value} ({value.kind})")

    # ------------------------------------------------------------------ operators

    def _op(self, op: str, args: list[Any]) -> Sql:
        name = op.lower()
        method = _HANDLERS.get(name)
        if method is None:
            raise QueryError(f"CQL2 operator or function {op!r} is not supported")
        handler: Callable[[str, list[Any]], Sql] = getattr(self, method)
        return handler(name, args)

    def _args(self, op: str, args: list[Any], n: int) -> list[Sql]:
        if len(args) != n:
            raise QueryError(f"CQL2 {op} takes {n} argument(s), got {len(args)}")
        return [self.expr(a) for a in args]

    def _logical(self, op: str, args: list[Any]) -> Sql:
        if len(args) < 2:
            raise QueryError(f"CQL2 {op} needs at least two conditions")
        parts = [self.expr(a) for a in args]
        for p in parts:
            if p.kind != "boolean":
                raise QueryError(f"CQL2 {op}: {p} is not a condition")
        return _join(op.upper(), parts)

    def _not(self, op: str, args: list[Any]) -> Sql:
        (inner,) = self._args(op, args, 1)
        if inner.kind != "boolean":
            raise QueryError(f"CQL2 not: {inner} is not a condition")
        return Sql(f"(NOT {inner.sql})", inner.params, "boolean")

    def _isnull(self, op: str, args: list[Any]) -> Sql:
        (inner,) = self._args(op, args, 1)
        return Sql(f"({inner.sql} IS NULL)", inner.params, "boolean")

    def _compare(self, op: str, args: list[Any]) -> Sql:
        a, b = self._args(op, args, 2)
        if {a.kind, b.kind} & {"geometry", "array", "interval"}:
            raise QueryError(f"cannot use {op} on {a} and {b}: use the s_*, a_* or t_* functions")
        if a.kind == "string" and b.kind == "timestamp":  # '2018' < datetime, as datetime > '2018'
            a = self._coerce(a, b.kind, b)
        b = self._coerce(b, a.kind, a)
        return Sql(f"({a.sql} {op} {b.sql})", a.params + b.params, "boolean")

    def _like(self, op: str, args: list[Any]) -> Sql:
        a, pattern = self._args(op, args, 2)
        if a.kind != "string" or pattern.kind != "string":
            raise QueryError(f"like compares strings, not {a} and {pattern}")
        text = pattern.literal
        if isinstance(text, str) and (len(text) - len(text.rstrip("\\"))) % 2:
            raise QueryError(f"like pattern {text!r} ends with a lone escape character (\\)")
        return Sql(f"({a.sql} LIKE {pattern.sql} ESCAPE '\\')", a.params + pattern.params)

    def _between(self, op: str, args: list[Any]) -> Sql:
        a, lo, hi = self._args(op, args, 3)
        if a.kind not in ("number", "timestamp", "string"):
            raise QueryError(f"between needs a number, time or string, not {a} ({a.kind})")
        lo, hi = self._coerce(lo, a.kind, a), self._coerce(hi, a.kind, a)
        return Sql(f"({a.sql} BETWEEN {lo.sql} AND {hi.sql})", a.params + lo.params + hi.params)

    def _in(self, op: str, args: list[Any]) -> Sql:
        if len(args) != 2 or not isinstance(args[1], list) or not args[1]:
            raise QueryError("CQL2 in takes a value and a non-empty list")
        a = self.expr(args[0])
        values = [self._coerce(self.expr(v), a.kind, a) for v in args[1]]
        marks = ", ".join(v.sql for v in values)
        return Sql(f"({a.sql} IN ({marks}))", a.params + tuple(p for v in values for p in v.params))

    def _text_function(self, op: str, args: list[Any]) -> Sql:
        (a,) = self._args(op, args, 1)
        if a.kind != "string":
            raise QueryError(f"{op} takes a string, not {a} ({a.kind})")
        function = "lower" if op == "casei" else "strip_accents"
        literal = a.literal if a.literal is _MISSING else _fold(op, a.literal)
        sql = f"{function}({a.sql})"
        return Sql(sql, a.params, "string", literal=literal, name=a.name)

    def _arithmetic(self, op: str, args: list[Any]) -> Sql:
        a, b = self._args(op, args, 2)
        if a.kind != "number" or b.kind != "number":
            raise QueryError(f"arithmetic {op} needs numbers, not {a} and {b}")
        if op == "div":  # DuckDB's // divides DOUBLEs exactly, and cql2 parses 3 as 3.0
            return Sql(f"trunc({a.sql} / {b.sql})", a.params + b.params, "number")
        symbol = {"^": "**"}.get(op, op)
        return Sql(f"({a.sql} {symbol} {b.sql})", a.params + b.params, "number")

    def _array_op(self, op: str, args: list[Any]) -> Sql:
        a, b = self._args(op, args, 2)
        if a.kind != "array" or b.kind != "array":
            raise QueryError(f"{op} compares arrays, not {a} ({a.kind}) and {b} ({b.kind})")
        literal = b.literal if b.literal is not _MISSING else None
        if op in ("a_contains", "a_overlaps") and literal:
            # One list_contains per value is several times faster than list_has_all in DuckDB.
            parts = [Sql(f"list_contains({a.sql}, ?)", (*a.params, v)) for v in literal]
            return _join("AND" if op == "a_contains" else "OR", parts)
        if op == "a_containedby":
            return Sql(f"list_has_all({b.sql}, {a.sql})", b.params + a.params)
        function = {"a_equals": "", "a_contains": "list_has_all", "a_overlaps": "list_has_any"}
        if op == "a_equals":
            return Sql(f"({a.sql} = {b.sql})", a.params + b.params)
        return Sql(f"{function[op]}({a.sql}, {b.sql})", a.params + b.params)

    def _spatial(self, op: str, args: list[Any]) -> Sql:
        a, b = self._args(op, args, 2)
        if a.kind != "geometry" or b.kind != "geometry":
            raise QueryError(f"{op} compares geometries, not {a} ({a.kind}) and {b} ({b.kind})")
        test = Sql(f"{_SPATIAL[op]}({a.sql}, {b.sql})", a.params + b.params)
        if op == "s_disjoint" or a.name != "geometry" or b.literal is _MISSING:
            return test
        return _join("AND", [bbox_overlap(b.literal.bounds), test])

    def _temporal(self, op: str, args: list[Any]) -> Sql:
        a, b = self._args(op, args, 2)
        sides = []
        for side in (a, b):
            if side.kind == "interval":
                sides.append(side.literal)
            elif side.kind == "timestamp":
                sides.append((side, side))
            elif side.kind == "string" and side.literal is not _MISSING:
                start, end = parse_time(side.literal, op)
                sides.append((_param(start, "timestamp"), _param(end, "timestamp")))
            else:
                raise QueryError(f"{op} compares times or intervals, not {side} ({side.kind})")
        (a0, a1), (b0, b1) = sides
        ends = {"as": a0, "ae": a1, "bs": b0, "be": b1}
        parts = []
        for left, cmp, right in _TEMPORAL[op]:
            x, y = ends[left], ends[right]
            parts.append(Sql(f"({x.sql} {cmp} {y.sql})", x.params + y.params))
        joined = _join("AND", parts)
        if op == "t_disjoint":
            return Sql(f"(NOT {joined.sql})", joined.params)
        return joined


def _fold(op: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if op == "casei":
        return value.lower()
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFD", value) if not unicodedata.combining(c))


def bbox_overlap(bounds: Sequence[float]) -> Sql:
    """Items whose bbox overlaps ``(xmin, ymin, xmax, ymax)``: a filter on the ``bbox`` struct.

    Parquet keeps min/max statistics of each ``bbox`` field per row group, so DuckDB skips row
    groups that cannot match.
    """
    xmin, ymin, xmax, ymax = (float(v) for v in bounds)
    return Sql(
        "(bbox.xmin <= ? AND bbox.xmax >= ? AND bbox.ymin <= ? AND bbox.ymax >= ?)",
        (xmax, xmin, ymax, ymin),
    )


_HANDLERS: dict[str, str] = {
    "and": "_logical",
    "or": "_logical",
    "not": "_not",
    "isnull": "_isnull",
    "like": "_like",
    "between": "_between",
    "in": "_in",
    "casei": "_text_function",
    "accenti": "_text_function",
    **dict.fromkeys(("=", "<>", "<", "<=", ">", ">="), "_compare"),
    **dict.fromkeys(("+", "-", "*", "/", "%", "div", "^"), "_arithmetic"),
    **dict.fromkeys(("a_equals", "a_contains", "a_containedby", "a_overlaps"), "_array_op"),
}

_SPATIAL = {
    "s_intersects": "ST_Intersects",
    "s_disjoint": "ST_Disjoint",
    "s_contains": "ST_Contains",
    "s_within": "ST_Within",
    "s_equals": "ST_Equals",
    "s_touches": "ST_Touches",
    "s_overlaps": "ST_Overlaps",
    "s_crosses": "ST_Crosses",
}

#: Allen's interval relations as conditions on the ends (as/ae: first argument, bs/be: second).
_TEMPORAL: dict[str, tuple[tuple[str, str, str], ...]] = {
    "t_after": (("as", ">", "be"),),
    "t_before": (("ae", "<", "bs"),),
    "t_contains": (("as", "<", "bs"), ("ae", ">", "be")),
    "t_during": (("as", ">", "bs"), ("ae", "<", "be")),
    "t_equals": (("as", "=", "bs"), ("ae", "=", "be")),
    "t_finishedby": (("as", "<", "bs"), ("ae", "=", "be")),
    "t_finishes": (("as", ">", "bs"), ("ae", "=", "be")),
    "t_intersects": (("as", "<=", "be"), ("ae", ">=", "bs")),
    "t_disjoint": (("as", "<=", "be"), ("ae", ">=", "bs")),
    "t_meets": (("ae", "=", "bs"),),
    "t_metby": (("as", "=", "be"),),
    "t_overlappedby": (("bs", "<", "as"), ("be", ">", "as"), ("be", "<", "ae")),
    "t_overlaps": (("as", "<", "bs"), ("ae", ">", "bs"), ("ae", "<", "be")),
    "t_startedby": (("as", "=", "bs"), ("ae", ">", "be")),
    "t_starts": (("as", "=", "bs"), ("ae", "<", "be")),
}
_HANDLERS.update(dict.fromkeys(_SPATIAL, "_spatial"))
_HANDLERS.update(dict.fromkeys(_TEMPORAL, "_temporal"))
