"""Where pipeline tasks run: a Dask Gateway, a local Dask cluster, a scheduler, threads, in-process.

* :mod:`~pipelines.cluster.spec`: ``--cluster`` as a picklable :class:`ClusterSpec`, and the
  software check of workers (a leaf).
* :mod:`~pipelines.cluster.runner`: :class:`Runner` runs tasks on a cluster and owns its life.
* :mod:`~pipelines.cluster.gateway`: creates, scales and shuts down Dask Gateway clusters.
"""
