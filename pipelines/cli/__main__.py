"""``python -m pipelines.cli``: the ``lake`` command."""

from pipelines.cli import main

main()
