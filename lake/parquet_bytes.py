"""Read a Parquet object into memory that Arrow owns, so that no Python object lives in Arrow.

Why: Arrow reads on its own thread pools and drops its last references to the input (the
file, its buffers) there, sometimes just after the reading call has returned. When the input is
a Python object (an fsspec file, ``bytes``), dropping it takes the GIL; if that happens while
the interpreter is shutting down, the thread is ended inside a C++ destructor and the process
aborts ("terminate called without an active exception", exit 134) after the work succeeded.
A short command that reads a Parquet object and then exits (``lake pipeline stats`` on a release
that has its statistics) hit that in about one run of six. Copying the object's bytes into an
Arrow buffer first leaves nothing in Arrow that needs the interpreter.
"""

from __future__ import annotations

from collections.abc import Sequence

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq


def arrow_buffer(data: bytes) -> pa.Buffer:
    """A copy of ``data`` in memory allocated (and freed) by Arrow, not by Python."""
    sink = pa.BufferOutputStream()
    sink.write(data)
    return sink.getvalue()


def read_parquet(
    fs: fsspec.AbstractFileSystem, path: str, columns: Sequence[str] | None = None
) -> pa.Table:
    """A whole Parquet object (one GET), decoded from an Arrow-owned copy of its bytes.

    Args:
        fs: The filesystem.
        path: The object's fsspec path.
        columns: The columns to read (all when None).

    Raises:
        FileNotFoundError: There is no such object.
    """
    data = arrow_buffer(fs.cat_file(path))
    return pq.read_table(pa.BufferReader(data), columns=None if columns is None else list(columns))
