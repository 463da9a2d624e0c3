"""Local wall-clock times of log files, turned into instants — and checked, never guessed.

FreeRADIUS writes each detail record's first line in the server's local time without a zone;
Kea's forensic log writes local time with the zone's abbreviation (``2018-01-06 01:02:03 PST``).
The operator names the zone (``--tz Europe/Berlin``); this module refuses a zone that does not
exist, a wall-clock time the zone skips (spring forward), and an abbreviation that is not the
zone's at that instant (``CET`` in July in Berlin: the file was not written in that zone, or the
clock was wrong). An abbreviation also settles the hour a zone repeats (autumn back)::

    >>> zone = Zone.named("Europe/Berlin")
    >>> zone.instant_us(2026, 10, 25, 2, 30, 0, abbreviation="CET")  # the second 02:30
    1792891800000000
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from detnat.errors import InvalidInput

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
UNIVERSAL = frozenset({"UTC", "GMT", "Z", "UT"})


class LocalTimeError(ValueError):
    """A local time that names no instant in the zone (the message says why)."""


class Zone:
    """A named IANA zone with a cache of minutes already converted (a log's lines cluster)."""

    def __init__(self, name: str, info: ZoneInfo) -> None:
        self.name = name
        self._info = info
        self._minutes: dict[tuple[int, int, int, int, int, str | None], int] = {}

    @classmethod
    def named(cls, name: str | None, *, field: str = "--tz") -> Zone:
        if not name:
            raise InvalidInput(
                "this format writes local times: name their zone (e.g. Europe/Berlin)",
                field=field,
            )
        try:
            return cls(name, ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidInput(f"{name!r} is not an IANA time zone", field=field) from exc

    def instant_us(
        self,
        year: int,
        month: int,
        day: int,
        hour: int,
        minute: int,
        second: int,
        *,
        abbreviation: str | None = None,
    ) -> int:
        """µs since the epoch of a wall-clock time in this zone; :class:`LocalTimeError` if the
        zone skips it, or ``abbreviation`` is not the zone's then; a ``second`` past 59 is no time
        (it is not carried into the next minute)."""
        if not 0 <= second <= 59:
            raise LocalTimeError(f"not a time: second {second} is not 0..59")
        key = (year, month, day, hour, minute, abbreviation)
        base = self._minutes.get(key)
        if base is None:
            base = self._minute(year, month, day, hour, minute, abbreviation)
            if len(self._minutes) > 200_000:
                self._minutes.clear()
            self._minutes[key] = base
        return base + second * 1_000_000

    def _minute(
        self, year: int, month: int, day: int, hour: int, minute: int, abbreviation: str | None
    ) -> int:
        try:
            naive = datetime(year, month, day, hour, minute)
        except ValueError as exc:
            raise LocalTimeError(f"not a date: {exc}") from exc
        candidates = []
        for fold in (0, 1):
            local = naive.replace(tzinfo=self._info, fold=fold)
            # a wall-clock time the zone skips does not survive the round trip through UTC
            back = local.astimezone(UTC).astimezone(self._info).replace(tzinfo=None)
            if back != naive:
                continue
            candidates.append(local)
        if not candidates:
            raise LocalTimeError(f"{naive:%Y-%m-%d %H:%M} does not exist in {self.name}")
        if abbreviation is not None and abbreviation.upper() not in UNIVERSAL:
            named = [c for c in candidates if c.tzname() == abbreviation]
            if not named:
                shown = "/".join(sorted({str(c.tzname()) for c in candidates}))
                raise LocalTimeError(
                    f"zone abbreviation {abbreviation} is not {self.name}'s at "
                    f"{naive:%Y-%m-%d %H:%M} (it is {shown}): wrong --tz?"
                )
            candidates = named
        elif abbreviation is not None:
            return (naive.replace(tzinfo=UTC) - EPOCH) // US
        return (candidates[0].astimezone(UTC) - EPOCH) // US


def epoch_us(moment: datetime) -> int:
    return (moment.astimezone(UTC) - EPOCH) // US


def from_us(us: int) -> datetime:
    return EPOCH + us * US
