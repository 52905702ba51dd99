"""Schemathesis against the STAC API's own OpenAPI document: generated requests, valid and
invalid, never get a server error, and every status code is one the document declares.

The schema-wide Hypothesis strategy is used directly (schemathesis's lazy pytest fixture does not
work with pytest 9); the number of examples is bounded so the test takes seconds.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import status_code_conformance

EXAMPLES = 50  # per operation and mode


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(api_url: str, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{api_url}/api")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {o.label for o in operations} >= {"GET /search", "POST /search"}
    calls: dict[str, int] = {}
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not _has_inputs(operation):
            continue  # nothing to make invalid

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            calls[case.operation.label] = calls.get(case.operation.label, 0) + 1
            case.call_and_validate(checks=[not_a_server_error, status_code_conformance], timeout=30)

        try:
            run()
        except Unsatisfiable:
            # Only string path parameters: every value is valid, so there is no invalid input.
            assert mode is GenerationMode.NEGATIVE and not operation.query, operation.label
    assert calls["GET /search"] >= EXAMPLES // 2 and calls["POST /search"] >= EXAMPLES // 2


def _has_inputs(operation: schemathesis.APIOperation) -> bool:
    return bool(operation.query or operation.path_parameters or operation.body)
