"""Notices made to exhaust the reader: each is read (or refused) in time linear in its size.

Found by an attacker's review: the ACNS reader found ``<Infringement>...</Infringement>`` with one
lazy pattern, which the regex engine tries from every opening tag to the end of the text. A
notice of opening tags only (anyone can mail one to the abuse desk, whose mailbox export is
uploaded) took seconds per 100 kB and hours per MB, holding a worker of the service.
"""

from __future__ import annotations

import io
import time

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
