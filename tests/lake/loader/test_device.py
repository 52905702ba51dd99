"""Native dtypes out of the dataset, float32 and the normalisation on the device (``to_device``).

The device here is the CPU (the tests run without CUDA); pinned staging is for CUDA only.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from lake.bigearthnet import BAND_STATS
from lake.errors import ConfigError
from lake.loader import DeviceFeeder, LakeDataLoader, LakeDataset, to_device
from tests.lake.loader.helpers import LoaderLake

ALL = ["s2_10m", "s2_20m", "s2_60m", "s1", "reference_map", "labels"]


def _first(ds: LakeDataset, size: int = 16) -> dict[str, Any]:
    return next(iter(LakeDataLoader(ds, batch_size=size)))


def test_native_delivers_the_stored_dtypes_with_the_same_values(loader_lake: LoaderLake) -> None:
    native = _first(LakeDataset(loader_lake.spec, modalities=ALL, dtype="native", seed=4))
    floats = _first(LakeDataset(loader_lake.spec, modalities=ALL, seed=4))
    assert native["patch_id"] == floats["patch_id"]
    want = {
        "s2_10m": torch.uint16,
        "s2_20m": torch.uint16,
        "s2_60m": torch.uint16,
        "s1": torch.float32,
        "reference_map": torch.uint16,
    }
    for name, dtype in want.items():
        got = native[name]
        assert isinstance(got, torch.Tensor) and got.dtype == dtype, name
        ref = floats[name]
        assert isinstance(ref, torch.Tensor)
        assert torch.equal(got.to(ref.dtype), ref), name


def test_native_resamples_with_nearest_and_keeps_the_dtype(loader_lake: LoaderLake) -> None:
    ds = LakeDataset(
        loader_lake.spec, modalities=["s2_20m", "s1"], dtype="native", resample_to=120, seed=4
    )
    batch = _first(ds)
    mods = ["s2_20m", "s1"]
    ref = _first(LakeDataset(loader_lake.spec, modalities=mods, resample_to=120, seed=4))
    s2 = batch["s2_20m"]
    assert isinstance(s2, torch.Tensor) and s2.dtype == torch.uint16
    assert s2.shape[-2:] == (120, 120)
    assert torch.equal(s2.float(), ref["s2_20m"])


def test_to_device_equals_normalising_in_the_dataset(loader_lake: LoaderLake) -> None:
    mods = ["s2_10m", "s2_20m", "s1", "reference_map", "labels"]
    native = _first(LakeDataset(loader_lake.spec, modalities=mods, dtype="native", seed=5))
    cpu = _first(LakeDataset(loader_lake.spec, modalities=mods, normalize=True, seed=5))
    moved = to_device(native, "cpu", normalize=True)
    for name in ("s2_10m", "s2_20m", "s1"):
        assert moved[name].dtype == torch.float32
        torch.testing.assert_close(moved[name], cpu[name], rtol=0, atol=1e-5)
    assert moved["reference_map"].dtype == torch.int64
    assert torch.equal(moved["reference_map"], cpu["reference_map"].long())
    assert torch.equal(moved["labels"], cpu["labels"])
    assert moved["patch_id"] == cpu["patch_id"]
    # Explicit statistics: the formula is (x - mean) / std per band.
    stats = {b: (100.0, 50.0) for b in BAND_STATS}
    own = to_device(native, "cpu", normalize=stats)
    raw = native["s2_10m"]
    assert isinstance(raw, torch.Tensor)
    torch.testing.assert_close(own["s2_10m"], (raw.float() - 100.0) / 50.0)
    plain = to_device(native, torch.device("cpu"))
    assert torch.equal(plain["s2_10m"], raw.float())


def test_a_feeder_pins_nothing_without_cuda(loader_lake: LoaderLake) -> None:
    feeder = DeviceFeeder("cpu", normalize="official", pin=True)
    assert feeder.pin is False  # pinned staging only when the target is a CUDA device
    batch = _first(LakeDataset(loader_lake.spec, modalities=["s1"], dtype="native", seed=1))
    first = feeder(batch)
    again = feeder(batch)
    assert torch.equal(first["s1"], again["s1"])
    kept = DeviceFeeder("cpu", float_rasters=False)(batch)
    assert kept["s1"] is batch["s1"]  # already on the device, in its own dtype


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dtype": "uint8"}, r"dtype='uint8': use 'float32' or 'native'"),
        ({"dtype": "native", "normalize": True}, r"normalise on the device instead"),
        (
            {"dtype": "native", "resample_to": 60, "resample": "bilinear"},
            r"resample='bilinear' with dtype='native'",
        ),
    ],
)
def test_native_refuses_float_work(
    loader_lake: LoaderLake, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        LakeDataset(loader_lake.spec, modalities=["s2_10m"], **kwargs)


@pytest.mark.parametrize(
    ("normalize", "message"),
    [
        ("lake", r"normalize='lake': use False, True/'official' or a mapping"),
        ({"B02": (1.0, 0.0)}, r"the std of band\(s\) \['B02'\] must be > 0"),
    ],
)
def test_to_device_refuses_bad_statistics(normalize: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DeviceFeeder("cpu", normalize=normalize)


def test_to_device_names_a_band_the_statistics_lack() -> None:
    batch = {"s1": torch.zeros((1, 2, 4, 4))}
    with pytest.raises(ConfigError, match=r"lack band\(s\) \['VV', 'VH'\] of 's1'"):
        to_device(batch, "cpu", normalize={"B02": (1.0, 2.0)})
    with pytest.raises(ConfigError, match="normalize= needs float_rasters=True"):
        DeviceFeeder("cpu", normalize=True, float_rasters=False)


def test_normalising_on_the_cpu_leaves_the_callers_batch_alone(loader_lake: LoaderLake) -> None:
    """On the CPU the conversion runs in NumPy, in place on its own copy: S1 is float32 already,
    so normalising it must not write into the batch the caller passed (nor alias it)."""
    batch = _first(LakeDataset(loader_lake.spec, modalities=["s2_10m", "s1"], dtype="native"))
    before = {k: v.clone() for k, v in batch.items() if isinstance(v, torch.Tensor)}
    moved = to_device(batch, "cpu", normalize=True)
    for key, value in before.items():
        assert torch.equal(batch[key], value), key
    assert moved["s1"].data_ptr() != batch["s1"].data_ptr()
    assert not torch.equal(moved["s1"], batch["s1"])
    plain = to_device(batch, "cpu")  # float32 already and nothing to normalise: no copy needed
    assert plain["s1"].data_ptr() == batch["s1"].data_ptr()
