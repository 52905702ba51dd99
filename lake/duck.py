"""The one module that opens DuckDB connections to a lake, and names its objects for DuckDB.

DuckDB reaches the lake's storage by itself (local files; ``s3://`` through its ``httpfs``
extension, with an in-memory secret built from the :class:`~lake.config.StoreSpec`), so its
connections are built here rather than in :mod:`lake.storage`, which builds the Python-side
clients (fsspec, zarr). Everything that queries a lake with DuckDB (the SQL session of
:mod:`lake.sql`, the STAC search of :mod:`catalog.search`) opens its connection with
:func:`duckdb_connect` and names objects with :func:`duckdb_url`. Extensions come from the
``duckdb-extension-*`` wheels; nothing is downloaded at run time.
"""

from __future__ import annotations

import os
from typing import Any

from lake.config import StoreSpec
from lake.storage import filesystem


def duckdb_url(spec: StoreSpec, rel: str) -> str:
    """The path or URL a DuckDB connection of :func:`duckdb_connect` opens an object by.

    Args:
        spec: The lake.
        rel: The object's path relative to the lake root.

    Returns:
        A local path, ``s3://bucket/key``, or ``memory://...`` (the connection of a
        ``memory://`` lake has the process's memory filesystem registered).
    """
    path = spec.path(rel)
    if spec.protocol == "file":
        return path
    return f"{spec.protocol}://{path}"


#: DuckDB extensions the lake uses, installed from their PyPI wheels (no download at run time).
DUCKDB_EXTENSIONS = ("parquet", "httpfs", "spatial", "icu")


def duckdb_extension_directory() -> str:
    """The project-local folder DuckDB loads its extensions from (inside this environment)."""
    import sys

    return os.path.join(sys.prefix, "var", "bigearthnet-lake", "duckdb-extensions")


def _extension_file(name: str) -> str:
    import importlib

    import duckdb

    module = importlib.import_module(f"duckdb_extension_{name}")
    base = os.path.join(
        os.path.dirname(module.__file__ or ""), "extensions", f"v{duckdb.__version__}"
    )
    return os.path.join(base, f"{name}.duckdb_extension")


def duckdb_connect(
    spec: StoreSpec | None = None,
    *,
    extensions: tuple[str, ...] = ("httpfs", "spatial"),
    config: dict[str, Any] | None = None,
) -> Any:
    """A DuckDB connection with the lake's extensions loaded and the lake made reachable.

    For an S3 lake its secret is set; for a ``memory://`` lake the process's memory filesystem
    is registered; local folders need nothing. Open objects by :func:`duckdb_url`.

    Extensions come from the ``duckdb-extension-*`` wheels, installed once into
    :func:`duckdb_extension_directory`; nothing is downloaded. The S3 secret is built from the
    spec (never printed or logged); the credential settings httpfs copies from ``AWS_*`` are
    emptied first, so the secret is the only place DuckDB holds them.

    Args:
        spec: The lake (None: no lake, e.g. for queries over literal data).
        extensions: Extensions to load (``parquet`` is built in on most platforms).
        config: More DuckDB settings for ``duckdb.connect`` (settings such as
            ``allow_persistent_secrets`` must be set before the secret is created).

    Returns:
        A ``duckdb.DuckDBPyConnection``.
    """
    import duckdb

    directory = duckdb_extension_directory()
    os.makedirs(directory, exist_ok=True)
    con = duckdb.connect(
        config={
            "extension_directory": directory,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            **(config or {}),
        }
    )
    for name in extensions:
        try:
            con.load_extension(name)
        except duckdb.Error:
            con.install_extension(_extension_file(name))
            con.load_extension(name)
    _clear_credential_settings(con)
    if spec is not None and spec.protocol == "s3":
        con.execute(duckdb_secret_sql(spec))
    elif spec is not None and spec.protocol == "memory":
        con.register_filesystem(filesystem(spec))
    return con


#: What a DuckDB setting that holds a credential is called (httpfs fills ``s3_access_key_id``,
#: ``s3_secret_access_key`` and ``s3_session_token`` from ``AWS_*`` when it loads).
_CREDENTIAL_SETTING = r"^(s3|gcs|r2|http)_.*(secret|token|password|key_id)"


def _clear_credential_settings(con: Any) -> None:
    """Empty every credential setting, for every cursor of the connection's database.

    httpfs copies ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``
    into its ``s3_*`` settings when it loads, where ``current_setting()`` and
    ``duckdb_settings()`` show them in plain text. The lake's credentials reach DuckDB as an
    in-memory secret only (:func:`duckdb_secret_sql`), which does not need them. ``SET GLOBAL``:
    a plain ``SET`` changes this cursor only, and ``con.cursor()`` would see the values again.
    """
    rows = con.execute(
        "SELECT name FROM duckdb_settings() WHERE regexp_matches(name, ?) "
        "AND input_type = 'VARCHAR' AND name NOT LIKE '%kms%'",
        [_CREDENTIAL_SETTING],
    ).fetchall()
    for (name,) in rows:
        con.execute(f"SET GLOBAL {name} = ''")


def install_duckdb_extensions(names: tuple[str, ...] = DUCKDB_EXTENSIONS) -> str:
    """Install extensions from their wheels into :func:`duckdb_extension_directory` (idempotent).

    Other DuckDB users of the lake (rustac's ``DuckdbClient(extension_directory=...,
    install_extensions=False)``) then find all four there without downloading anything.

    Returns:
        The extension directory.
    """
    import duckdb

    directory = duckdb_extension_directory()
    os.makedirs(directory, exist_ok=True)
    con = duckdb.connect(
        config={"extension_directory": directory, "autoinstall_known_extensions": False}
    )
    try:
        platform = con.execute("PRAGMA platform").fetchone()[0]  # type: ignore[index]
        for name in names:
            installed = os.path.join(
                directory, f"v{duckdb.__version__}", platform, f"{name}.duckdb_extension"
            )
            if not os.path.exists(installed):
                con.install_extension(_extension_file(name))
    finally:
        con.close()
    return directory


def duckdb_secret_sql(spec: StoreSpec, name: str = "lake_s3") -> str:
    """The ``CREATE SECRET`` statement of an S3 spec (values quoted; keep it out of logs)."""
    from urllib.parse import urlparse

    def q(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    parts = ["TYPE s3", f"SCOPE {q('s3://' + spec.root.split('/', 1)[0])}"]
    if spec.with_credentials():
        parts += [f"KEY_ID {q(spec.key or '')}", f"SECRET {q(spec.secret or '')}"]
    else:
        parts.append("PROVIDER credential_chain")
    parts.append(f"REGION {q(spec.region or 'us-east-1')}")
    if spec.endpoint_url:
        url = urlparse(spec.endpoint_url)
        parts += [
            f"ENDPOINT {q(url.netloc)}",
            "URL_STYLE 'path'",
            f"USE_SSL {'true' if url.scheme == 'https' else 'false'}",
        ]
    return f"CREATE OR REPLACE SECRET {name} ({', '.join(parts)})"
