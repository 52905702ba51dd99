"""STAC helpers of the tests: the official schemas, offline, through the shared validator."""

from __future__ import annotations

import sys
from typing import Any

from tests.conftest import SHARED

if str(SHARED / "tools") not in sys.path:
    sys.path.insert(0, str(SHARED / "tools"))


def validate(obj: dict[str, Any]) -> list[str]:
    """Errors of one STAC object (Item, Collection, Catalog) against the official schemas."""
    from validate_stac import validate as run

    return list(run(obj))
