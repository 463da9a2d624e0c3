"""One table says what each kind of error is at the edges: the API and the CLI read it alike."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI

from api import problems
from cli.output import exit_code_for
from detnat.errors import INTERNAL, OUTCOMES, DetnatError, QueryError, outcome_of


@pytest.mark.parametrize(("kind", "outcome"), OUTCOMES, ids=lambda k: getattr(k, "__name__", ""))
def test_the_api_and_the_cli_render_an_error_by_the_one_table(kind, outcome) -> None:  # type: ignore[no-untyped-def]
    app = FastAPI()
    problems.install(app)

    @app.get("/boom")
    def boom() -> None:
        raise kind("it went wrong", field="thing")

    transport = httpx.ASGITransport(app=app)

    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/boom")

    response = asyncio.run(get())
    assert response.status_code == outcome.http_status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "thing"
    assert exit_code_for(kind("x")) == outcome.exit_code


def test_subclasses_take_their_base_outcome_and_others_are_internal() -> None:
    assert outcome_of(QueryError("q")) == OUTCOMES[0][1]
    assert outcome_of(DetnatError("plain")) == INTERNAL == outcome_of(RuntimeError())
    assert len({kind for kind, _ in OUTCOMES}) == len(OUTCOMES)
