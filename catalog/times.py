"""Parse the times a search may name: RFC 3339 instants, partial dates and open intervals.

``2017-06-13T10:10:31Z`` is an instant; ``2017``, ``2017-06`` and ``2017-06-13`` stand for the
whole year, month or day (as rustac and most STAC APIs read them); ``a/b`` is an interval whose
ends may be open (``..`` or empty).
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta

from lake.errors import QueryError

#: Stand-ins for open interval ends (DuckDB compares them like any timestamp).
EARLIEST = datetime(1, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
OPEN = ("..", "")

_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?$")
_FULL = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$")


def parse_time(text: str, what: str = "datetime") -> tuple[datetime, datetime]:
    """The first and last instant (UTC) that ``text`` stands for.

    Raises:
        QueryError: It is neither an RFC 3339 date-time nor a partial date.
    """
    value = text.strip()
    m = _PARTIAL.match(value)
    try:
        if m:
            year, month, day = int(m[1]), int(m[2] or 0), int(m[3] or 0)
            if not month:
                start = datetime(year, 1, 1, tzinfo=UTC)
                return start, datetime(year + 1, 1, 1, tzinfo=UTC) - timedelta(microseconds=1)
            if not day:
                last = calendar.monthrange(year, month)[1]
                start = datetime(year, month, 1, tzinfo=UTC)
                return start, start + timedelta(days=last) - timedelta(microseconds=1)
            start = datetime(year, month, day, tzinfo=UTC)
            return start, start + timedelta(days=1) - timedelta(microseconds=1)
        if _FULL.match(value):
            parsed = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            instant = parsed.astimezone(UTC)
            return instant, instant
    except (ValueError, OverflowError) as exc:
        raise QueryError(f"{what} {text!r} is not a valid date or time ({exc})") from None
    raise QueryError(
        f"{what} {text!r} is not an RFC 3339 date-time (2017-06-13T10:10:31Z) or a date "
        "(2017, 2017-06, 2017-06-13)"
    )


def parse_interval(text: str, what: str = "datetime") -> tuple[datetime | None, datetime | None]:
    """A ``datetime`` search parameter as (start, end), None for an open end.

    ``x`` alone is the interval that ``x`` stands for; ``a/b``, ``../b`` and ``a/..`` are
    intervals.

    Raises:
        QueryError: Unparseable, both ends open, or the start after the end.
    """
    value = text.strip()
    if "/" not in value:
        return parse_time(value, what)
    if value.count("/") != 1:
        raise QueryError(f"{what} {text!r} has more than one '/': use start/end")
    first, second = (p.strip() for p in value.split("/"))
    start = None if first in OPEN else parse_time(first, what)[0]
    end = None if second in OPEN else parse_time(second, what)[1]
    if start is None and end is None:
        raise QueryError(f"{what} {text!r} is open at both ends: leave {what} out instead")
    if start is not None and end is not None and start > end:
        raise QueryError(f"{what} {text!r} starts after it ends")
    return start, end
