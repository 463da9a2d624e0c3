"""A query parameter a route does not take is refused (422, naming it), not ignored: a batch sent
with ``?tolerance=30`` (for ``tolerance_seconds``) was answered with no tolerance at all -- a
narrower window than the complainant's clock skew calls for, so a plan change inside the skew
went unseen and the answer could be a clean match instead of ambiguous."""

from __future__ import annotations

import pytest

from tests.store.conftest import Api

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize(
    ("method", "url", "who", "field"),
    [
        ("POST", "/v1/lookups/reverse/batch?case=UQ-1&tolerance=30", "legal", "tolerance"),
        ("GET", "/v1/audit/verify?checkpoint=7", "auditor", "checkpoint"),
        ("GET", "/v1/realms?name=x", "planner", "name"),
    ],
)
def test_an_unknown_query_parameter_is_refused_by_name(
    api: Api, method: str, url: str, who: str, field: str
) -> None:
    got = api(method, url, who, content=b"ip,port,time\n", headers={"content-type": "text/csv"})
    assert got.status_code == 422, got.text
    problem = got.json()
    assert problem["code"] == "invalid_input" and problem["field"] == field


def test_the_parameters_a_route_takes_are_accepted(api: Api) -> None:
    got = api("GET", "/v1/audit?after=0&limit=1", "auditor")
    assert got.status_code == 200, got.text
