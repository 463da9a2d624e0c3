"""The upload endpoint over HTTP: roles, a mailbox export answered, CSV or JSON, refusals."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import timedelta

import pytest

from tests.complaints import samples
from tests.complaints.conftest import T0, World
from tests.store.conftest import Api

pytestmark = pytest.mark.postgres

PATH = "/v1/complaints/answer"


def _box(world: World) -> bytes:
    at = T0 - timedelta(days=5)  # under v2 (V2_FROM is ten days before T0)
    arrival = at.strftime("%a, %d %b %Y %H:%M:%S +0000")
    return samples.mbox(
        samples.arf_mail(world.ip, 1100, arrival=arrival),
        samples.xarf_02_mail(world.ip),  # 2014: before any plan
        b"Subject: hi\n\nnothing\n",
    )


def test_abuse_uploads_a_mailbox_and_gets_rows_and_summary(api: Api, world: World) -> None:
    box = _box(world)
    got = api(
        "POST", PATH, "abuse", files={"files": ("export.mbox", box)}, data={"case": "ABUSE-77"}
    )
    assert got.status_code == 200, got.text
    body = got.json()
    assert [a["verdict"] for a in body["answers"]] == ["identified", "not_ours", "unreadable"]
    assert body["counts"] == {"identified": 1, "not_ours": 1, "unreadable": 1}
    assert body["input_sha256"] == hashlib.sha256(box).hexdigest()
    [offender] = body["summary"]
    assert offender["subscriber"] == body["answers"][0]["subscriber"]
    assert offender["complaints"] == 1 and offender["categories"] == {"feedback/abuse": 1}
    as_csv = api(
        "POST",
        PATH,
        "abuse",
        files={"files": ("export.mbox", box)},
        data={"case": "ABUSE-77"},
        headers={"accept": "text/csv"},
    )
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert hashlib.sha256(as_csv.content).hexdigest() == as_csv.headers["x-detnat-output-sha256"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["verdict"] for r in rows] == ["identified", "not_ours", "unreadable"]


@pytest.mark.parametrize(("who", "status"), [("planner", 403), ("auditor", 403), (None, 401)])
def test_roles_other_than_abuse_and_legal_are_refused(
    api: Api, world: World, who: str | None, status: int
) -> None:
    got = api("POST", PATH, who, files={"files": ("a.mbox", _box(world))}, data={"case": "C-1"})
    assert got.status_code == status
    assert got.headers["content-type"].startswith("application/problem+json")


def test_legal_may_upload_several_files_and_csv_with_a_map(api: Api, world: World) -> None:
    table = f"seen,src,sport\n2026-03-01 12:00:00,{world.ip},1100\n".encode()
    got = api(
        "POST",
        PATH,
        "legal",
        files=[("files", ("a.csv", table)), ("files", ("b.json", samples.XARF_4))],
        data={"case": "LEGAL-1", "format": "auto", "map": "ip=src,port=sport,time=seen",
              "tz": "Europe/Berlin"},
    )  # fmt: skip
    # A map applies to the CSV; the JSON file is read as what it is.
    assert got.status_code == 200, got.text
    verdicts = [a["verdict"] for a in got.json()["answers"]]
    assert verdicts == ["identified", "not_ours"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"case": "C-1", "format": "pdf"}, "format"),
        ({"case": "C-1", "map": "ip=a,colour=b"}, "--map"),
        ({"case": "a\nb"}, "case"),
        ({"case": "C-1", "realm": "nowhere"}, "realm"),
    ],
)
def test_bad_uploads_are_problems_naming_the_field(
    api: Api, world: World, data: dict[str, str], field: str
) -> None:
    got = api("POST", PATH, "abuse", files={"files": ("a.mbox", _box(world))}, data=data)
    assert 400 <= got.status_code < 500, got.text
    assert field in got.text


def test_empty_upload_is_refused(api: Api, world: World) -> None:
    got = api("POST", PATH, "abuse", files={"files": ("a.mbox", b"")}, data={"case": "C-1"})
    assert got.status_code == 422 or got.status_code == 400
    assert "empty" in got.text
