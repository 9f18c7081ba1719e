"""Contract fuzzing of the task API's OpenAPI schema with schemathesis: no 5xx, and every response
(status, content type, body) matches the schema; stateless over every operation, then stateful through
the schema's links (submit -> get / events / cancel / restart).

The app runs in-process with its lifespan (pool, tables) on a real PostgreSQL and a valid token; the
calls go through the app's TestClient (schemathesis' own ASGI client would keep the lifespan open for
the whole process, past the per-test database)."""

from __future__ import annotations

import copy
from typing import Any

import hypothesis
import psycopg
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.core.transport import Response
from schemathesis.generation import GenerationMode
from schemathesis.generation.case import Case
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.service.conftest import AUTH

pytestmark = pytest.mark.slow
TABLES = "fintune_task_events, fintune_tasks, procrastinate_jobs"
CONFORMS = [status_code_conformance, content_type_conformance, response_schema_conformance]
CHECKS = [not_a_server_error, *CONFORMS]
SETTINGS = hypothesis.settings(
    max_examples=15,
    deadline=None,
    database=None,  # no example files written into the tree
    derandomize=True,  # the same cases every run: a CI failure reproduces
    suppress_health_check=list(HealthCheck),
)


def send(client: TestClient, case: Case) -> Any:
    """The case as schemathesis serializes it (JSON, or raw bytes for an invalid body), sent through the
    app's client with the token."""
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url))
    kwargs["headers"] = {**kwargs["headers"], **AUTH}
    kwargs.pop("cookies", None)  # the API reads none
    data = kwargs.pop("data", None)
    if isinstance(data, bytes | str):
        kwargs["content"] = data  # httpx sends raw bodies as `content`
    elif data is not None:
        kwargs["data"] = data
    return client.request(**kwargs)


def fuzz(client: TestClient, operation: APIOperation, mode: GenerationMode) -> None:
    # No worker runs here (no fuzzed task trains), so /healthz gives its documented 503 "no worker"
    checks = CONFORMS if operation.path == "/healthz" else CHECKS

    @SETTINGS
    @given(case=operation.as_strategy(mode))
    def check(case: Case) -> None:
        case.validate_response(send(client, case), checks=checks)

    check()


def test_every_operation_answers_within_its_schema(make_client, tiny_beir):
    with make_client([tiny_beir.parent]) as client:
        openapi = client.app.openapi()
        schema = schemathesis.openapi.from_dict(openapi)
        results = list(schema.get_all_operations())
        assert all(isinstance(result, Ok) for result in results), results  # the schema itself is valid
        operations = [result.ok() for result in results if isinstance(result, Ok)]
        assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
            "POST /v1/fine-tuning/tasks",
            "GET /v1/fine-tuning/tasks/{task_id}",
            "POST /v1/fine-tuning/tasks/{task_id}/cancel",
        }
        for operation in operations:
            fuzz(client, operation, GenerationMode.POSITIVE)
            definition = openapi["paths"][operation.path][operation.method.lower()]
            if definition.get("parameters") or definition.get("requestBody"):  # else no request is invalid
                fuzz(client, operation, GenerationMode.NEGATIVE)  # invalid requests: 4xx, never 5xx


def submittable(openapi: dict[str, Any], data: str) -> dict[str, Any]:
    """The schema with TaskCreate narrowed to requests that can succeed (the real data folder, a known
    kind, a step cap), so the stateful run creates tasks and follows their links; responses are still
    checked against the app's own schema."""
    narrowed = copy.deepcopy(openapi)
    fields = narrowed["components"]["schemas"]["TaskCreate"]["properties"]
    fields["kind"] = {"enum": ["embedding"]}
    fields["data"] = {"enum": [data]}
    fields["config"] = {"type": "object", "additionalProperties": False,
                        "properties": {"max_steps": {"type": "integer", "minimum": 1, "maximum": 5}}}  # fmt: skip
    fields["metadata"] = {"type": "object", "maxProperties": 2}
    # no idempotency key or deployment: their answers (200, 409) would depend on tasks of earlier
    # scenarios in the same database, and hypothesis needs a scenario to replay the same way
    for name in ("idempotency_key", "deploy", "wait_on_conflict"):
        del fields[name]
    narrowed["components"]["schemas"]["TaskCreate"]["required"] = ["kind", "data"]
    return narrowed


def test_stateful_runs_through_the_links(make_client, service_db, tiny_beir):
    with make_client([tiny_beir.parent]) as client, psycopg.connect(service_db, autocommit=True) as conn:
        openapi = client.app.openapi()
        links = openapi["paths"]["/v1/fine-tuning/tasks"]["post"]["responses"]["201"]["links"]
        assert {link["operationId"] for link in links.values()} == {"get_task", "task_events", "cancel_task",
                                                                      "restart_task"}  # fmt: skip
        schema = schemathesis.openapi.from_dict(submittable(openapi, tiny_beir.name))
        statuses: list[tuple[str, int]] = []

        class Through(schema.as_state_machine()):  # type: ignore[misc]
            def setup(self) -> None:
                # every scenario starts from no tasks and id 1, so hypothesis can replay it the same way
                conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")

            def call(self, case: Case, **kwargs: Any) -> Response:
                response = send(client, case)
                statuses.append((case.operation.label, response.status_code))
                return Response.from_any(response)

            def validate_response(self, response: Response, case: Case, **kwargs: Any) -> None:
                checks = CONFORMS if case.operation.path == "/healthz" else CHECKS
                case.validate_response(response, checks=checks)

        Through.run(settings=hypothesis.settings(SETTINGS, max_examples=10, stateful_step_count=6))
    # tasks were created and the links reached the task's own operations with its id
    assert ("POST /v1/fine-tuning/tasks", 201) in statuses
    followed = {label for label, code in statuses if "{task_id}" in label and code in (200, 202, 409)}
    assert len(followed) >= 2, statuses
