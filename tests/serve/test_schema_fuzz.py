"""schemathesis fuzzes every route of the OpenAPI schema against a real uvicorn server with an
admin token: no 5xx, and every response matches the schema (status, content type, body)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from alphaops.core.config import AlphaOpsConfig
from alphaops.registry import Registry
from alphaops.serve import ServeConfig, create_app

from .conftest import Secrets


@pytest.fixture
def server(config: AlphaOpsConfig, registry: Registry, secrets: Secrets) -> Iterator[str]:
    server = uvicorn.Server(
        uvicorn.Config(create_app(config, ServeConfig()), host="127.0.0.1", port=0,
                       log_level="warning")
    )  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start within 30 s"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=30)


def test_no_route_answers_5xx_or_breaks_its_schema(server: str, secrets: Secrets) -> None:
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    failures: list[str] = []
    for operation in schema.get_all_operations():
        op = operation.ok()

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None)  # fmt: skip
        @given(case=op.as_strategy())
        def check(case: schemathesis.Case) -> None:
            # Excluded: "schema-valid data must be accepted". A schema-valid promote can still
            # be refused by the registry's rules (an unknown model 404, an alias that cannot
            # be promoted 400, steps that do not rise 400): a typed 4xx problem is correct.
            case.call_and_validate(
                headers=secrets.header("admin"), excluded_checks=[positive_data_acceptance]
            )

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{op.label}: {exc}")
    assert not failures, "\n\n".join(failures)
