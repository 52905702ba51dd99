"""Releases: the manifest of every object, the root document, and the atomic publish.

A release is immutable. Ingest writes every object under the release's own names, then the
manifest, then swaps ``lake.json`` last, under a lock object so that two writers never both win.
Readers pin a release through ``lake.json``; objects not listed there are invisible.
:func:`resolve_release` is the one place that turns a release name (or None: the current one)
into a published release; the documents' shapes are in :mod:`lake.documents`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lake.config import StoreSpec
from lake.documents import Amendment, Manifest, ObjectRecord, ReplacedObject, RootDocument
from lake.errors import LayoutError, PublishConflict, ReleaseNotFound
from lake.layout import (
    LAYOUT_VERSION,
    READABLE_LAYOUT_VERSIONS,
    ROOT_DOCUMENT,
    ROOT_LOCK,
    manifest_path,
    release_prefixes,
)
from lake.lock import STALE_SECONDS, ObjectLock
from lake.storage import TEMP_PREFIX, filesystem, read_json, sha256_bytes, write_json_atomic

#: A lock older than this is left over from a crashed writer and may be broken.
STALE_LOCK_SECONDS = STALE_SECONDS


@dataclass(frozen=True)
class ObjectEntry:
    """One object of a release.

    Attributes:
        path: Path relative to the lake root.
        size: Bytes.
        sha256: Hex SHA-256 of its content.
    """

    path: str
    size: int
    sha256: str

    def record(self) -> ObjectRecord:
        """The entry as the manifest lists it."""
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


def hash_objects(spec: StoreSpec, paths: Iterable[str]) -> list[ObjectEntry]:
    """Read objects (paths relative to the lake) and return their sizes and checksums."""
    fs = filesystem(spec)
    out = []
    for rel in paths:
        data = fs.cat_file(spec.path(rel))
        out.append(ObjectEntry(rel, len(data), sha256_bytes(data)))
    return out


def list_objects(spec: StoreSpec, prefix: str) -> list[str]:
    """Every object below ``prefix``, as paths relative to the lake root, sorted.

    The temporary files of atomic writes are not objects of the lake: ours (``.tmp-*``, see
    :func:`lake.storage.new_file`) and zarr's ``LocalStore`` (``<key>.<uuid hex>.partial``). A
    writer killed in the middle of one leaves its temporary behind, and a rerun must not list
    it in the release's manifest (``benchmarks/kill9.py`` found one there).
    """
    fs = filesystem(spec)
    base = spec.path(prefix)
    if not fs.exists(base):
        return []
    root = spec.path().rstrip("/") + "/"
    return sorted(p[len(root) :] for p in fs.find(base) if not is_temporary(p))


#: zarr's ``LocalStore`` writes ``<key>.<uuid4 hex>.partial`` and renames it into place.
_ZARR_PARTIAL = re.compile(r"\.[0-9a-f]{32}\.partial$")


def is_temporary(path: str) -> bool:
    """Whether ``path`` is the temporary file of an atomic write (ours or zarr's)."""
    name = path.rsplit("/", 1)[-1]
    return name.startswith(TEMP_PREFIX) or bool(_ZARR_PARTIAL.search(name))


def read_root(spec: StoreSpec) -> RootDocument:
    """The root document, or an empty lake's document when there is none yet.

    Raises:
        LayoutError: ``lake.json`` exists but is not a lake root of a known layout version.
    """
    fs = filesystem(spec)
    path = spec.path(ROOT_DOCUMENT)
    doc: RootDocument
    try:
        doc = read_json(fs, path)
    except FileNotFoundError:
        return {"layout_version": LAYOUT_VERSION, "releases": {}, "current": None}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LayoutError(f"{spec.url}/{ROOT_DOCUMENT} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("layout_version") not in READABLE_LAYOUT_VERSIONS:
        raise LayoutError(
            f"{spec.url}/{ROOT_DOCUMENT}: layout version {doc.get('layout_version')!r} "
            f"is not supported (this version reads layouts {sorted(READABLE_LAYOUT_VERSIONS)})"
        )
    return doc


def resolve_release(spec: StoreSpec, release: str | None = None) -> str:
    """The name of a published release: ``release`` itself, or the current one when None.

    The one release lookup of the project: readers (:class:`lake.reader.Lake`), SQL sessions,
    the catalog and the jobs all resolve ``release=`` here, so they accept and refuse the same
    names with the same message.

    Args:
        spec: The lake.
        release: A release name, or None for the lake's current release.

    Raises:
        ReleaseNotFound: ``release`` is not published in the lake (the message lists those that
            are), or it is None and nothing is published yet.
        LayoutError: ``lake.json`` is not a lake root of a known layout version.
    """
    doc = read_root(spec)
    if release is None:
        current = doc.get("current")
        if not current:
            raise ReleaseNotFound(f"the lake {spec.url} has no release yet: run `lake ingest`")
        return current
    if release not in doc["releases"]:
        known = ", ".join(doc["releases"]) or "none"
        raise ReleaseNotFound(
            f"release {release!r} is not in the lake {spec.url} (published releases: {known})"
        )
    return release


def read_manifest(spec: StoreSpec, release: str | None = None) -> Manifest:
    """The manifest of a published release (the current one when None).

    Raises:
        ReleaseNotFound: The release is not published in this lake (see :func:`resolve_release`).
    """
    name = resolve_release(spec, release)
    manifest: Manifest = read_json(filesystem(spec), spec.path(manifest_path(name)))
    return manifest


def build_manifest(
    spec: StoreSpec,
    release: str,
    entries: Mapping[str, ObjectEntry],
    *,
    counts: Mapping[str, Any],
    source: Mapping[str, Any],
    parameters: Mapping[str, Any],
) -> Manifest:
    """The manifest: every object under the release's prefixes, with size and checksum.

    Objects already hashed (``entries``, e.g. by the shard writers) are taken as they are;
    the others are read and hashed here.

    Raises:
        LayoutError: An object listed in ``entries`` is missing from the store.
    """
    present: list[str] = []
    for prefix in release_prefixes(release):
        present.extend(list_objects(spec, prefix))
    missing = sorted(set(entries) - set(present))
    if missing:
        raise LayoutError(f"release {release!r}: objects written but now missing: {missing[:5]}")
    todo = [p for p in present if p not in entries]
    hashed = {e.path: e for e in hash_objects(spec, todo)}
    objects = [entries.get(p) or hashed[p] for p in present]
    return {
        "layout_version": LAYOUT_VERSION,
        "release": release,
        "source": dict(source),
        "parameters": dict(parameters),
        "counts": dict(counts),
        "objects": [o.record() for o in objects],
        "total_bytes": sum(o.size for o in objects),
    }


class _RootLock(ObjectLock):
    """The lock object next to ``lake.json`` (the protocol is in :mod:`lake.lock`).

    Hold it with ``with _RootLock(spec):`` around every rewrite of ``lake.json`` or of a
    published manifest; entering waits up to two minutes (:meth:`acquire`).
    """

    def __init__(self, spec: StoreSpec) -> None:
        super().__init__(spec, ROOT_LOCK, what=f"it updates {ROOT_DOCUMENT}")

    def acquire(self, timeout: float = 120.0) -> None:
        """Wait up to ``timeout`` seconds for the lock (PublishConflict after that).

        Two minutes: on an endpoint without conditional writes each taking costs the settle
        time, and 32 writers at once on the embedded endpoint need about 30 s in all.
        """
        super().acquire(timeout)


def publish(
    spec: StoreSpec, release: str, manifest: Manifest, *, make_current: bool = True
) -> None:
    """Write the manifest, then swap ``lake.json`` to list the release (atomic, locked).

    Raises:
        PublishConflict: The release is already published with different content, or another
            writer holds the lock.
    """
    fs = filesystem(spec)
    with _RootLock(spec):
        root = read_root(spec)
        existing = root["releases"].get(release)
        if existing is not None:
            old: Manifest = read_json(fs, spec.path(manifest_path(release)))
            if old.get("objects") != manifest.get("objects"):
                raise PublishConflict(
                    f"release {release!r} is already published in {spec.url} with other content; "
                    "releases are immutable: choose another --release name"
                )
            return
        write_json_atomic(fs, spec.path(manifest_path(release)), manifest)
        root["releases"][release] = {
            "manifest": manifest_path(release),
            "published": datetime.now(UTC).isoformat(timespec="seconds"),
            "patches": manifest.get("counts", {}).get("patches"),
        }
        if make_current:
            root["current"] = release
        write_json_atomic(fs, spec.path(ROOT_DOCUMENT), root)


def amend(
    spec: StoreSpec,
    release: str,
    objects: Iterable[ObjectEntry],
    *,
    derived: str,
    details: Mapping[str, Any],
) -> Manifest:
    """Add a derived product's objects to a published release's manifest (atomic, locked).

    The release's data (patches, tables, items) never changes. A derived product (e.g. the
    band statistics, ADR 0006) adds new objects and may replace derived documents (the STAC
    collection, whose summaries carry the statistics); the manifest is rewritten with every
    object's size and sha256 so that a verification of the release still passes, and the
    change is recorded under ``amendments`` (what was replaced, with its previous checksum).

    Args:
        spec: The lake.
        release: A published release.
        objects: The new or replaced objects (already written), with their checksums.
        derived: The product's name (a key of the manifest's ``derived`` section).
        details: What to record about the product (parameters, counts).

    Returns:
        The new manifest.

    Raises:
        ReleaseNotFound: The release is not published.
        PublishConflict: Another writer holds the lock.
    """
    fs = filesystem(spec)
    with _RootLock(spec):
        manifest = read_manifest(spec, release)
        listed = {o["path"]: o for o in manifest["objects"]}
        added: list[str] = []
        replaced: list[ReplacedObject] = []
        for e in objects:
            entry = e.record()
            before = listed.get(e.path)
            if before == entry:
                continue
            if before is None:
                added.append(e.path)
            else:
                replaced.append({"path": e.path, "sha256_before": before["sha256"]})
            listed[e.path] = entry
        manifest["objects"] = list(listed.values())
        manifest["total_bytes"] = sum(int(o["size"]) for o in listed.values())
        manifest.setdefault("derived", {})[derived] = dict(details)
        if added or replaced:
            amendment: Amendment = {
                "time": datetime.now(UTC).isoformat(timespec="seconds"),
                "derived": derived,
                "added": added,
                "replaced": replaced,
            }
            manifest.setdefault("amendments", []).append(amendment)
        write_json_atomic(fs, spec.path(manifest_path(release)), manifest)
        return manifest
