"""The notebooks of ``notebooks/``, executed with nbclient against a small lake on S3.

The notebooks are stored without outputs; here each one runs in a kernel of this environment's
Python (a kernelspec written to a temporary folder, so no other Jupyter installation is used),
must finish without an error and must draw its figures. ``01-quickstart`` runs from nothing (it
starts its own endpoint, builds the lake and stops the endpoint); the others then run in the same
folder, on that lake and on an endpoint that this module starts over it, which they find and
reuse without stopping it. ``05-dask-gateway`` also starts a Dask Gateway on loopback, runs the
stats job on a cluster of it and stops the Gateway: no cluster and no process may be left.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import psutil
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from pipelines.jobs.stats import BANDS, read_stats
from pipelines.showcase import tour

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
KERNEL = "bigearthnet-lake-tests"
TIMEOUT = 300  # per cell; a notebook takes 5-25 s here


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> KernelSpecManager:
    """A kernelspec running this Python (the test's venv), in a folder of its own."""
    folder = tmp_path_factory.mktemp("kernels")
    write_kernel_spec(folder / KERNEL)
    spec = json.loads((folder / KERNEL / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable, spec
    return KernelSpecManager(kernel_dirs=[str(folder)])


@pytest.fixture(scope="module")
def quickstart(
    tmp_path_factory: pytest.TempPathFactory, kernels: KernelSpecManager
) -> tuple[Path, nbformat.NotebookNode]:
    """``01-quickstart`` executed in an empty folder: the folder and the executed notebook."""
    folder = tmp_path_factory.mktemp("notebooks")
    return folder, execute("01-quickstart", folder, kernels)


@pytest.fixture(scope="module")
def shared_tour(quickstart: tuple[Path, nbformat.NotebookNode]) -> Iterator[tour.Tour]:
    """An endpoint over the lake that 01 built (01 stopped its own), for notebooks 02-07."""
    with tour.start(quickstart[0] / "tour-data") as t:
        assert not t.built and t.started_endpoint
        yield t


def execute(name: str, cwd: Path, kernels: KernelSpecManager) -> nbformat.NotebookNode:
    """Run ``notebooks/<name>.ipynb`` with ``cwd`` as its working folder; returns it executed."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    run(nb, cwd, kernels, TIMEOUT)  # raises CellExecutionError, naming the cell, on the first error
    return nb


def run(nb: nbformat.NotebookNode, cwd: Path, kernels: KernelSpecManager, timeout: int) -> None:
    """Execute a notebook in a kernel of its own, and shut the kernel down afterwards.

    nbclient leaves running a kernel whose manager it was given; its process (and the
    client's threads) would otherwise live until the test session ends.
    """
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=kernels)
    client = NotebookClient(nb, km=km, timeout=timeout, resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute()
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
        if km.has_kernel:
            km.shutdown_kernel(now=True)
        km.context.destroy(linger=0)  # the zmq sockets of the manager


def outputs(nb: nbformat.NotebookNode) -> list[dict[str, Any]]:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]


def figures(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for o in outputs(nb))


def text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for o in outputs(nb):
        parts.append(o.get("text", ""))
        parts.append(o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def html(nb: nbformat.NotebookNode) -> str:
    return "\n".join(o.get("data", {}).get("text/html", "") for o in outputs(nb))


def processes_in(folder: Path) -> list[psutil.Process]:
    """Live processes whose working folder is ``folder`` or below it."""
    found = []
    for p in psutil.process_iter(["cwd", "status"]):
        cwd = p.info["cwd"]
        if cwd and p.info["status"] != psutil.STATUS_ZOMBIE and Path(cwd).is_relative_to(folder):
            found.append(p)
    return found


def rclone_serving(folder: Path) -> list[psutil.Process]:
    """Live rclone processes serving something under ``folder``."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        alive = p.info["status"] != psutil.STATUS_ZOMBIE
        if alive and "rclone" in cmdline and str(folder) in cmdline:
            found.append(p)
    return found


def test_the_kernel_is_this_python(kernels: KernelSpecManager, tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; sys.executable")])
    run(nb, tmp_path, kernels, 60)
    assert text(nb).strip() == repr(sys.executable)


def test_notebooks_are_stored_without_outputs() -> None:
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert [p.name for p in paths][:7] == [
        "01-quickstart.ipynb",
        "02-stac-search.ipynb",
        "03-sql.ipynb",
        "04-training.ipynb",
        "05-dask-gateway.ipynb",
        "06-vlm.ipynb",
        "07-timeseries.ipynb",
    ]
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{path.name}: a cell has stored outputs"
                assert cell.execution_count is None, f"{path.name}: a cell has an execution count"
        assert nb.cells[0].cell_type == "markdown", f"{path.name} starts without a title"


@pytest.mark.s3
def test_01_quickstart_from_nothing(quickstart: tuple[Path, nbformat.NotebookNode]) -> None:
    tmp_path, nb = quickstart
    said = text(nb)
    assert "s3://lake/tour served by http://127.0.0.1:" in said and "built in" in said
    assert "release v1: 200 pairs" in said
    assert figures(nb) >= 1
    assert (tmp_path / "tour-data" / "s3" / "lake" / "tour" / "lake.json").is_file()
    assert rclone_serving(tmp_path) == [], "the notebook left its endpoint running"
    state = json.loads((tmp_path / "tour-data" / tour.STATE_FILE).read_text())
    assert state["endpoint"] is None


@pytest.mark.s3
@pytest.mark.parametrize(
    ("name", "min_figures", "says"),
    [
        ("02-stac-search", 1, ["pairs match", "items from the API", "folium"]),
        ("03-sql", 3, ["captions mention water"]),
        ("04-training", 1, ["samples in", "batches per epoch"]),
        (
            "06-vlm",
            5,
            [
                "pairs in the stream",
                "decodes per row",
                "conversations exported",
                "baseline:majority on bench",
                "baseline:majority on test",
            ],
        ),
        (
            "07-timeseries",
            3,
            ["scenes found by the STAC search", "30 acquisitions", "NDVI peaks on"],
        ),
    ],
)
def test_notebook_on_the_shared_lake(
    name: str,
    min_figures: int,
    says: list[str],
    shared_tour: tour.Tour,
    kernels: KernelSpecManager,
) -> None:
    nb = execute(name, shared_tour.folder.parent, kernels)
    said = text(nb) + html(nb)
    assert "s3://lake/tour reused" in said, "the notebook rebuilt the lake"
    for words in says:
        assert words in said, f"{name}: no {words!r} in its outputs"
    assert figures(nb) >= min_figures
    assert shared_tour._server is not None and shared_tour._server.running, (
        "the notebook stopped an endpoint it did not start"
    )


@pytest.mark.s3
def test_05_dask_gateway(shared_tour: tour.Tour, kernels: KernelSpecManager) -> None:
    """The stats job on a Gateway cluster: figures drawn, nothing left running (about 10 s)."""
    folder = shared_tour.folder.parent
    gateway_dir = shared_tour.folder / "gateway"
    t0 = time.perf_counter()
    nb = execute("05-dask-gateway", folder, kernels)
    seconds = time.perf_counter() - t0
    said = text(nb)
    assert "s3://lake/tour reused" in said, "the notebook rebuilt the lake"
    assert "Dask Gateway at gateway://127.0.0.1:" in said
    assert 'dashboard <a href="http://127.0.0.1:' in html(nb), "no dashboard link shown"
    assert "release v1: 200 pairs, 7 shards (0 reused" in said
    assert figures(nb) >= 2
    assert "clusters on the Gateway: 0" in said and "Gateway running: False" in said
    # The job wrote its table into the lake; the kernel left no gateway, proxy, scheduler or
    # worker behind (they all run in the gateway's folder); the endpoint is still ours.
    assert read_stats(shared_tour.spec).num_rows >= len(BANDS)
    assert (gateway_dir / "clusters").is_dir()
    deadline = time.monotonic() + 10
    while processes_in(gateway_dir) and time.monotonic() < deadline:
        time.sleep(0.2)  # the kernel has been told to shut down; its children may be exiting
    assert processes_in(gateway_dir) == [], "the notebook left Gateway processes running"
    assert shared_tour._server is not None and shared_tour._server.running, (
        "the notebook stopped an endpoint it did not start"
    )
    assert seconds < 120, f"05-dask-gateway took {seconds:.0f} s"
