"""The STAC API query extension (``query={"country": {"eq": "Austria"}}``) as a CQL2 filter.

The extension (https://github.com/stac-api-extensions/query, conformance class
``https://api.stacspec.org/v1.0.0/item-search#query``) filters on Item properties with a JSON
object ``{property: {operator: value, ...}, ...}``; every entry must hold. Planetary Computer
and Earth Search users (and pystac-client's ``query=``) rely on it, so the catalog accepts it
and translates it into the CQL2 JSON that :mod:`catalog.cql` already turns into safe SQL: the
properties are checked against the same queryables and every value is a parameter.

==============  =====================================  ==========================
operator        meaning                                CQL2
==============  =====================================  ==========================
``eq``          equal                                  ``=``
``neq``         not equal                              ``<>``
``lt`` ...      ``lt lte gt gte``                      ``< <= > >=``
``startsWith``  string prefix                          ``like 'v%'`` (escaped)
``endsWith``    string suffix                          ``like '%v'``
``contains``    string infix                           ``like '%v%'``
``in``          one of a list of values                ``in``
==============  =====================================  ==========================

Names may be given as ``country`` or ``properties.country``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from catalog.limits import check_json_depth
from lake.errors import QueryError

#: The query extension's conformance class for item search.
CONFORMANCE: Final = "https://api.stacspec.org/v1.0.0/item-search#query"
#: Comparison operators and their CQL2 names.
_COMPARISONS: Final = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
#: String operators and the LIKE pattern they build around the (escaped) value.
_STRINGS: Final = {"startsWith": "{}%", "endsWith": "%{}", "contains": "%{}%"}
OPERATORS: Final = (*_COMPARISONS, *_STRINGS, "in")
#: The most conditions one query may hold (a bigger one is not a property filter).
MAX_CONDITIONS: Final = 256
_MAX_TEXT: Final = 64 * 1024


def parse_query(value: str | Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The CQL2 JSON filter of a ``query`` parameter (a JSON string or an object).

    Args:
        value: ``{"country": {"eq": "Austria"}, "gsd": {"lte": 10}}``, as a dict or JSON text;
            None or ``{}`` query nothing.

    Returns:
        The conditions joined with ``and`` as CQL2 JSON, or None when there are none.

    Raises:
        QueryError: Not JSON, not an object of objects, an unknown operator (the message lists
            the known ones), a value of the wrong kind for its operator, or too many conditions.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if len(value) > _MAX_TEXT:
            raise QueryError(f"query is {len(value)} characters long: at most {_MAX_TEXT}")
        check_json_depth("query", value)
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise QueryError(f"query is not JSON ({exc})") from None
    if not isinstance(value, Mapping):
        raise QueryError(
            f'query {_short(value)} must be an object such as {{"country": {{"eq": "Austria"}}}}'
        )
    conditions: list[dict[str, Any]] = []
    for name, ops in value.items():
        if not isinstance(name, str) or not name.strip():
            raise QueryError(f"query names the property {name!r}: give a property name")
        prop = {"property": name.strip().removeprefix("properties.")}
        if not isinstance(ops, Mapping) or not ops:
            raise QueryError(
                f"query[{name!r}] = {_short(ops)} must be an object of operators, such as "
                '{"eq": "Austria"}'
            )
        for op, operand in ops.items():
            conditions.append(_condition(name, str(op), operand, prop))
            if len(conditions) > MAX_CONDITIONS:
                raise QueryError(f"query holds more than {MAX_CONDITIONS} conditions")
    if not conditions:
        return None
    if len(conditions) == 1:
        return conditions[0]
    return {"op": "and", "args": conditions}


def _condition(name: str, op: str, operand: Any, prop: dict[str, str]) -> dict[str, Any]:
    where = f"query[{name!r}][{op!r}]"
    if op in _COMPARISONS:
        _check_scalar(where, operand)
        return {"op": _COMPARISONS[op], "args": [prop, operand]}
    if op in _STRINGS:
        if not isinstance(operand, str):
            raise QueryError(f"{where} = {_short(operand)}: {op} takes a string")
        return {"op": "like", "args": [prop, _STRINGS[op].format(_escape_like(operand))]}
    if op == "in":
        if not isinstance(operand, list) or not operand:
            raise QueryError(f"{where} = {_short(operand)}: in takes a non-empty list of values")
        for v in operand:
            _check_scalar(where, v)
        return {"op": "in", "args": [prop, list(operand)]}
    raise QueryError(f"{where}: unknown operator {op!r}; use one of {', '.join(OPERATORS)}")


def _check_scalar(where: str, value: Any) -> None:
    if value is None or isinstance(value, Mapping | list):
        raise QueryError(f"{where} = {_short(value)}: give a string, number or boolean")


def _escape_like(text: str) -> str:
    """``text`` with the LIKE wildcards and the escape character taken literally."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _short(value: Any) -> str:
    text = json.dumps(value, default=repr) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
