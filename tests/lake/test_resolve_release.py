"""The one release lookup (:func:`lake.release.resolve_release`) and its users agree."""

from __future__ import annotations

import uuid

import pytest

from lake.config import StoreSpec, store_spec
from lake.errors import ReleaseNotFound
from lake.reader import Lake
from lake.release import _RootLock, build_manifest, publish, read_manifest, resolve_release
from lake.storage import filesystem


@pytest.fixture
def spec() -> StoreSpec:
    return store_spec(f"memory://resolve-{uuid.uuid4().hex[:8]}", environ={})


def _publish(spec: StoreSpec, name: str, *, make_current: bool = True) -> None:
    filesystem(spec).pipe_file(spec.path(f"patches/{name}.zarr/zarr.json"), name.encode())
    manifest = build_manifest(
        spec, name, {}, counts={"patches": 1}, source={"kind": "t"}, parameters={}
    )
    publish(spec, name, manifest, make_current=make_current)


def test_an_empty_lake_has_no_current_release(spec: StoreSpec) -> None:
    with pytest.raises(ReleaseNotFound, match="has no release yet: run `lake ingest`"):
        resolve_release(spec)
    with pytest.raises(ReleaseNotFound, match="has no release yet"):
        _ = Lake(spec).current


def test_none_is_the_current_release_and_a_name_is_itself(spec: StoreSpec) -> None:
    _publish(spec, "r1")
    _publish(spec, "r2", make_current=False)
    assert resolve_release(spec) == "r1"
    assert resolve_release(spec, "r2") == "r2"
    assert Lake(spec).release().name == "r1" and Lake(spec).release("r2").name == "r2"
    assert read_manifest(spec)["release"] == "r1"
    assert read_manifest(spec, "r2")["release"] == "r2"


def test_an_unknown_name_is_refused_with_the_published_ones(spec: StoreSpec) -> None:
    _publish(spec, "r2")
    _publish(spec, "r1")
    message = r"release 'nope' is not in the lake .* \(published releases: r1, r2\)"
    with pytest.raises(ReleaseNotFound, match=message):
        resolve_release(spec, "nope")
    for lookup in (lambda: Lake(spec).release("nope"), lambda: read_manifest(spec, "nope")):
        with pytest.raises(ReleaseNotFound, match=message):
            lookup()


def test_the_root_lock_is_a_context_manager(spec: StoreSpec) -> None:
    with _RootLock(spec) as held:
        assert held.read() is not None
        assert not _RootLock(spec).try_acquire()
    assert held.read() is None
