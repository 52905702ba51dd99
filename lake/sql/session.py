"""Open a SQL session over a release: DuckDB views over its Parquet, local or on S3.

DuckDB reads the Parquet objects itself (local files, or ``s3://`` through ``httpfs`` with the
lake's secret, on any endpoint); nothing is copied. The session is read-only unless
``allow_write`` (see :mod:`lake.sql.guard`).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from typing import TYPE_CHECKING, Any

from lake.config import StoreSpec, as_spec
from lake.errors import ConfigError, StorageError
from lake.layout import annotations_table_path, patches_table_path, stac_items_path
from lake.sql import limits, textsearch
from lake.sql.guard import LakeConnection, lock_down
from lake.sql.views import ReleaseFiles, view_statements

if TYPE_CHECKING:
    from lake.reader import Release


#: Largest release (text rows) whose text index a session builds in memory by default.
MEMORY_INDEX_MAX_ROWS = 1_000_000


def _where(spec: StoreSpec) -> str:
    return spec.url + (f" at {spec.endpoint_url}" if spec.endpoint_url else "")


def open_release(spec: StoreSpec, release: str | None) -> Release:
    """The named (or current) release of the lake.

    Raises:
        ConfigError: The lake is not a local folder or on S3.
        LayoutError: There is no lake at the URL.
        ReleaseNotFound: No such release, or none published yet.
        StorageError: The storage cannot be reached or refuses access.
    """
    from lake.reader import open_lake
    from lake.storage import storage_errors

    if spec.protocol not in ("file", "s3"):
        raise ConfigError(
            f"lake {spec.url}: SQL needs a local folder or an s3:// lake (DuckDB reads the "
            f"Parquet objects itself), not {spec.protocol}://"
        )
    try:
        rel = open_lake(spec).release(release)
        _ = rel.manifest
    except storage_errors() as exc:
        hint = (
            "check the endpoint (--endpoint-url or AWS_ENDPOINT_URL), that it is running, and "
            "the key and secret"
            if spec.protocol == "s3"
            else "check the lake URL and that you may read it"
        )
        raise StorageError(f"lake {_where(spec)}: {type(exc).__name__}: {exc}; {hint}") from None
    return rel


def release_files(spec: StoreSpec, rel: Release) -> ReleaseFiles:
    """The release's Parquet objects (from its manifest), plus STAC items and text index.

    The STAC items and the text index may be written after the release was published, so
    they are looked up in storage when the manifest does not list them.
    """
    from lake.duck import duckdb_url
    from lake.storage import filesystem

    sizes = {str(o["path"]): int(o.get("size", 0)) for o in rel.manifest.get("objects", [])}
    listed = list(sizes)

    def under(prefix: str) -> list[str]:
        """The Parquet files below a prefix, largest first.

        DuckDB estimates a file list's rows from its first file: with the tiny ``bench``
        partition first, it built a join's hash table on the 9 M annotation rows instead of
        the pairs (15x slower).
        """
        found = [p for p in listed if p.startswith(prefix + "/") and p.endswith(".parquet")]
        return sorted(found, key=lambda p: (-sizes[p], p))

    fs = filesystem(spec)

    def present(path: str) -> bool:
        return path in listed or bool(fs.exists(spec.path(path)))

    items = stac_items_path(rel.name)
    index = {t: textsearch.index_path(rel.name, t) for t in textsearch.INDEX_TABLES}
    has_index = all(present(p) for p in index.values())
    return ReleaseFiles(
        patches=[duckdb_url(spec, p) for p in under(patches_table_path(rel.name))],
        annotations=[duckdb_url(spec, p) for p in under(annotations_table_path(rel.name))],
        items=duckdb_url(spec, items) if present(items) else None,
        text_index={t: duckdb_url(spec, p) for t, p in index.items()} if has_index else None,
    )


def _spec_of(url_or_spec: str | os.PathLike[str] | StoreSpec | None, **s3: Any) -> StoreSpec:
    return as_spec(url_or_spec, **s3)


def connect(
    url_or_spec: str | os.PathLike[str] | StoreSpec | None = None,
    *,
    release: str | None = None,
    allow_write: bool = False,
    text_index: bool | None = None,
    memory_limit: str | None = None,
    timeout: float | None = None,
    **s3: Any,
) -> LakeConnection:
    """A DuckDB session with views over a release of the lake.

    Views: ``patches``, ``annotations``, ``captions``, ``vqa``, ``refexp``, ``labels``,
    ``items`` (see ``docs/sql.md`` or ``lake sql --schema``) and the table macro
    ``text_search(q, kind := NULL)``. The same SQL runs on a local folder and on ``s3://``.

    Example:
        >>> import lake
        >>> con = lake.connect("s3://bucket/lake")  # doctest: +SKIP
        >>> con.sql("SELECT type, count(*) FROM annotations GROUP BY ALL").df()  # doctest: +SKIP

    Args:
        url_or_spec: The lake (a folder or ``s3://bucket/prefix``), or its spec; ``LAKE_URL``
            or ``./lake-data`` when None.
        release: The release (None: the current one).
        allow_write: Lift the read-only guard: the session may then COPY, ATTACH, write and read
            any file, like a plain DuckDB connection.
        text_index: When the release has no persisted text index: build one in the session's
            memory (True), don't (False: no ``text_search``), or build it only for releases of
            at most :data:`MEMORY_INDEX_MAX_ROWS` text rows (None, the default; building takes
            about 3.5 s per million rows on 2 cores).
        memory_limit: DuckDB's memory limit for the session (``"8GB"``, ``"16GiB"``); None:
            4 GiB or half the RAM, if less, when read-only (a read-only session cannot raise
            it with ``SET``), DuckDB's own 80% of RAM with ``allow_write``.
        timeout: Seconds one call into DuckDB (a statement, or fetching its result) may run
            before it is interrupted with :class:`~lake.errors.QueryTimeout`; 0: no limit;
            None: 300 s when read-only, no limit with ``allow_write``.
        **s3: ``endpoint_url``, ``key``, ``secret``, ``region`` (else the environment).

    Returns:
        A :class:`~lake.sql.guard.LakeConnection`: the DuckDB connection's methods
        (``sql``, ``execute``, ``.df()``, ``.arrow()``, ``.pl()``...).

    Raises:
        ConfigError: Bad URL or options (a memory limit DuckDB cannot read, a negative timeout).
        LayoutError: There is no lake at the URL.
        ReleaseNotFound: No such release.
        StorageError: The storage cannot be reached or refuses access.
    """
    from lake.duck import duckdb_connect

    memory, seconds = limits.resolve(memory_limit, timeout, read_only=not allow_write)
    spec = _spec_of(url_or_spec, **s3)
    rel = open_release(spec, release)
    files = release_files(spec, rel)
    con = duckdb_connect(spec, config=_session_config(memory))
    try:
        for statement in view_statements(files, rel.name):
            con.execute(statement)
        notes: dict[str, str] = {}
        if files.items is None:
            notes["items"] = (
                f"no STAC items for release {rel.name!r} yet ({stac_items_path(rel.name)})"
            )
        total = int(rel.manifest.get("counts", {}).get("annotations", {}).get("total") or 0)
        build = total <= MEMORY_INDEX_MAX_ROWS if text_index is None else text_index
        how = textsearch.install(con, files.text_index, build=build)
        if how == "none":
            notes["text_search"] = (
                f"no text index for the {total} text rows of release {rel.name!r}: build it "
                "once with `lake sql --allow-write --build-text-index` (or connect with "
                "text_index=True to build one in memory)"
            )
        if not allow_write:
            scratch = os.path.join(tempfile.gettempdir(), f"lake-sql-{uuid.uuid4().hex[:12]}")
            lock_down(con, files.all_paths(), scratch)
    except BaseException:
        con.close()
        raise
    return LakeConnection(
        con,
        lake=spec.url,
        release=rel.name,
        notes=notes,
        read_only=not allow_write,
        timeout=seconds,
    )


def _session_config(memory_limit: str | None) -> dict[str, Any]:
    """DuckDB settings of a session's connection (checking the memory limit first).

    Raises:
        ConfigError: DuckDB cannot read the memory limit.
    """
    import duckdb

    config: dict[str, Any] = {"allow_persistent_secrets": False}
    if memory_limit is not None:
        try:
            duckdb.connect(config={"memory_limit": memory_limit}).close()
        except duckdb.Error as exc:
            raise ConfigError(
                f"memory_limit={memory_limit!r}: {exc}; give a size such as '8GB' or '16GiB'"
            ) from None
        config["memory_limit"] = memory_limit
    return config


def build_text_index(
    url_or_spec: str | os.PathLike[str] | StoreSpec | None = None,
    *,
    release: str | None = None,
    **s3: Any,
) -> dict[str, int]:
    """Build a release's text index and write it next to its tables (a write to the lake).

    ``lake.connect`` then reads it instead of building it in memory for every session.

    Returns:
        Rows per index table.
    """
    from lake.duck import duckdb_url
    from lake.storage import filesystem

    spec = _spec_of(url_or_spec, **s3)
    with connect(spec, release=release, allow_write=True, text_index=False) as con:
        textsearch.build_in_memory(con)
        targets = {t: textsearch.index_path(con.release, t) for t in textsearch.INDEX_TABLES}
        fs = filesystem(spec)
        fs.makedirs(spec.path(targets["docs"]).rsplit("/", 1)[0], exist_ok=True)
        return textsearch.write_index(con, {t: duckdb_url(spec, p) for t, p in targets.items()})
