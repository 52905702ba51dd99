"""Ranked full-text search over a release's captions and questions, in plain DuckDB SQL.

DuckDB's ``fts`` extension is not part of this environment (the extension wheels installed are
httpfs, spatial, icu and parquet; nothing is downloaded at run time), so the index is built with
ordinary SQL and kept as five small tables in the schema ``text_index``:

* ``docs(doc, doc_kind, text, length)``: each distinct caption (``doc_kind = 'caption'``, the
  ``output`` of ``captioning`` rows) and each distinct question or expression (``'question'``,
  the ``input`` of the other rows); ``length`` is its number of tokens;
* ``terms(term, term_id, df_caption, df_question)``: the vocabulary and document frequencies;
* ``postings(term_id, doc, tf, length, doc_kind)``: one row per term and document, sorted by
  ``term_id`` (a lookup reads only the row groups of its terms);
* ``rows(doc, ID, patch_id, split, type, category)``: the annotation rows of each document;
* ``stats(doc_kind, n, avgdl)``: collection sizes for BM25 (``'all'``, ``'caption'``,
  ``'question'``).

Tokens: lower case, split on anything but letters and digits, one-letter tokens and a short list
of English stop words dropped, a final plural ``s`` removed (``forests`` -> ``forest``; not after
``s``: ``grass`` stays). The query gets the same treatment (macro ``lake_tokens``).

Ranking: Okapi BM25 (``k1 = 1.2``, ``b = 0.75``) over the distinct texts, restricted to one kind
when asked; rows with the same text share its score; ties are broken by ``ID``.

The index is built per release: :func:`build_text_index` writes it next to the release's tables
(``tables/<release>/text_index/*.parquet``) and :func:`install` reads it from there; when it is
absent, :func:`install` builds it in the session's memory from the ``annotations`` view.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

#: The index's tables, in build order.
INDEX_TABLES = ("docs", "rows", "terms", "postings", "stats")
#: Words left out of the index and of queries.
STOP_WORDS: tuple[str, ...] = (
    "a",
    "an",
    "the",
    "of",
    "in",
    "on",
    "at",
    "and",
    "or",
    "is",
    "are",
    "be",
    "been",
    "there",
    "this",
    "that",
    "these",
    "those",
    "with",
    "by",
    "to",
    "for",
    "from",
    "as",
    "it",
    "its",
    "any",
    "some",
    "into",
    "than",
    "then",
    "what",
    "which",
    "who",
    "how",
    "does",
    "do",
    "not",
    "no",
    "yes",
)


def index_path(release: str, table: str) -> str:
    """Where a persisted index table lives, relative to the lake root."""
    return f"tables/{release}/text_index/{table}.parquet"


def _stop_list() -> str:
    return "[" + ", ".join(f"'{w}'" for w in STOP_WORDS) + "]"


TOKENS_MACRO = f"""
CREATE OR REPLACE MACRO lake_tokens(s) AS list_transform(
    list_filter(
        regexp_split_to_array(lower(coalesce(s, '')), '[^\\p{{L}}\\p{{N}}]+'),
        t -> length(t) > 1 AND NOT list_contains({_stop_list()}, t)),
    t -> CASE WHEN length(t) > 3 AND right(t, 1) = 's' AND right(t, 2) <> 'ss'
              THEN left(t, length(t) - 1) ELSE t END)
"""

_KIND = "CASE WHEN type = 'captioning' THEN 'caption' ELSE 'question' END"
_TEXT = "CASE WHEN type = 'captioning' THEN output ELSE input END"

BUILD_STATEMENTS: Mapping[str, str] = {
    "docs": f"""
        SELECT (row_number() OVER (ORDER BY doc_kind, text) - 1)::INTEGER AS doc,
               doc_kind, text, len(lake_tokens(text))::INTEGER AS length
        FROM (SELECT DISTINCT {_KIND} AS doc_kind, {_TEXT} AS text FROM annotations)""",
    "rows": f"""
        SELECT d.doc, a."ID", a.patch_id, a.split, a.type, a.category
        FROM (SELECT "ID", patch_id, split, type, category,
                     {_KIND} AS doc_kind, {_TEXT} AS text FROM annotations) a
        JOIN text_index.docs d USING (doc_kind, text)
        ORDER BY d.doc, a."ID\"""",
    "terms": """
        SELECT term, (row_number() OVER (ORDER BY term) - 1)::INTEGER AS term_id,
               (count(DISTINCT doc) FILTER (WHERE doc_kind = 'caption'))::INTEGER AS df_caption,
               (count(DISTINCT doc) FILTER (WHERE doc_kind = 'question'))::INTEGER
                   AS df_question
        FROM _tokens GROUP BY term""",
    "postings": """
        SELECT t.term_id, k.doc, count(*)::SMALLINT AS tf,
               any_value(k.length)::SMALLINT AS length, any_value(k.doc_kind) AS doc_kind
        FROM _tokens k JOIN text_index.terms t USING (term)
        GROUP BY t.term_id, k.doc ORDER BY t.term_id, k.doc""",
    "stats": """
        SELECT doc_kind, count(*)::BIGINT AS n, coalesce(avg(length), 0)::DOUBLE AS avgdl
        FROM text_index.docs GROUP BY doc_kind
        UNION ALL
        SELECT 'all', count(*)::BIGINT, coalesce(avg(length), 0)::DOUBLE FROM text_index.docs""",
}

SEARCH_MACRO = """
CREATE OR REPLACE MACRO text_search(q, kind := NULL, k1 := 1.2, b := 0.75) AS TABLE
WITH qterms AS (SELECT DISTINCT unnest(lake_tokens(q)) AS term),
qt AS (
    SELECT t.term_id,
           CASE WHEN kind = 'caption' THEN t.df_caption
                WHEN kind = 'question' THEN t.df_question
                ELSE t.df_caption + t.df_question END AS df
    FROM text_index.terms t WHERE t.term IN (SELECT term FROM qterms)),
st AS (SELECT n, avgdl FROM text_index.stats WHERE doc_kind = coalesce(kind, 'all')),
hits AS (
    SELECT p.doc, any_value(p.doc_kind) AS doc_kind,
           sum(ln(1 + (st.n - qt.df + 0.5) / (qt.df + 0.5))
               * p.tf * (k1 + 1) / (p.tf + k1 * (1 - b + b * p.length / st.avgdl))) AS score,
           count(*)::INTEGER AS matched_terms
    FROM text_index.postings p JOIN qt USING (term_id) CROSS JOIN st
    WHERE kind IS NULL OR p.doc_kind = kind
    GROUP BY p.doc)
SELECT r."ID", r.patch_id, r.split, r.type, r.category, h.doc_kind AS kind, d.text,
       h.score, h.matched_terms
FROM hits h JOIN text_index.rows r USING (doc) JOIN text_index.docs d USING (doc)
ORDER BY h.score DESC, r."ID"
"""

#: How ``text_search`` is documented (``lake sql --schema``, ``docs/sql.md``).
SEARCH_DOC = (
    "text_search(q, kind := NULL, k1 := 1.2, b := 0.75): a table macro ranking the captions "
    "and questions of the release that share words with `q` (BM25). `kind` is 'caption', "
    "'question' or NULL (both). Columns: ID, patch_id, split, type, category, kind, text, "
    "score, matched_terms; best first (ties by ID)."
)


def build_in_memory(con: Any) -> float:
    """Build the index tables from the ``annotations`` view in the session; returns seconds."""
    t0 = time.perf_counter()
    con.execute("CREATE SCHEMA IF NOT EXISTS text_index")
    con.execute(TOKENS_MACRO)
    for table in INDEX_TABLES:
        if table == "terms":
            con.execute(
                """CREATE OR REPLACE TEMP TABLE _tokens AS
                   SELECT doc, doc_kind, length, unnest(lake_tokens(text)) AS term
                   FROM text_index.docs"""
            )
        con.execute(f"CREATE OR REPLACE TABLE text_index.{table} AS {BUILD_STATEMENTS[table]}")
    con.execute("DROP TABLE IF EXISTS _tokens")
    return time.perf_counter() - t0


def attach_persisted(con: Any, files: Mapping[str, str]) -> None:
    """Views of the ``text_index`` schema over the persisted index files."""
    con.execute("CREATE SCHEMA IF NOT EXISTS text_index")
    con.execute(TOKENS_MACRO)
    for table in INDEX_TABLES:
        path = files[table].replace("'", "''")
        con.execute(f"CREATE OR REPLACE VIEW text_index.{table} AS FROM read_parquet('{path}')")


def install(con: Any, files: Mapping[str, str] | None, *, build: bool = True) -> str:
    """Make ``text_search`` available: from the persisted index, else built in memory.

    Args:
        con: The session (its ``annotations`` view exists).
        files: The persisted index's files (``INDEX_TABLES`` keys), or None.
        build: Build the index in memory when it is not persisted (False: no ``text_search``).

    Returns:
        ``"persisted"``, ``"memory"`` or ``"none"``.
    """
    if files and all(t in files for t in INDEX_TABLES):
        attach_persisted(con, files)
        how = "persisted"
    elif build:
        seconds = build_in_memory(con)
        log.info("text index built in memory in %.1f s (no persisted index)", seconds)
        how = "memory"
    else:
        return "none"
    con.execute(SEARCH_MACRO)
    return how


def write_index(con: Any, targets: Mapping[str, str]) -> dict[str, int]:
    """Write the session's index tables to Parquet (``COPY``; the session must allow writes).

    Args:
        con: A writable session whose index is built in memory.
        targets: ``table -> file path or URL``.

    Returns:
        Rows per table.
    """
    counts = {}
    for table in INDEX_TABLES:
        target = targets[table].replace("'", "''")
        con.execute(
            f"COPY text_index.{table} TO '{target}' "
            "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)"
        )
        counts[table] = int(con.execute(f"SELECT count(*) FROM text_index.{table}").fetchone()[0])
    return counts
