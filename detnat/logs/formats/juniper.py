"""`juniper-pba`: Juniper's port block allocation events, `RT_SRC_NAT_PBA_ALLOC` / `_RELEASE` /
`_INTERIM`, in both forms the field shows.

Structured data (SRX, and MX with structured syslog)::

    RT_NAT - RT_SRC_NAT_PBA_ALLOC [internal-ip="10.0.10.10" block-used="1" block-max-per-host="4"
    block-port-low="48640" block-port-high="48895" reflexive-ip="1.2.84.172" nat-pool-name="guest"
    logical-system-id="0" epoch-time-64="624b0492"]

BSD text (MX)::

    <14>Jun 30 22:44:25 BNG-01 RT_NAT: RT_SRC_NAT_PBA_ALLOC: Subscriber 100.64.60.74
    used/maximum [10/15] blocks, allocates port block [24064-24191] from 203.0.113.100 in source
    pool POOL lsys_id: 0 epoch 0x6a44007a

The inside key is `internal-ip` / the address after `Subscriber` (IPv4, or IPv6 for NAT64 and
DS-Lite), the public address `reflexive-ip` / the address after `from`, the block
`block-port-low`-`block-port-high` / `[lo-hi]`, inclusive, for every protocol (Juniper's blocks are
not per protocol). The verb between `blocks,` and `port block` (`allocates`, `releases`, …) is
not read: the event name says what happened.

Time: the epoch in the line (`epoch-time-64`, `epoch 0x…`, hex seconds, UTC) is the instant of
the event, and the syslog header is then not read at all (it is often the collector's clock, and
a BSD header has no year). Only a line without an epoch is timed by its header: an RFC 5424 /
RFC 3339 time with its offset, or a BSD time with `--year` and `--tz`; a line with neither is
refused.

>>> from detnat.logs.formats import ParseOptions
>>> line = (b'RT_NAT - RT_SRC_NAT_PBA_ALLOC [internal-ip="10.0.10.10" block-port-low="48640" '
...         b'block-port-high="48895" reflexive-ip="1.2.84.172" epoch-time-64="624b0492"]')
>>> [event] = parse([line], "srx.log", ParseOptions())
>>> event.kind.value, event.inside, event.public, event.port_first, event.port_last, event.at_us
('allocate', '10.0.10.10', '1.2.84.172', 48640, 48895, 1649083538000000)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from detnat.logs.events import EventKind, LineRef, LogEvent, Refused
from detnat.logs.formats import ParseOptions
from detnat.logs.formats._common import (
    Refuse,
    block,
    drive,
    epoch_seconds,
    inside,
    only_header,
    port,
    public,
)

_KINDS = {
    "ALLOC": EventKind.ALLOCATE,
    "RELEASE": EventKind.RELEASE,
    "INTERIM": EventKind.INTERIM,
}
_EVENT = re.compile(r"RT_SRC_NAT_PBA_(ALLOC|RELEASE|INTERIM)(?::\s*|\s+|$)(.?)")
_APP = re.compile(r"(?:^|\s)RT_NAT(?:\[\d+\])?(?::| \S+) $")
_SD_NEEDED = ("internal-ip", "reflexive-ip", "block-port-low", "block-port-high")
_SD_PARAM = re.compile(r'([\w.@-]+)="([^"\\]*(?:\\.[^"\\]*)*)"')
_TEXT = re.compile(
    r"Subscriber\s+(\S+)\s+used/maximum\s+\[\d+/\d+\]\s+blocks,\s+(?:[a-z]+\s+)?"
    r"port\s+block\s+\[(\d+)-(\d+)\]\s+from\s+([^\s,]+)"
)
_TEXT_EPOCH = re.compile(r"\bepoch\s+(\S+)")
_HEX = re.compile(r"(?:0[xX])?([0-9a-fA-F]{1,16})")


def parse(lines: Iterable[bytes], file: str, options: ParseOptions) -> Iterator[LogEvent | Refused]:
    """Every PBA event of `lines` (a Juniper syslog file); other lines are skipped."""
    clock = options.clock_now()

    def read(text: str, number: int, raw: bytes) -> LogEvent | None:
        at = text.find("RT_SRC_NAT_PBA_")
        if at < 0:
            return None
        found = _EVENT.match(text, at)
        if found is None:
            return None  # RT_SRC_NAT_PBA_SOMETHING_ELSE: not an event we read
        name = found[1]
        # the NAT's own program just before it (RT_NAT: / RT_NAT - / RT_NAT[pid]: ...), then
        # nothing but a syslog header
        if at >= 9 and (
            text.startswith("RT_NAT: ", at - 8) or text.startswith("RT_NAT - ", at - 9)
        ):
            head = at - (8 if text[at - 2] == ":" else 9)
        else:
            app = _APP.search(text, 0, at)
            head = app.start() if app else at
        if not only_header(text, head, 1):
            raise Refuse(
                f"RT_SRC_NAT_PBA_{name} is not where an RT_NAT message begins: another "
                "program's text quoting it is not the NAT's word"
            )
        if found[2] == "[":
            params = dict(_SD_PARAM.findall(text, found.start(2)))
            try:
                inside_text, public_text = params["internal-ip"], params["reflexive-ip"]
                low, high = params["block-port-low"], params["block-port-high"]
            except KeyError:
                missing = [key for key in _SD_NEEDED if key not in params]
                raise Refuse(f"RT_SRC_NAT_PBA_{name} without {', '.join(missing)}") from None
            epoch = params.get("epoch-time-64")
        else:
            words = _TEXT.match(text, found.start(2)) or _TEXT.search(text, found.start(2))
            if words is None:
                raise Refuse(
                    f'RT_SRC_NAT_PBA_{name} in neither Juniper form: no [key="value" ...] and no '
                    f"'Subscriber A used/maximum [u/m] blocks, ... port block [lo-hi] from P'"
                )
            inside_text, low, high, public_text = words.groups()
            tail = _TEXT_EPOCH.search(text, words.end())
            epoch = tail[1] if tail is not None else None
        first, last = port(low, "block-port-low"), port(high, "block-port-high")
        block(first, last)
        subscriber = inside(inside_text, "the subscriber")
        address = public(public_text, "the public address")
        return LogEvent(
            _KINDS[name],
            _epoch(epoch) if epoch is not None else clock.syslog_head(text),
            subscriber,
            address,
            first,
            last,
            None,
            LineRef.of(file, number, raw),
        )

    return drive(lines, file, read)


def _epoch(text: str) -> int:
    digits = _HEX.fullmatch(text)
    if digits is None:
        raise Refuse(f"epoch {text!r} is not hexadecimal seconds (0x624b0492)")
    return epoch_seconds(int(digits[1], 16))
