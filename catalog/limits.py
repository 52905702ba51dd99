"""Size and nesting limits of search requests, checked before any parser sees the request.

The ``cql2`` parser recurses once per nesting level in native code: about 1,500 nested
parentheses, 3,000-10,000 stacked ``NOT``/``-``/``=`` or function calls, or a JSON filter some
10,000 levels deep overflow its stack and kill the whole process (a segfault, no exception).
Python's own JSON decoder and our translator (:mod:`catalog.cql`) raise ``RecursionError`` much
earlier. So every filter is measured here first, without recursion and in linear time, and a
filter over a limit is refused with a :class:`~lake.errors.QueryError` that names the limit.

The limits are far above what a real search needs (the filters of the tests and benchmarks
measure at most 4 levels; a 64 Ki-character filter holds an ``IN`` list of about 1,000 patch
ids) and far below where anything breaks (see ``docs/decisions/0003-stac-api.md``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lake.errors import QueryError

#: The most characters a filter (CQL2 text, or CQL2 JSON as text) may have.
MAX_FILTER_CHARS = 65_536
#: The deepest a filter may nest: operators within operators (``args`` in CQL2 JSON;
#: parentheses, function calls and chained operators such as ``NOT NOT`` in CQL2 text).
MAX_FILTER_DEPTH = 50
#: The deepest JSON (objects and arrays within each other) a filter, a geometry or a POST body
#: may have. Below the 128 levels at which ``cql2.parse_json`` gives up.
MAX_JSON_DEPTH = 120
#: The most bytes of a POST body.
MAX_BODY_BYTES = 1_048_576
#: The most bytes of a query string (the part of a GET URL after ``?``), percent-encoded: room
#: for a filter of :data:`MAX_FILTER_CHARS` characters that is encoded three bytes a character.
MAX_QUERY_BYTES = 262_144
#: The most bytes of a request line and its headers that the HTTP layer (h11) buffers; a longer
#: request is refused there (400) before the app sees it. Larger than :data:`MAX_QUERY_BYTES` so
#: an over-long query string gets the app's own 414 that names the limit.
MAX_HEAD_BYTES = 2 * MAX_BODY_BYTES

# A quoted string or identifier, to the closing quote or to the end of the text (so that every
# quote starts a match and the scan stays linear even when a quote is never closed).
_TEXT_TOKEN = re.compile(
    r"""
      (?P<string>'(?:[^']|'')*(?:'|\Z))
    | (?P<ident>"(?:[^"]|"")*(?:"|\Z))
    | (?P<open>\()
    | (?P<close>\))
    | (?P<comma>,)
    | (?P<word>[A-Za-z_][A-Za-z0-9_.:]*)
    | (?P<number>[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?)
    | (?P<op><>|<=|>=|!=|\|\||[=<>+\-*/%^])
    | (?P<other>\s+|.)
    """,
    re.VERBOSE | re.DOTALL,
)
#: Words after which the next operand starts a new chain (n-ary: ``cql2`` keeps them flat).
_FLAT = frozenset({"AND", "OR"})
#: Words that are operators: each can nest what follows it one level deeper.
_NESTING = frozenset({"NOT", "IS", "LIKE", "BETWEEN", "IN", "DIV"})
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def _shown(text: str) -> str:
    return repr(text[:80] + ("..." if len(text) > 80 else ""))


def check_filter_size(text: str, lang: str) -> None:
    """Refuse a filter longer than :data:`MAX_FILTER_CHARS`.

    Raises:
        QueryError: It is longer.
    """
    if len(text) > MAX_FILTER_CHARS:
        raise QueryError(
            f"filter {_shown(text)} has {len(text):,} characters; a {lang} filter may have at "
            f"most {MAX_FILTER_CHARS:,} (the limit MAX_FILTER_CHARS): split the search or put "
            "long id lists in the ids parameter"
        )


def text_depth(text: str) -> int:
    """How deep a CQL2 text filter nests, counted without parsing it (an upper bound).

    Each open parenthesis (grouping, function call, list, WKT) is a level, and so is each
    operator (``NOT``, comparison, arithmetic, ``LIKE`` ...) since the last ``AND``, ``OR`` or
    comma at the same parenthesis level: ``NOT NOT a = -b`` is 4 levels, ``a = 1 AND b = 2``
    one.
    """
    chains = [0]  # operators since the last AND/OR/comma, per open parenthesis
    total = deepest = 0  # total == len(chains) - 1 + sum(chains)
    for match in _TEXT_TOKEN.finditer(text):
        kind = match.lastgroup
        if kind == "open":
            chains.append(0)
            total += 1
        elif kind == "close":
            if len(chains) > 1:
                total -= chains.pop() + 1
        elif kind == "comma" or (kind == "word" and match.group().upper() in _FLAT):
            total -= chains[-1]
            chains[-1] = 0
        elif kind == "op" or (kind == "word" and match.group().upper() in _NESTING):
            chains[-1] += 1
            total += 1
        deepest = max(deepest, total)
    return deepest


def json_text_depth(data: str | bytes) -> int:
    """How deep JSON text nests (objects and arrays within each other), without parsing it.

    Brackets inside strings do not count. Malformed JSON gets a number too; the parser that
    runs next rejects it.
    """
    import numpy as np

    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if not raw.translate(None, _NOT_BRACKETS):
        return 0
    codes = np.frombuffer(raw, dtype=np.uint8)
    index = np.arange(len(codes))
    # A quote is escaped when an odd run of backslashes precedes it.
    backslash = codes == ord("\\")
    last_other = np.maximum.accumulate(np.where(backslash, -1, index))
    run = np.concatenate(([0], index[:-1] - last_other[:-1]))  # backslashes just before each
    quote = (codes == ord('"')) & (run % 2 == 0)
    inside = (np.cumsum(quote) - quote) % 2 == 1  # after an odd number of quotes: in a string
    opens = ((codes == ord("[")) | (codes == ord("{"))) & ~inside
    closes = ((codes == ord("]")) | (codes == ord("}"))) & ~inside
    depth = np.cumsum(opens.astype(np.int32) - closes.astype(np.int32))
    return max(int(depth.max()), 0)


def json_value_depth(value: Any) -> tuple[int, int]:
    """How deep a parsed JSON value nests: (containers, CQL2 operators) within each other.

    Walks the value with an explicit stack (no recursion), so it is safe on any depth.
    """
    deepest = deepest_op = 0
    stack: list[tuple[Any, int, int]] = [(value, 1, 0)]
    while stack:
        node, depth, ops = stack.pop()
        if isinstance(node, Mapping):
            ops += 1 if "op" in node else 0
            children: Any = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        deepest, deepest_op = max(deepest, depth), max(deepest_op, ops)
        if deepest > MAX_JSON_DEPTH + 1 or deepest_op > MAX_FILTER_DEPTH + 1:
            break  # deep enough to refuse; do not walk the rest
        stack.extend((child, depth + 1, ops) for child in children)
    return deepest, deepest_op


def check_filter_text(text: str, lang: str) -> None:
    """Check the size and nesting of a filter given as text (CQL2 text or CQL2 JSON).

    Raises:
        QueryError: Over :data:`MAX_FILTER_CHARS`, :data:`MAX_FILTER_DEPTH` or (JSON)
            :data:`MAX_JSON_DEPTH`; the message names the limit.
    """
    check_filter_size(text, lang)
    if lang == "cql2-json":
        _refuse_json_depth(f"filter {_shown(text)}", json_text_depth(text))
        return
    depth = text_depth(text)
    if depth > MAX_FILTER_DEPTH:
        raise QueryError(
            f"filter {_shown(text)} nests {depth} levels deep (parentheses, function calls and "
            f"chained operators such as NOT NOT each count one); at most {MAX_FILTER_DEPTH} "
            "(the limit MAX_FILTER_DEPTH): write it flatter"
        )


def check_filter_json(value: Mapping[str, Any]) -> None:
    """Check the nesting of a filter given as parsed CQL2 JSON.

    Raises:
        QueryError: Over :data:`MAX_JSON_DEPTH` or :data:`MAX_FILTER_DEPTH`; the message names
            the limit.
    """
    depth, ops = json_value_depth(value)
    _refuse_json_depth("the cql2-json filter", depth)
    if ops > MAX_FILTER_DEPTH:
        raise QueryError(
            f"the cql2-json filter nests operators ('op' within 'args') more than "
            f"{MAX_FILTER_DEPTH} levels deep (the limit MAX_FILTER_DEPTH): write it flatter"
        )


def check_json_depth(what: str, data: str | bytes | Mapping[str, Any]) -> None:
    """Refuse JSON (text or parsed) nested deeper than :data:`MAX_JSON_DEPTH`.

    Args:
        what: What the JSON is, for the message (``intersects``, ``the request body``).
        data: The JSON text or value.

    Raises:
        QueryError: It nests deeper.
    """
    depth = json_value_depth(data)[0] if isinstance(data, Mapping) else json_text_depth(data)
    _refuse_json_depth(what, depth)


def _refuse_json_depth(what: str, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise QueryError(
            f"{what} nests JSON objects and arrays more than {MAX_JSON_DEPTH} levels deep "
            f"(the limit MAX_JSON_DEPTH): write it flatter"
        )
