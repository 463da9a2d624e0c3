"""Schemathesis against the OpenAPI of the app: every operation, called with a valid token of a
role its policy allows; no 5xx, and every response conforms to the documented schema (every
success under /v1 but the capacity figures has a real one: answers, realms, versions, tokens,
audit, evidence).

(The schemathesis pytest plugin does not run under pytest 9 yet, so each operation's
hypothesis strategy is driven here with ``@given``.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings

from api import policy
from api.app import create_app
from detnat.settings import Settings
from detnat.store.db import make_engine, make_sessions
from tests.store.conftest import TOKEN_HOLDERS, make_tokens, throwaway_database

schemathesis = pytest.importorskip("schemathesis", reason="dev dependency schemathesis")
checks = schemathesis.checks

pytestmark = pytest.mark.postgres

HOLDERS = {role: holder for holder, role in reversed(TOKEN_HOLDERS)}
# Responses must be documented and conform; whether random schema-valid data is accepted is not
# asserted (the schema cannot say which strings are RFC 3339 times, realms or addresses).
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def st_database_url() -> Iterator[str]:
    """A database of its own: random calls revoke tokens and publish plans that other tests'
    shared tokens and realms must not see."""
    with throwaway_database() as url:
        yield url


@pytest.fixture(scope="module")
def st_app(st_database_url: str) -> Iterator[FastAPI]:
    database_url = st_database_url
    engine = make_engine(database_url, pool_size=1)
    api_tokens = make_tokens(make_sessions(engine))
    engine.dispose()
    app = create_app(
        Settings(database_url=database_url, rate_limit_per_second=1e6, rate_limit_burst=1e6)
    )
    loop = asyncio.new_event_loop()
    context = app.router.lifespan_context(app)
    loop.run_until_complete(context.__aenter__())
    app.state.test_tokens = api_tokens
    yield app
    loop.run_until_complete(context.__aexit__(None, None, None))
    loop.close()


def _token(app: FastAPI, method: str, path: str) -> str | None:
    access = policy.route_access(app, method, path)
    assert access is not None, (method, path)
    allowed = access.roles
    if allowed is policy.PUBLIC:
        return None
    role = "legal" if "legal" in allowed else sorted(allowed)[0]
    tokens: dict[str, str] = app.state.test_tokens
    return tokens[HOLDERS[role]]


def _checker(operation: Any, headers: dict[str, str]) -> Any:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
    )
    def check(case: Any) -> None:
        response = case.call(headers=headers)
        assert response.status_code < 500, (case.method, case.path, response.text)
        case.validate_response(response, checks=CHECKS)

    return check


# Capacity figures (detnat.capacity) are still documented as bare objects.
UNTYPED = {"/v1/capacity/size", "/v1/capacity/check", "/v1/plans/diff"}


def test_every_operation_conforms_and_never_fails(st_app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", st_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    # Conformance means something only where a success is documented with a real schema.
    for path, methods in st_app.openapi()["paths"].items():
        if not path.startswith("/v1/") or path in UNTYPED:
            continue
        for method, operation in methods.items():
            for code, response in operation["responses"].items():
                for media in response.get("content", {}).values() if code < "300" else ():
                    assert media.get("schema") not in (None, {}, {"type": "object"}), (method, path)
    for operation in operations:
        token = _token(st_app, operation.method.upper(), operation.path)
        _checker(operation, {"Authorization": f"Bearer {token}"} if token else {})()
