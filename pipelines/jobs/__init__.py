"""The pipeline jobs, one per module, each run on a cluster (``--cluster``) by a runner.

* :mod:`~pipelines.jobs.ingest`: a source into a new release (scan, shards, tables, catalog,
  manifest, publish), resumable; :mod:`~pipelines.jobs.annotations` is its text step.
* :mod:`~pipelines.jobs.stats`: per-band statistics of a release, a derived product.
* :mod:`~pipelines.jobs.verify`: every object against the manifest.
* :mod:`~pipelines.jobs.export`: a SQL or STAC selection as a new lake or WebDataset shards.
"""
