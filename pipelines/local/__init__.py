"""Servers on this machine, on loopback: for the demo, the tests, the benchmarks and small teams.

* :mod:`~pipelines.local.processes`: a child server process that dies with its parent.
* :mod:`~pipelines.local.s3`: the embedded S3 endpoint (``rclone serve s3``).
* :mod:`~pipelines.local.gateway`: a Dask Gateway of this venv's processes.
* :mod:`~pipelines.local.stac`: a STAC API over a file of Items (``rustac serve``).
"""
