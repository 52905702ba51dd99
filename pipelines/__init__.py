"""The lake's operations: the ``lake`` command, its jobs, and what they run on.

``lake/`` is the format and its readers, ``catalog/`` the STAC catalog; this package builds and
maintains lakes with them. Its rooms, from the front door inwards (each imports only the rooms
after it; import-linter checks it):

``cli/``
    The ``lake`` command: one module per command group, assembled in ``cli/__init__.py``;
    ``cli/common.py`` holds the shared options, the spec builder, error handling and output.
``showcase/``
    Not pipeline jobs: the README's demo (``make demo``), the notebooks' tour helper and the
    ``lake train`` example, which show the lake end to end.
``jobs/``
    The pipeline jobs, one per module: ``ingest`` (with ``annotations``, its text step),
    ``stats``, ``verify``, ``export``. Each runs its tasks on a cluster (``--cluster``).
``sources/``
    What ingest reads: the official extracted folders, ``.tar.zst`` archives, the reference
    LMDB, the BigEarthNet.txt parquet, and a release of another lake (for export).
``synth/``
    Synthetic sources in the official layouts, from the real metadata rows (written with the
    encoders of ``sources/``).
``cluster/``
    Where tasks run: ``spec`` (``--cluster`` as data), ``runner`` (runs tasks on it), ``gateway``
    (creates Dask Gateway clusters).
``local/``
    Servers on this machine for the demo, tests and small teams: the process helper, the
    embedded S3 endpoint (rclone) and a local Dask Gateway.

Tools used only by tests and benchmarks (the fault-injecting proxy) live in ``tests/support/``.
"""
