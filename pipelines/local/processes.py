"""Local server processes (the embedded S3 endpoint, the Dask Gateway): start, wait, stop.

A :class:`ServerProcess` runs one child process on loopback that dies with its parent (Linux
parent-death signal, even after ``kill -9`` of the parent), waits until it answers, and stops it
with SIGTERM (then SIGKILL) when its ``with`` block ends. :func:`signals_interrupt` makes
``kill`` of the parent stop it as Ctrl-C does.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self


def environment_binary(name: str, missing: Callable[[], Exception]) -> str:
    """Path of a program installed with this Python's environment (next to it), else on ``PATH``.

    Args:
        name: The program (``rclone``, ``rustac``, ``lake``).
        missing: The error to raise when it is found nowhere (saying how to install it).
    """
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise missing()
    return found


def die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when its parent dies (even kill -9)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_free(host: str, port: int) -> bool:
    """Whether a TCP port can be bound on ``host`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


class ServerProcess:
    """One server child process; subclasses define ``start`` with :meth:`_spawn` + :meth:`_wait`.

    Attributes:
        stop_timeout: Seconds :meth:`stop` waits after SIGTERM before it kills.
    """

    stop_timeout: float = 10.0
    _proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Any:
        """Start the server and wait until it answers (subclasses)."""
        raise NotImplementedError

    def _spawn(self, cmd: Sequence[str], **popen: Any) -> None:
        """Start ``cmd`` with no stdin, dying with this process."""
        self._proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
            **popen,
        )

    def _wait(
        self,
        answers: Callable[[], bool],
        timeout: float,
        exited: Callable[[int], Exception],
        silent: Callable[[], Exception],
        poll: float = 0.05,
    ) -> None:
        """Wait until ``answers()``; raise ``exited(status)`` or (after stopping) ``silent()``."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise exited(code)
            if answers():
                return
            time.sleep(poll)
        self.stop()
        raise silent()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the server: SIGTERM, then SIGKILL after ``timeout`` seconds (idempotent)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=self.stop_timeout if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (for monitoring its CPU and memory), else None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def signals_interrupt(signums: tuple[int, ...] = (signal.SIGTERM, signal.SIGHUP)) -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`KeyboardInterrupt` while the block runs.

    Python's default for SIGTERM ends the process at once, without running ``finally`` blocks or
    ``__exit__``, which would leave a server (rclone, the gateway) running with no parent. Wrap
    the life of a :class:`ServerProcess` in this (in the main thread) so that ``kill`` stops it
    like Ctrl-C does.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; there, the default applies
        return
    previous = {s: signal.signal(s, _interrupt) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
