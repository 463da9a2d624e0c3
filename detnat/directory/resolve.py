"""Which account held a subscriber over a window: the one rule, shared by the store's answers
and the tests' brute-force replay.

Given the intervals that touch a subscriber (its prefix inside theirs, or theirs inside it) and
the window asked about (``[lo, hi]``, an instant when ``lo == hi``):

1. An interval with no end (a session whose Stop was lost) ends where a later interval of the
   *same* prefix begins (:func:`taken_over`): someone else's Start is the best evidence of when.
2. The intervals that cover some instant of the window are the candidates. No candidate: not
   covered (``account: null`` and a reason). One account among them: ``identified``. More than
   one: ``ambiguous`` — the prefix changed hands within the window — with each of them.

>>> a = Interval("2001:db8:1:100::/56", "alice", 0, None, "open", ())
>>> b = Interval("2001:db8:1:100::/56", "bob", 10, None, "open", ())
>>> account_of([a, b], 5, 5).status, account_of([a, b], 12, 12).account
('identified', 'bob')
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from detnat.directory.model import Interval

SHOWN = 10  # intervals shown in one answer at most


@dataclass(frozen=True)
class Account:
    """The directory's answer for one subscriber and window."""

    status: str  # "identified" | "ambiguous" | "not_covered"
    account: str | None
    held: tuple[Interval, ...]
    reason: str | None = None


def taken_over(intervals: Iterable[Interval]) -> list[Interval]:
    """Open intervals ended at the next start of another interval of the same prefix."""
    found = list(intervals)
    starts: dict[str, list[int]] = {}
    for iv in found:
        starts.setdefault(iv.subscriber, []).append(iv.start)
    out = []
    for iv in found:
        if iv.end is None:
            later = [s for s in starts[iv.subscriber] if s > iv.start]
            if later:
                iv = iv._replace(end=min(later), closed="takeover")
        out.append(iv)
    return out


def account_of(
    intervals: Sequence[Interval], lo: int, hi: int, *, subscriber: str = "", more: bool = False
) -> Account:
    """The account over ``[lo, hi]`` (µs), from intervals already ended by :func:`taken_over`
    (or given open ends: this applies it). ``more``: the directory has more rows for the window
    than ``intervals`` (a cut set): no account is named, whatever those say."""
    ended = taken_over(intervals) if any(iv.end is None for iv in intervals) else intervals
    if more:
        held = sorted(
            (iv for iv in ended if iv.start <= hi and (iv.end is None or iv.end > lo)),
            key=lambda iv: (iv.start, iv.subscriber, iv.account),
        )
        return Account(
            "ambiguous",
            None,
            tuple(held[:SHOWN]),
            f"more than {len(intervals)} directory intervals cover {subscriber or 'it'} "
            f"{_when(lo, hi)}: too many to name one account",
        )
    held = sorted(
        (iv for iv in ended if iv.start <= hi and (iv.end is None or iv.end > lo)),
        key=lambda iv: (iv.start, iv.subscriber, iv.account),
    )
    accounts = sorted({iv.account for iv in held})
    if not accounts:
        when = _when(lo, hi)
        what = f"{subscriber} " if subscriber else ""
        return Account(
            "not_covered", None, (), f"the directory holds no interval covering {what}{when}"
        )
    if len(accounts) == 1:
        return Account("identified", accounts[0], tuple(held[:SHOWN]))
    return Account("ambiguous", None, tuple(held[:SHOWN]))


def _when(lo: int, hi: int) -> str:
    if lo == hi:
        return f"at {instant_text(lo)}"
    return f"between {instant_text(lo)} and {instant_text(hi)}"


def instant_text(us: int) -> str:
    """RFC 3339 UTC, microseconds only when there are some (``format_instant``'s form), written
    without a ``datetime``: an ingest writes two per interval. The date of each day is made once
    (:data:`_DAYS`), the time of day by arithmetic.

    >>> instant_text(1_767_225_600_000_000), instant_text(1_767_225_600_000_001)
    ('2026-01-01T00:00:00Z', '2026-01-01T00:00:00.000001Z')
    """
    secs, frac = divmod(us, 1_000_000)
    day, clock = divmod(secs, 86_400)
    date = _DAYS.get(day)
    if date is None:
        date = _day_text(day)
    hour, rest = divmod(clock, 3600)
    minute, second = divmod(rest, 60)
    if frac:
        return f"{date}T{hour:02d}:{minute:02d}:{second:02d}.{frac:06d}Z"
    return f"{date}T{hour:02d}:{minute:02d}:{second:02d}Z"


_DAYS: dict[int, str] = {}  # day number since the epoch -> its date text (bounded below)


def _day_text(day: int) -> str:
    tm = time.gmtime(day * 86_400)
    text = f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}"
    if len(_DAYS) >= 100_000:  # ~270 years of days
        _DAYS.clear()
    _DAYS[day] = text
    return text
