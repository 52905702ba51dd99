"""What one SQL session may take: a memory limit and a statement timeout.

A read-only session gets both by default, so one query cannot take the machine:
``memory_limit`` is set before ``lock_configuration`` (and is not among the settings a session
may change), and DuckDB 1.5.5 has no statement timeout of its own, so :class:`Deadline`
interrupts the connection (``con.interrupt()``) from a timer thread when a call runs too long.
"""

from __future__ import annotations

import os
import threading
from types import TracebackType
from typing import Any

from lake.errors import ConfigError, QueryTimeout

#: Seconds one call into DuckDB (a statement, or fetching a result) may run in a read-only
#: session by default.
DEFAULT_TIMEOUT_S = 300.0
#: The largest default memory limit of a read-only session (half the RAM when that is less).
DEFAULT_MEMORY_LIMIT_MIB = 4096


def default_memory_limit() -> str:
    """The default memory limit of a read-only session: 4 GiB or half the RAM, if less."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (ValueError, OSError, AttributeError):  # pragma: no cover (not Linux/macOS)
        total = 2 * DEFAULT_MEMORY_LIMIT_MIB
    return f"{max(256, min(DEFAULT_MEMORY_LIMIT_MIB, total // 2))}MiB"


def resolve(
    memory_limit: str | None, timeout: float | None, *, read_only: bool
) -> tuple[str | None, float | None]:
    """The session's memory limit and timeout from the options (None: the mode's default).

    Args:
        memory_limit: A DuckDB size (``"8GB"``, ``"16GiB"``); None: :func:`default_memory_limit`
            when read-only, DuckDB's own default (80% of RAM) otherwise.
        timeout: Seconds per call; 0: none; None: :data:`DEFAULT_TIMEOUT_S` when read-only,
            none otherwise.
        read_only: Whether the session is read-only.

    Returns:
        The memory limit (None: DuckDB's default) and the timeout in seconds (None: none).

    Raises:
        ConfigError: ``timeout`` is negative or ``memory_limit`` is empty.
    """
    if timeout is not None and not timeout >= 0:
        raise ConfigError(
            f"timeout={timeout!r}: give the seconds a statement may run (0: no timeout)"
        )
    if memory_limit is not None and not str(memory_limit).strip():
        raise ConfigError("memory_limit='': give a size such as '8GB' (None: the default)")
    if memory_limit is None and read_only:
        memory_limit = default_memory_limit()
    if timeout is None:
        timeout = DEFAULT_TIMEOUT_S if read_only else 0.0
    return memory_limit, (float(timeout) or None)


class Deadline:
    """Interrupt a DuckDB connection when the block it guards runs past ``seconds``.

    The block then raises :class:`~lake.errors.QueryTimeout` instead of DuckDB's
    ``InterruptException``; the connection stays usable. A timer that fires just as the block
    ends does nothing (an interrupt never reaches the next statement).

    Example:
        >>> with Deadline(con, 30.0, what="SELECT ..."):  # doctest: +SKIP
        ...     rows = rel.fetchall()
    """

    def __init__(self, con: Any, seconds: float | None, *, what: str = "the statement") -> None:
        self._con = con
        self._seconds = seconds
        self._what = what
        self._lock = threading.Lock()
        self._active = False
        self.fired = False
        self._timer: threading.Timer | None = None

    def _fire(self) -> None:
        with self._lock:
            if self._active:
                self.fired = True
                self._con.interrupt()

    def __enter__(self) -> Deadline:
        if self._seconds is not None:
            self._active = True
            self._timer = threading.Timer(self._seconds, self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with self._lock:
            self._active = False
        if self._timer is not None:
            self._timer.cancel()
        if self.fired and exc is not None:
            import duckdb

            if isinstance(exc, duckdb.InterruptException):
                raise QueryTimeout(
                    f"{self._what} ran past the session's timeout of {self._seconds:g} s and was "
                    "interrupted; connect with a larger timeout (lake.connect(..., timeout=S), "
                    "0 for none) or `lake sql --timeout S`"
                ) from None
