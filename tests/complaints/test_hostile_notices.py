"""Notices made to exhaust or stop the reader: each is read or refused on its own, in time linear in
its size, and the notices after it are still answered.

Found by an attacker's review: the ACNS reader found ``<Infringement>...</Infringement>`` with one
lazy pattern, which the regex engine tries from every opening tag to the end of the text. A
notice of opening tags only (anyone can mail one to the abuse desk, whose mailbox export is
uploaded) took seconds per 100 kB and hours per MB, holding a worker of the service. And one
mail could stop a whole upload (API 500, CLI traceback): a byte above 127 in a header the readers
strip (the standard library then hands a ``Header``, not a ``str``), an X-ARF part in a charset
Python does not know, MIME parts nested deeper than the mail parser recurses.
"""

from __future__ import annotations

import io
import time

import pytest

from detnat.complaints import Complaint, Unreadable, read
from tests.complaints import samples

# 280 kB: 0.1 s when linear, about half a minute when quadratic (process time, load-independent)
OPENINGS = "<Infringement>" * 20_000
BUDGET_S = 3.0


def _timed(data: bytes, name: str) -> tuple[list[object], float]:
    start = time.process_time()
    records = list(read(io.BytesIO(data), name))
    return records, time.process_time() - start


def test_an_acns_notice_of_opening_tags_only_is_refused_in_linear_time() -> None:
    records, spent = _timed(OPENINGS.encode(), "notice.xml")
    assert [type(r) for r in records] == [Unreadable]
    assert spent < BUDGET_S, spent


def test_a_mail_whose_text_is_opening_tags_only_is_read_in_linear_time() -> None:
    mail = f"From: a@example.org\nSubject: notice\nContent-Type: text/plain\n\n{OPENINGS}\n"
    records, spent = _timed(mail.encode(), "notice.eml")
    assert [type(r) for r in records] == [Unreadable]
    assert spent < BUDGET_S, spent


def test_the_first_notice_of_a_text_is_still_read_behind_stray_opening_tags() -> None:
    """The element is the first opening tag to the first closing tag after it, as before."""
    records, _ = _timed((samples.acns_xml("192.0.2.9", 33273) + OPENINGS).encode(), "notice.xml")
    assert [(type(r), getattr(r, "port", None)) for r in records] == [(Complaint, 33273)]


def _nested(depth: int) -> bytes:
    opened = "".join(
        f"Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n" for i in range(depth)
    )
    closed = "".join(f"--b{i}--\n" for i in reversed(range(depth)))
    return (
        f"From: a@example.org\nSubject: s\n{opened}Content-Type: text/plain\n\nhi\n{closed}"
    ).encode()


HOSTILE_MAILS = {
    "8-bit Message-ID": samples.arf_mail("192.0.2.7", 40001).replace(
        b"Message-ID: <arf-", b"Message-ID: <\xff-"
    ),
    "8-bit Source-IP": samples.arf_mail("192.0.2.7", 40001).replace(
        b"Source-IP: 192.0.2.7", b"Source-IP: 192.0.2.7\xff"
    ),
    "8-bit X-XARF": samples.xarf_02_mail().replace(b"X-XARF: PLAIN", b"X-XARF: PL\xffAIN"),
    "unknown charset": samples.xarf_02_mail().replace(
        b"charset=utf-8; name=report.txt", b"charset=no-such-charset; name=report.txt"
    ),
    "not a text codec": samples.xarf_02_mail().replace(
        b"charset=utf-8; name=report.txt", b"charset=zlib; name=report.txt"
    ),
    "nested 5000 deep": _nested(5000),
}


@pytest.mark.parametrize("hostile", HOSTILE_MAILS.values(), ids=list(HOSTILE_MAILS))
def test_one_hostile_mail_of_a_mailbox_stops_nothing(hostile: bytes) -> None:
    good = samples.arf_mail("192.0.2.8", 40002)
    records = list(read(io.BytesIO(samples.mbox(hostile, good)), "box.mbox"))
    assert len(records) == 2
    assert isinstance(records[1], Complaint) and records[1].ip == "192.0.2.8"
    assert isinstance(records[0], Unreadable | Complaint)
