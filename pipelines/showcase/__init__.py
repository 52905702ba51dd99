"""The lake shown end to end: not pipeline jobs, but what the README and notebooks run.

* :mod:`~pipelines.showcase.demo`: ``make demo`` (a synthetic source, ingested into the embedded
  S3 endpoint, one pair rendered).
* :mod:`~pipelines.showcase.tour`: the notebooks' setup (an endpoint and a small lake, reused).
* :mod:`~pipelines.showcase.train`: ``lake train``, a small model on the lake's stream.
"""
