"""The escape corpus (``tests/lake/sql/corpus.py``) against a read-only session, in a child.

Every attempt is refused or harmless as the corpus says; the child stays alive to the end
(``close()`` included: no abort, no exit 134); no canary file outside the lake is read or
written, nothing is written anywhere, and neither the canary text nor the ``AWS_*`` credentials
of the child's environment appear in any answer or error.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import duckdb

from tests.lake.sql.corpus import CORPUS, KINDS
from tests.lake.sql.helpers import RELEASE, Built

REPO = Path(__file__).resolve().parents[3]


def snapshot(root: Path) -> dict[str, str]:
    """Every file below a folder with its checksum."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def make_canaries(folder: Path, token: str) -> None:
    """Files outside the lake that an escape would read: each holds ``token``."""
    folder.mkdir()
    (folder / "canary.csv").write_text(f"a,b\n{token},2\n")
    (folder / "canary.txt").write_text(token + "\n")
    (folder / "canary.json").write_text(json.dumps({"a": token}) + "\n")
    (folder / "schema.sql").write_text(f"CREATE TABLE leaked AS SELECT '{token}' AS a;\n")
    (folder / "load.sql").write_text("")
    (folder / "canary.duckdb_extension").write_bytes(token.encode())
    con = duckdb.connect(str(folder / "canary.duckdb"))
    con.execute(f"CREATE TABLE t AS SELECT '{token}' AS a")
    con.execute(f"COPY t TO '{folder}/canary.parquet' (FORMAT parquet)")
    con.close()


def run_corpus(built: Built, tmp_path: Path) -> dict[str, Any]:
    """Run the corpus in a child process; its records, status and what it touched."""
    token = f"CANARY-{uuid.uuid4().hex}"
    secrets = {
        "AWS_ACCESS_KEY_ID": f"AKIDCANARY{uuid.uuid4().hex[:10].upper()}",
        "AWS_SECRET_ACCESS_KEY": f"secret-canary-{uuid.uuid4().hex}",
        "AWS_SESSION_TOKEN": f"token-canary-{uuid.uuid4().hex}",
    }
    canary, out, cwd = tmp_path / "canary", tmp_path / "out", tmp_path / "cwd"
    make_canaries(canary, token)
    out.mkdir()
    cwd.mkdir()
    lake_file = built.root / "tables" / RELEASE / "patches" / "part-0.parquet"
    before = {"canary": snapshot(canary), "lake": snapshot(built.root)}
    env = {**os.environ, **secrets, "PYTHONPATH": str(REPO), "LAKE_URL": ""}
    args = [str(built.root), str(canary), str(out), str(lake_file)]
    child = subprocess.run(
        [sys.executable, "-m", "tests.lake.sql.corpus", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [json.loads(line) for line in child.stdout.splitlines() if line.strip()]
    return {
        "child": child,
        "records": [r for r in lines if "i" in r],
        "started": [r["start"] for r in lines if "start" in r],
        "done": [r for r in lines if r.get("done")],
        "forbidden": [token, *secrets.values()],
        "touched": {
            "canary": snapshot(canary) != before["canary"],
            "lake": snapshot(built.root) != before["lake"],
            "out": sorted(p.name for p in out.iterdir()),
            "cwd": sorted(p.name for p in cwd.iterdir()),
        },
    }


def test_the_escape_corpus_is_refused_or_harmless(built: Built, tmp_path: Path) -> None:
    assert len(CORPUS) >= 100
    per_kind = collections.Counter(a.kind for a in CORPUS)
    assert set(per_kind) == set(KINDS) and min(per_kind.values()) >= 10, per_kind

    run = run_corpus(built, tmp_path)
    child = run["child"]
    last = CORPUS[run["started"][-1]].sql if run["started"] else None
    assert child.returncode == 0, (child.returncode, last, child.stderr[-3000:])
    assert run["done"] == [{"done": True, "alive": "(40,)"}], child.stdout[-2000:]
    assert [r["i"] for r in run["records"]] == list(range(len(CORPUS)))

    wrong = [
        (CORPUS[r["i"]].sql, r["outcome"], r.get("error") or r.get("output"))
        for r in run["records"]
        if (r["outcome"] == "refused") != (CORPUS[r["i"]].expect == "refused")
    ]
    assert not wrong, wrong
    texts = [child.stdout, child.stderr]
    leaked = [secret for secret in run["forbidden"] if any(secret in t for t in texts)]
    assert not leaked
    assert run["touched"] == {"canary": False, "lake": False, "out": [], "cwd": []}

    refused = sum(r["outcome"] == "refused" for r in run["records"])
    print(f"\nescape corpus: {len(CORPUS)} tried, {refused} refused, "
          f"{len(CORPUS) - refused} harmless, per class {dict(per_kind)}")  # fmt: skip
