"""``lake sql``: run SQL over a release's views, print or write the result, or open a prompt.

Exit status: 0 success; 1 an error (DuckDB's message, or the lake's: bad URL, missing release,
unreachable endpoint, a refused write or function, a statement past --timeout or
--memory-limit); 2 bad usage. At the prompt, the status is 1 when any statement failed.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterable
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional, TextIO

import typer

from lake.config import StoreSpec, as_spec
from lake.errors import LakeError, ReadOnlyError

if TYPE_CHECKING:
    from lake.sql import LakeConnection

FORMATS = ("table", "csv", "json", "parquet")
PROMPT = "lake> "
MORE = "  ...> "
CELL = 48
_READ_ONLY_HINT = (
    " (a read-only session reads only the release's own files and writes nothing; "
    "--allow-write lifts this)"
)


class _Fail(Exception):
    """A failure already worded for the user."""


def _spec(
    lake: str | None, endpoint: str | None, key: str | None, secret: str | None, region: str | None
) -> StoreSpec:
    return as_spec(lake, endpoint_url=endpoint, key=key, secret=secret, region=region)


def _message(exc: BaseException) -> str:
    """One line for an error: DuckDB's message as it is, the lake's as it is."""
    import duckdb

    text = str(exc).strip()
    if isinstance(exc, duckdb.PermissionException) or "disabled by configuration" in text:
        text += _READ_ONLY_HINT
    if "configuration has been locked" in text:
        text += (
            " (a read-only session changes no setting; --memory-limit and --timeout set its "
            "limits, --allow-write lifts the guard)"
        )
    if isinstance(exc, duckdb.OutOfMemoryException):
        text = text.split("\n")[0] + " (--memory-limit raises the session's limit)"
    return text


def _errors() -> tuple[type[BaseException], ...]:
    """What a query or a session may raise that the user should see as one line."""
    import duckdb

    return (LakeError, duckdb.Error, OSError, _Fail)


# ---------------------------------------------------------------------------------------------
# Rendering


def _cell(value: Any) -> str:
    text = "NULL" if value is None else str(value).replace("\n", "\\n")
    return text if len(text) <= CELL else text[: CELL - 1] + "…"


def _as_text(rel: Any, limit: int | None) -> tuple[list[str], list[tuple[Any, ...]], bool]:
    """Column names, rows as DuckDB renders them (VARCHAR casts), and whether rows were cut."""
    columns = list(rel.columns)
    try:
        text_rel = rel.project("COLUMNS(*)::VARCHAR")
    except Exception:  # EXPLAIN and other statements that cannot be re-projected
        text_rel = rel
    rows = text_rel.fetchall() if limit is None else text_rel.fetchmany(limit + 1)
    cut = limit is not None and len(rows) > limit
    return columns, rows[:limit] if cut else rows, cut


def render_table(rel: Any, max_rows: int) -> str:
    """An aligned text table of at most ``max_rows`` rows, with a row count footer."""
    columns, rows, cut = _as_text(rel, max_rows)
    if len(columns) == 2 and columns[0] == "explain_key":  # EXPLAIN: print the plan itself
        return "\n".join(str(r[1]) for r in rows)
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    more = f"first {len(rows)} rows shown; --max-rows N or --format csv for more" if cut else ""
    out.append(f"({more or f'{len(rows)} row' + ('s' if len(rows) != 1 else '')})")
    return "\n".join(out)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return str(value)


def write_result(rel: Any, fmt: str, out: Path | None, max_rows: int, stdout: TextIO) -> int:
    """Print or write a result; returns the number of rows written (or shown)."""
    if fmt == "table":
        text = render_table(rel, max_rows)
        _emit(text + "\n", out, stdout)
        return text.count("\n") - 2
    if fmt == "parquet":
        import pyarrow.parquet as pq

        if out is None:
            raise _Fail("--format parquet needs --out FILE")
        table = rel.to_arrow_table()
        pq.write_table(table, out, compression="zstd")
        return int(table.num_rows)
    if fmt == "csv":
        import csv
        import io

        columns, rows, _ = _as_text(rel, None)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
        _emit(buffer.getvalue(), out, stdout)
        return len(rows)
    columns = list(rel.columns)
    records = [dict(zip(columns, row, strict=True)) for row in rel.fetchall()]
    _emit(json.dumps(records, default=_json_value, indent=1) + "\n", out, stdout)
    return len(records)


def _emit(text: str, out: Path | None, stdout: TextIO) -> None:
    if out is None:
        stdout.write(text)
        stdout.flush()
    else:
        out.write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Running


def run_query(con: LakeConnection, query: str, fmt: str, out: Path | None, max_rows: int) -> None:
    """Run one query string (one or more statements) and print or write its result."""
    rel = con.sql(query)
    if rel is None:
        if fmt == "table" and out is None:
            typer.echo("OK")
        return
    write_result(rel, fmt, out, max_rows, sys.stdout)


def banner(con: LakeConnection) -> str:
    """What the prompt prints first: the release, the views and how to leave."""
    from lake.sql import VIEWS

    mode = "read-only" if con.read_only else "READ-WRITE"
    lines = [f"lake sql: release {con.release} of {con.lake} ({mode})"]
    views = ", ".join(f"{v} (missing)" if v in con.notes else v for v in VIEWS)
    lines.append(f"views: {views}")
    for name, note in con.notes.items():
        lines.append(f"  {name}: {note}")
    if "text_search" not in con.notes:
        lines.append("macro: text_search(q, kind := NULL)  -- ranked search of captions/questions")
    lines.append("end a statement with ';'   .schema [VIEW]  .views  .help  .quit")
    return "\n".join(lines)


def _dot_command(con: LakeConnection, line: str, out: TextIO) -> bool:
    """Run a dot command; returns False to leave the prompt."""
    from lake.sql import VIEWS, schema_text

    word, _, arg = line.strip().partition(" ")
    if word in (".quit", ".exit", ".q"):
        return False
    if word == ".views":
        out.write(", ".join(VIEWS) + "\n")
    elif word == ".schema":
        text = schema_text(con)
        if arg.strip():
            blocks = [b for b in text.split("\n\n") if b.startswith(arg.strip() + ":")]
            text = (blocks[0] + "\n") if blocks else f"no view named {arg.strip()!r}\n"
        out.write(text)
    else:
        out.write(
            ".schema [VIEW]  columns of the views\n.views          the view names\n"
            ".quit           leave (also .exit, Ctrl-D)\n"
        )
    return True


def _statements(lines: Iterable[str], out: TextIO) -> Iterable[str]:
    """Complete statements (ending with ';') and dot commands from an iterable of lines."""
    buffer: list[str] = []
    for line in lines:
        if not buffer and line.strip().startswith("."):
            yield line.strip()
            continue
        if not buffer and not line.strip():
            continue
        buffer.append(line)
        if line.rstrip().endswith(";"):
            yield "\n".join(buffer)
            buffer = []
    if buffer and "".join(buffer).strip():
        yield "\n".join(buffer)


def _input_lines(out: TextIO) -> Iterable[str]:
    """Lines typed at the prompt (with readline history when available) until EOF."""
    with contextlib.suppress(ImportError):  # line editing and history for input()
        import readline  # noqa: F401
    prompt = PROMPT
    while True:
        try:
            line = input(prompt)
        except EOFError:
            out.write("\n")
            return
        except KeyboardInterrupt:
            out.write("\n")
            prompt = PROMPT
            continue
        prompt = MORE if line.strip() and not line.strip().startswith(".") else PROMPT
        if line.rstrip().endswith(";"):
            prompt = PROMPT
        yield line


def interactive(con: LakeConnection, fmt: str, max_rows: int) -> int:
    """The prompt: statements run one by one; errors are printed and the prompt goes on.

    Returns:
        The exit status: 0, or 1 when any statement failed.
    """
    out = sys.stdout
    out.write(banner(con) + "\n")
    failed = 0
    for statement in _statements(_input_lines(out), out):
        if statement.startswith("."):
            if not _dot_command(con, statement, out):
                break
            continue
        try:
            run_query(con, statement, "table" if fmt == "parquet" else fmt, None, max_rows)
        except _errors() as exc:
            failed += 1
            typer.echo(f"error: {_message(exc)}", err=True)
    return 1 if failed else 0


def _inside_lake(spec: StoreSpec, out: Path | None) -> bool:
    if out is None or spec.protocol != "file":
        return False
    root = Path(spec.root).resolve()
    target = out.expanduser().resolve()
    return target == root or root in target.parents


def sql(
    query: Annotated[
        Optional[str],  # noqa: UP045 (typer needs Optional on 3.11)
        typer.Argument(
            help="SQL to run (several statements: the last one's result is shown). "
            "None: an interactive prompt."
        ),
    ] = None,
    lake: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--lake", help="Lake URL: a folder or s3://bucket/prefix (env LAKE_URL)"),
    ] = None,
    release: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--release", help="Release to query (default: the current one)."),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="table | csv | json | parquet (parquet needs --out)")
    ] = "table",
    out: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option("--out", help="Write the result to FILE instead of printing it."),
    ] = None,
    schema: Annotated[
        bool, typer.Option("--schema", help="Print every view's columns, types and meaning.")
    ] = False,
    max_rows: Annotated[
        int, typer.Option("--max-rows", min=1, help="Rows a table shows at most.")
    ] = 40,
    allow_write: Annotated[
        bool,
        typer.Option(
            "--allow-write",
            help="Lift the read-only guard (COPY, ATTACH, files outside the lake).",
        ),
    ] = False,
    build_text_index: Annotated[
        bool,
        typer.Option(
            "--build-text-index",
            help="Write the release's text index into the lake (needs --allow-write).",
        ),
    ] = False,
    memory_limit: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--memory-limit",
            help="DuckDB memory limit, e.g. 8GB (default: 4GiB or half the RAM, if less, "
            "when read-only; DuckDB's 80% of RAM with --allow-write).",
        ),
    ] = None,
    timeout: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            "--timeout",
            min=0,
            help="Seconds a statement may run before it is interrupted; 0: no limit "
            "(default: 300 when read-only, none with --allow-write).",
        ),
    ] = None,
    endpoint_url: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--endpoint-url", help="S3 endpoint URL (env AWS_ENDPOINT_URL)"),
    ] = None,
    key: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--key", help="S3 access key id (env AWS_ACCESS_KEY_ID)"),
    ] = None,
    secret: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--secret", help="S3 secret key (env AWS_SECRET_ACCESS_KEY)"),
    ] = None,
    region: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--region", help="S3 region (env AWS_REGION)"),
    ] = None,
) -> None:
    """Query a release with SQL (DuckDB); read-only unless --allow-write.

    Views: patches, annotations, captions, vqa, refexp, labels, items, and the table macro
    text_search(q, kind := NULL); --schema lists their columns.

    lake sql --lake s3://bucket/lake "SELECT type, count(*) FROM annotations GROUP BY ALL"

    lake sql --format csv --out bench.csv "SELECT * FROM vqa WHERE split = 'bench'"

    With no QUERY: an interactive prompt (statements end with ';'; .schema, .views, .quit).
    """
    if fmt not in FORMATS:
        typer.echo(f"error: --format {fmt!r} is not one of {', '.join(FORMATS)}", err=True)
        raise typer.Exit(2)
    try:
        spec = _spec(lake, endpoint_url, key, secret, region)
        if build_text_index:
            _build_index(spec, release, allow_write)
            return
        if _inside_lake(spec, out) and not allow_write:
            raise ReadOnlyError(
                f"--out {out} is inside the lake, which is read-only here; "
                "write elsewhere or pass --allow-write"
            )
        from lake.sql import connect

        status = 0
        with connect(
            spec,
            release=release,
            allow_write=allow_write,
            memory_limit=memory_limit,
            timeout=timeout,
        ) as con:
            if schema:
                _print_schema(con, fmt, out)
            elif query is None:
                status = interactive(con, fmt, max_rows)
            else:
                run_query(con, query, fmt, out, max_rows)
    except _errors() as exc:
        typer.echo(f"error: {_message(exc)}", err=True)
        raise typer.Exit(1) from None
    if status:
        raise typer.Exit(status)


def _print_schema(con: LakeConnection, fmt: str, out: Path | None) -> None:
    from lake.sql import schema_text, schemas

    if fmt == "json":
        _emit(json.dumps(schemas(con), indent=1) + "\n", out, sys.stdout)
    else:
        _emit(schema_text(con), out, sys.stdout)


def _build_index(spec: StoreSpec, release: str | None, allow_write: bool) -> None:
    from lake.sql import build_text_index

    if not allow_write:
        raise ReadOnlyError("--build-text-index writes into the lake: pass --allow-write as well")
    counts = build_text_index(spec, release=release)
    typer.echo("text index written: " + ", ".join(f"{t} {n}" for t, n in counts.items()) + " rows")
