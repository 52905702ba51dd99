"""The notebooks of ``notebooks/``, executed with nbclient against a small lake on S3.

The notebooks are stored without outputs; here each one runs in a kernel of this environment's
Python (a kernelspec written to a temporary folder, so no other Jupyter installation is used),
must finish without an error and must draw its figures. ``01-quickstart`` runs from nothing (it
starts its own endpoint, builds the lake and stops the endpoint); the others then run in the same
folder, on that lake and on an endpoint that this module starts over it, which they find and
reuse without stopping it.
"""

from __future__ import annotations

import json
import sys
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

from pipelines import tour

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
    """An endpoint over the lake that 01 built (01 stopped its own), for notebooks 02-04."""
    with tour.start(quickstart[0] / "tour-data") as t:
        assert not t.built and t.started_endpoint
        yield t


def execute(name: str, cwd: Path, kernels: KernelSpecManager) -> nbformat.NotebookNode:
    """Run ``notebooks/<name>.ipynb`` with ``cwd`` as its working folder; returns it executed."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=kernels)
    client = NotebookClient(nb, km=km, timeout=TIMEOUT, resources={"metadata": {"path": str(cwd)}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first error
    return nb


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
    km = KernelManager(kernel_name=KERNEL, kernel_spec_manager=kernels)
    NotebookClient(nb, km=km, timeout=60, resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert text(nb).strip() == repr(sys.executable)


def test_notebooks_are_stored_without_outputs() -> None:
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    assert [p.name for p in paths][:4] == [
        "01-quickstart.ipynb",
        "02-stac-search.ipynb",
        "03-sql.ipynb",
        "04-training.ipynb",
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
    said = text(nb) + "\n".join(o.get("data", {}).get("text/html", "") for o in outputs(nb))
    assert "s3://lake/tour reused" in said, "the notebook rebuilt the lake"
    for words in says:
        assert words in said, f"{name}: no {words!r} in its outputs"
    assert figures(nb) >= min_figures
    assert shared_tour._server is not None and shared_tour._server.running, (
        "the notebook stopped an endpoint it did not start"
    )
