"""A size-capped local cache of whole shard objects, shared by the processes of one machine.

Releases are immutable, so an object's URL is its identity and nothing is ever invalidated. Each
entry is one file named by a hash of the URL; a per-entry ``fcntl`` lock makes one process
download an object while the others (DataLoader workers reading the same shard) wait for it and
then read it from disk. When the files add up to more than the cap, the least recently used ones
(oldest modification time; a hit touches its file) are deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lake.errors import ConfigError
from lake.storage import new_file

_SUFFIX = ".shard"


@dataclass(frozen=True)
class ShardCache:
    """A folder of cached shard objects, at most ``max_bytes`` in total (picklable).

    Attributes:
        directory: The cache folder (created on first use).
        max_bytes: Size cap; least recently used entries are evicted above it.
    """

    directory: str
    max_bytes: int

    def __post_init__(self) -> None:
        if self.max_bytes <= 0:
            raise ConfigError(f"cache_bytes={self.max_bytes}: must be positive")

    def path_of(self, url: str) -> Path:
        """The file that caches ``url``."""
        name = hashlib.sha256(url.encode()).hexdigest()[:40]
        return Path(self.directory) / f"{name}{_SUFFIX}"

    def get_or_fetch(self, url: str, fetch: Callable[[], bytes]) -> bytes:
        """The cached bytes of ``url``, fetching and storing them on a miss.

        Args:
            url: The object's URL (its identity).
            fetch: Reads the object (called at most once per miss, under the entry's lock).
        """
        path = self.path_of(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        hit = self._read(path)
        if hit is not None:
            return hit
        with _locked(path.with_suffix(".lock")):
            hit = self._read(path)  # another process may have fetched it while we waited
            if hit is not None:
                return hit
            data = fetch()
            fd, tmp = new_file(str(path.parent))
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        self.evict(keep=path)
        return data

    def _read(self, path: Path) -> bytes | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        with contextlib.suppress(OSError):
            os.utime(path)
        return data

    def size(self) -> int:
        """Bytes held now."""
        return sum(p.stat().st_size for p in Path(self.directory).glob(f"*{_SUFFIX}"))

    def evict(self, keep: Path | None = None) -> int:
        """Delete least recently used entries until the cache fits its cap; returns bytes freed."""
        entries = []
        for p in Path(self.directory).glob(f"*{_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                st = p.stat()
                entries.append((st.st_mtime_ns, st.st_size, p))
        total = sum(size for _, size, _ in entries)
        freed = 0
        for _, size, p in sorted(entries, key=lambda e: e[0]):
            if total - freed <= self.max_bytes:
                break
            if p == keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                freed += size
        return freed


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
