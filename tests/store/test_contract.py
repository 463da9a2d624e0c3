"""The OpenAPI is a contract: every kind of answer holds to its documented schema, key for key,
and a client generated from the OpenAPI by a standard generator (openapi-python-client) reads a
reverse answer typed.

The lookup routes return their JSON themselves (no validation per request, to stay fast): these
tests are where their answers meet the schema.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from api.app import create_app
from detnat.engine import Reason, Status
from detnat.service.answers import AuditedForwardAnswer, AuditedReverseAnswer
from detnat.settings import Settings
from tests.store.conftest import Api, fresh_pool

pytestmark = pytest.mark.postgres

REVERSE = TypeAdapter(AuditedReverseAnswer)
FORWARD = TypeAdapter(AuditedForwardAnswer)
T0, T1 = "2020-01-01T00:00:00Z", "2020-06-01T00:00:00Z"
# Capacity figures (detnat.capacity) are still documented as bare objects.
UNTYPED = {"/v1/capacity/size", "/v1/capacity/check", "/v1/plans/diff"}


def _plan(pool: str, inside: str = "10.0.0.0/18") -> dict[str, Any]:
    return {
        "algorithm": "block",
        "inside": {"prefixes": [inside], "subscriber_prefix_length": 32},
        "outside": {"prefixes": [pool]},
        "block": {"ratio": 4096},
    }


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _publish(api: Api, realm: str, plan: dict[str, Any], at: str, *, approve: bool) -> None:
    _ok(
        api(
            "POST",
            f"/v1/realms/{realm}/versions",
            "admin",
            {"plan": plan, "effective_from": at, "reason": "CHG-C", "correction": True},
        ),
        201,
    )
    if approve:
        n = len(_ok(api("GET", f"/v1/realms/{realm}/versions", "admin")))
        _ok(api("POST", f"/v1/realms/{realm}/versions/{n}/approval", "admin2", {}), 201)


def _conforms(adapter: TypeAdapter[Any], response: httpx.Response) -> dict[str, Any]:
    """The answer validates against its schema, and the schema gives back exactly its JSON: no
    key missing from the schema (extra keys are refused), none added, every value the same."""
    body = _ok(response)
    typed = adapter.validate_json(response.content)
    assert adapter.dump_python(typed, mode="json") == body
    return dict(body)


def test_every_kind_of_answer_holds_to_its_schema(api: Api, realm_name: str) -> None:
    pool = fresh_pool()
    ip = pool.split("/")[0]
    _ok(api("POST", "/v1/realms", "admin", {"name": realm_name, "session_drain": "0s"}), 201)
    _publish(api, realm_name, _plan(pool), T0, approve=True)
    _publish(api, realm_name, _plan(pool, "10.0.64.0/18"), T1, approve=True)
    _publish(api, realm_name, _plan(pool, "10.0.128.0/18"), "2021-01-01T00:00:00Z", approve=False)

    def reverse(port: int, time: str, **more: Any) -> dict[str, Any]:
        asked = {"ip": ip, "port": port, "time": time, "case": "CASE-CONTRACT", **more}
        return _conforms(REVERSE, api("POST", "/v1/lookups/reverse", "legal", asked))

    def forward(time: str, subscriber: str = "10.0.0.5") -> dict[str, Any]:
        asked = {"subscriber": subscriber, "time": time, "case": "CASE-CONTRACT"}
        asked["realm"] = realm_name
        return _conforms(FORWARD, api("POST", "/v1/lookups/forward", "legal", asked))

    match = reverse(1100, "2020-02-01T00:00:00Z", realm=realm_name)
    assert match["status"] == Status.MATCH and "reason" not in match
    assert match["candidates"][0]["covers"]["in_drain_only"] is False
    assert isinstance(match["nearest_change"], dict) and "pending_approval" not in match
    reserved = reverse(80, "2020-02-01T00:00:00Z", realm=realm_name)
    assert (reserved["status"], reserved["reason"]) == (Status.NO_MAPPING, Reason.RESERVED_PORT)
    assert "subscriber" not in reserved
    differ = reverse(1100, T1, tolerance_seconds=60, realm=realm_name)
    assert (differ["status"], differ["reason"]) == (Status.AMBIGUOUS, Reason.CANDIDATES_DIFFER)
    assert len(differ["candidates"]) == 2
    pending = reverse(1100, "2021-01-01T00:00:01Z", realm=realm_name)
    assert pending["pending_approval"][0]["pending_approval"] is True
    before = reverse(1100, "2019-01-01T00:00:00Z", realm=realm_name)
    assert before["status"] == Status.NO_PLAN_IN_FORCE and before["nearest_change"] is None
    future = reverse(1100, "2999-01-01T00:00:00Z", realm=realm_name)
    assert future["status"] == Status.FUTURE and "nearest_change" not in future

    held = forward("2020-02-01T00:00:00Z")
    assert held["status"] == Status.MATCH and held["candidates"][0]["static"] is False
    assert "scheduled" not in held
    assert forward("2019-01-01T00:00:00Z")["status"] == Status.NO_PLAN_IN_FORCE
    assert forward("2999-01-01T00:00:00Z", "10.0.64.5")["scheduled"] is True


def test_the_answers_schema_lists_the_one_vocabulary() -> None:
    spec = create_app(Settings(database_url="postgresql://unused/")).openapi()
    schemas = spec["components"]["schemas"]
    assert schemas["Status"]["enum"] == [s.value for s in Status]
    assert schemas["Reason"]["enum"] == [r.value for r in Reason]
    reverse = spec["paths"]["/v1/lookups/reverse"]["post"]["responses"]["200"]
    assert reverse["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AuditedReverseAnswer"
    }
    answer = schemas["AuditedReverseAnswer"]
    assert answer["additionalProperties"] is False
    optional = set(answer["properties"]) - set(answer["required"])
    assert optional == {
        "reason",
        "subscriber",
        "public_ip",
        "port_ranges",
        "nearest_change",
        "pending_approval",
        "log_candidates",  # the logs, when consulted (issue 13)
        "log_holds_us",
        "log_interims_us",
        "source",
        "account",  # the subscriber directory (docs/directory.md)
        "account_reason",
    }
    for path, operations in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            for code, response in operation["responses"].items():
                if code.startswith("2") and path not in UNTYPED:
                    for media in response["content"].values():
                        assert media.get("schema"), (method, path, code)


# -- a client generated from the OpenAPI -----------------------------------------------------------


@pytest.fixture(scope="module")
def generated_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The ``detnat_client`` package that openapi-python-client generates from our OpenAPI
    (offline: the document is written to a file; no formatter hooks run)."""
    generator = pytest.importorskip("openapi_python_client", reason="dev dependency")
    from openapi_python_client.config import Config, ConfigFile, MetaType

    root = tmp_path_factory.mktemp("generated")
    source = root / "openapi.json"
    spec = create_app(Settings(database_url="postgresql://unused/")).openapi()
    source.write_text(json.dumps(spec))
    config = Config.from_sources(
        ConfigFile(post_hooks=[], package_name_override="detnat_client"),
        MetaType.NONE,
        source,
        "utf-8",
        True,
        root / "detnat_client",
    )
    errors = generator.generate(config=config)
    # Warnings we accept: our problem+json responses repeat one inline schema per status code
    # (the generator keeps the first), and it reads no CSV (the batch). Anything else is a defect
    # of our document.
    known = ('Problem"', "Unsupported content type text/csv")
    unknown = [e.detail for e in errors if not any(k in str(e.detail) for k in known)]
    assert not unknown, unknown
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("detnat_client")
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.split(".")[0] == "detnat_client"]:
            del sys.modules[name]


def test_a_generated_client_makes_a_typed_reverse_lookup(
    api: Api, realm_name: str, generated_client: ModuleType
) -> None:
    pool = fresh_pool()
    ip = pool.split("/")[0]
    _ok(api("POST", "/v1/realms", "admin", {"name": realm_name, "session_drain": "0s"}), 201)
    _publish(api, realm_name, _plan(pool), T0, approve=True)

    client_mod = importlib.import_module("detnat_client.client")
    models = importlib.import_module("detnat_client.models")
    reverse = importlib.import_module("detnat_client.api.lookups.reverse_v1_lookups_reverse_post")
    client = client_mod.AuthenticatedClient(
        base_url="http://detnat.test",
        token=api.api_tokens["legal"],
        httpx_args={"transport": httpx.ASGITransport(app=api.app)},
    )
    asked = models.ReverseIn(
        ip=ip, port=1100, time="2020-01-01T00:00:01Z", case="CASE-GEN-1", realm=realm_name
    )
    answer = api.loop.run_until_complete(reverse.asyncio(client=client, body=asked))

    assert isinstance(answer, models.AuditedReverseAnswer), answer
    assert answer.status is models.Status.MATCH
    assert answer.subscriber == "10.0.0.5/32" and answer.public_ip == ip
    assert answer.port_ranges == [[1099, 1113]]
    assert answer.case == "CASE-GEN-1" and answer.answer_id > 0 and len(answer.audit_sha256) == 64
    (candidate,) = answer.candidates
    assert isinstance(candidate, models.ReverseCandidate)
    assert candidate.status is models.Status.MATCH and candidate.realm == realm_name
    assert candidate.version == 1 and isinstance(candidate.covers, models.Covers)
    assert answer.window.from_ == answer.window.to == "2020-01-01T00:00:01Z"
    assert isinstance(answer.nearest_change, models.NearestChange)
    wrong = models.ReverseIn(ip=ip, port=70000, time="2020-01-01T00:00:01Z", case="CASE-GEN-1")
    refused = api.loop.run_until_complete(reverse.asyncio_detailed(client=client, body=wrong))
    assert refused.status_code == 422
