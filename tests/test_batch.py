"""Batch reverse over CSV: every row answered, in order, the same bytes on every path.

The oracle is :func:`reference`, the batch written the plain way a reader can check against the
spec: the csv module, one :meth:`Mapper.reverse` per row. :func:`reverse_csv` must write exactly
its bytes whether a block takes the numpy fast path or the csv slow path, with worker threads or
without, in blocks of any size (tiny blocks put fast and slow blocks side by side and cut quoted
records across blocks).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from detnat import batch
from detnat.batch import (
    BadRow,
    BatchReport,
    _Batch,
    _fast_block,
    parse_ip,
    parse_ipv4_many,
    parse_port,
    parse_port_many,
    reverse_csv,
)
from detnat.engine import Mapper, compile_plan
from detnat.engine.addresses import V6, Prefix, format_address, parse_ipv4
from detnat.errors import InvalidInput, QueryError
from detnat.planfile import plan_from_text
from detnat.service.times import parse_instant
from detnat.subscriber_text import SubscriberTexts, format_ipv4_many, format_ipv6_many
from tests.strategies import plans

BLOCK_PLAN = """
algorithm: block
inside:
  prefixes: ["100.64.1.0/24", "100.64.0.0/25"]
  subscriber_prefix_length: 32
  exclude: ["100.64.1.0/32", "100.64.1.255/32"]
outside:
  prefixes: ["198.51.100.0/28", "192.0.2.0/29"]
  exclude: ["198.51.100.0/32"]
ports: {first: 1024, last: 65535, exclude: ["5060-5061"]}
block: {size: 2000, assignment: staggered, dynamic_blocks: 2}
static:
  - {subscriber: "100.64.1.9/32", address: "203.0.113.7"}
"""
MAP_PLAN = """
algorithm: map
map: {rule_ipv6_prefix: "2001:db8::/40", rule_ipv4_prefix: "192.0.2.0/24",
      ea_bits_length: 16, psid_offset: 6}
"""


@pytest.fixture(scope="module")
def block_mapper() -> Mapper:
    return compile_plan(plan_from_text(BLOCK_PLAN))


@pytest.fixture(scope="module")
def map_mapper() -> Mapper:
    return compile_plan(plan_from_text(MAP_PLAN))


# -- the oracle -----------------------------------------------------------------------------------


def cell(text: str) -> str:
    # = + - @, their fullwidth forms, and control characters (NUL, tab, CR ...) that spreadsheets
    # skip before a formula.
    if text and (text[0] in "=+-@\uff1d\uff0b\uff0d\uff20\x7f" or text[0] < " "):
        text = "'" + text
    if any(c in text for c in ',"\r\n'):
        text = '"' + text.replace('"', '""') + '"'
    return text


def reference(mapper: Mapper, data: bytes) -> tuple[bytes, list[BadRow], dict[str, int]]:
    """The batch one row at a time: (output, bad rows, counts)."""
    text = data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    physical = [line + "\n" for line in text.split("\n")]
    if text.endswith("\n"):
        physical.pop()
    taken: list[str] = []

    def feed() -> Iterator[str]:
        for line in physical:
            taken.append(line)
            yield line

    reader = csv.reader(feed(), strict=True)
    header: list[str] = []
    try:
        while not header:
            header = next(reader)
    except (StopIteration, csv.Error):
        raise ValueError("no header") from None
    if len(set(header)) < len(header) or not {"ip", "port"} <= set(header):
        raise ValueError("a bad header")
    width = len(header)
    out = [",".join(cell(c) for c in [*header, "status", "reason", "subscriber"])]
    bad: list[BadRow] = []
    counts: dict[str, int] = {}
    while True:
        line = len(taken) + 1
        start = len(taken)
        try:
            cells = next(reader)
            error = None
        except StopIteration:
            break
        except csv.Error as exc:
            cells, error = None, f"malformed CSV ({exc})"
        raw = "".join(taken[start:])
        raw = raw[:-2] if raw.endswith("\r\n") else raw[:-1]
        if cells == []:
            continue
        if cells is not None and len(cells) > width:
            error = (
                f"{len(cells)} fields, the header has {width} (row kept whole in the first column)"
            )
        if cells is None or error is not None:
            cells = [raw] + [""] * (width - 1)
        else:
            cells = cells + [""] * (width - len(cells))
            ip = parse_ip(cells[header.index("ip")])
            port = parse_port(cells[header.index("port")])
            problems = [p for p in (ip, port) if isinstance(p, str)]
            if problems:
                error = "; ".join(problems)
        answer = ("error", "", "")
        if error is None:
            try:
                found = mapper.reverse(ip, port)  # type: ignore[arg-type]
            except InvalidInput as exc:
                error = exc.message
            else:
                answer = (
                    found.status.value,
                    found.reason.value if found.reason else "",
                    str(found.allocation.subscriber) if found.allocation else "",
                )
        if error is not None:
            answer = ("error", error, "")
            bad.append(BadRow(line, error))
        counts[answer[0]] = counts.get(answer[0], 0) + 1
        out.append(",".join(cell(c) for c in [*cells, *answer]))
    return ("\n".join(out) + "\n").encode("utf-8", "surrogateescape"), bad, counts


def store_reference(
    answer: Callable[[int, int, datetime], tuple[str, str, str]],
    data: bytes,
    *,
    tz: str | None = None,
) -> tuple[bytes, list[BadRow], dict[str, int]]:
    """The store batch (columns ``ip,port,time``) one row at a time: (output, bad rows, counts).

    Lines are cut as a text stream with ``newline=""`` cuts them (LF, CRLF or a bare CR); each
    row is parsed with the single parsers and answered by ``answer(ip, port, at)``, a single
    lookup, which raises :class:`QueryError` for a row that is not a query. A malformed record
    is echoed as empty cells, a long row as its cells joined in the first one.
    """
    text = data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")
    physical = list(io.StringIO(text, newline=""))
    taken: list[str] = []

    def feed() -> Iterator[str]:
        for line in physical:
            taken.append(line)
            yield line

    reader = csv.reader(feed(), strict=True)
    header: list[str] = []
    try:
        while not header:
            header = next(reader)
    except (StopIteration, csv.Error):
        raise ValueError("no header") from None
    if len(set(header)) < len(header) or not {"ip", "port", "time"} <= set(header):
        raise ValueError("a bad header")
    width = len(header)
    out = [",".join(cell(c) for c in [*header, "status", "reason", "subscriber"])]
    bad: list[BadRow] = []
    counts: dict[str, int] = {}
    while True:
        line = len(taken) + 1
        error: str | None = None
        try:
            cells: list[str] | None = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            cells, error = None, f"malformed CSV ({exc})"
        if cells == []:
            continue
        if cells is None:
            cells = [""] * width
        elif len(cells) > width:
            error = (
                f"{len(cells)} fields, the header has {width} (row kept whole in the first column)"
            )
            cells = [",".join(cells)] + [""] * (width - 1)
        else:
            cells = cells + [""] * (width - len(cells))
            ip = parse_ip(cells[header.index("ip")])
            port = parse_port(cells[header.index("port")])
            problems = [p for p in (ip, port) if isinstance(p, str)]
            try:
                at = parse_instant(cells[header.index("time")], tz=tz)
            except QueryError as exc:
                problems.append(exc.message if problems else f"bad time: {exc.message}")
            if problems:
                error = "; ".join(problems)
        found = ("error", "", "")
        if error is None:
            try:
                found = answer(ip, port, at)  # type: ignore[arg-type]
            except QueryError as exc:
                error = f"bad time: {exc.message}" if exc.field == "time" else exc.message
        if error is not None:
            found = ("error", error, "")
            bad.append(BadRow(line, error))
        counts[found[0]] = counts.get(found[0], 0) + 1
        out.append(",".join(cell(c) for c in [*cells, *found]))
    return ("\n".join(out) + "\n").encode("utf-8", "surrogateescape"), bad, counts


def run(mapper: Mapper, data: bytes, **options: Any) -> tuple[bytes, BatchReport]:
    sink = io.BytesIO()
    report = _Batch(mapper, sink, None, **options).run(io.BytesIO(data))
    return sink.getvalue(), report


VARIANTS = [
    {},
    {"threads": 1},
    {"fast": False},
    {"block_bytes": 1},
    {"block_bytes": 13, "threads": 2},
    {"block_bytes": 64, "threads": 1},
    {"block_bytes": 64, "fast": False},
]


def check_all_paths(mapper: Mapper, data: bytes) -> tuple[bytes, BatchReport]:
    expected, bad, counts = reference(mapper, data)
    first: BatchReport | None = None
    for options in VARIANTS:
        output, report = run(mapper, data, **options)
        assert output == expected, options
        assert report.bad_rows == bad[: batch.MAX_BAD_ROWS]
        assert report.bad_row_count == len(bad)
        assert report.counts == {s: counts[s] for s in batch.STATUSES if s in counts}
        if first is None:
            first = report
        assert report == first
    assert first is not None
    return expected, first


# -- what a user sees ------------------------------------------------------------------------------


def test_rows_keep_their_columns_and_gain_status_reason_subscriber(block_mapper: Mapper) -> None:
    data = (
        b"\xef\xbb\xbfcase,ip,port\r\n"
        b"A-1,198.51.100.1,1024\r\n"
        b"\r\n"
        b'"B, 2",192.0.2.3,1500\r\n'
        b"C,8.8.8.8,80\r\n"
        b"D,198.51.100.1,80\r\n"
        b"E,10.1.2.3,1024\r\n"
        b"F,1.2.3,1024\r\n"
        b"G,198.51.100.1,65536\r\n"
        b"H,203.0.113.7,9\r\n"
    )
    output, report = check_all_paths(block_mapper, data)
    assert output.decode().splitlines() == [
        "case,ip,port,status,reason,subscriber",
        "A-1,198.51.100.1,1024,match,,100.64.1.1/32",
        '"B, 2",192.0.2.3,1500,match,,100.64.1.19/32',
        "C,8.8.8.8,80,no_mapping,not_in_pool,",
        "D,198.51.100.1,80,no_mapping,reserved_port,",
        'E,10.1.2.3,1024,error,"10.1.2.3 is private address space (RFC 1918), not a public '
        'address of this plan",',
        "F,1.2.3,1024,error,bad ip '1.2.3' (want four decimal octets),",
        "G,198.51.100.1,65536,error,bad port '65536' (want 0-65535),",
        "H,203.0.113.7,9,match,,100.64.1.9/32",
    ]
    assert report.rows == 8
    assert report.counts == {"match": 3, "no_mapping": 2, "error": 3}
    assert [bad.line for bad in report.bad_rows] == [7, 8, 9]
    assert report.bad_row_count == 3


def test_answers_agree_with_reverse_for_every_row(block_mapper: Mapper) -> None:
    rng = np.random.default_rng(7)
    bases = [0xC6336400, 0xC0000200, 0xCB007100]
    rows = ["ip,port"]
    for _ in range(3000):
        address = bases[rng.integers(0, 3)] + int(rng.integers(0, 20))
        text = ".".join(str((address >> s) & 255) for s in (24, 16, 8, 0))
        rows.append(f"{text},{rng.integers(0, 65536)}")
    _, report = check_all_paths(block_mapper, ("\n".join(rows) + "\n").encode())
    assert report.rows == 3000
    assert set(report.counts) <= {"match", "no_mapping", "not_deterministic"}


def test_ipv6_subscribers_of_a_map_plan(map_mapper: Mapper) -> None:
    data = b"ip,port\n192.0.2.18,1232\n192.0.2.18,1023\n192.0.2.18,64723\n"
    output, _ = check_all_paths(map_mapper, data)
    assert output.decode().splitlines()[1:] == [
        "192.0.2.18,1232,match,,2001:db8:12:3400::/56",
        "192.0.2.18,1023,no_mapping,reserved_port,",
        "192.0.2.18,64723,match,,2001:db8:12:3400::/56",
    ]


def test_cells_that_a_spreadsheet_would_run_are_neutralised(block_mapper: Mapper) -> None:
    data = (
        b"=HYPERLINK(1),ip,port,+x\n"
        b"=1+1,198.51.100.1,1024,@SUM(A1)\n"
        b"-2,198.51.100.1,1024,\tx\n"
        b'ok,198.51.100.1,1024,"\rCR"\n'
        b"x,=1+1,+80,-\n"
    )
    output, _ = check_all_paths(block_mapper, data)
    assert output.decode().split("\n")[:-1] == [
        "'=HYPERLINK(1),ip,port,'+x,status,reason,subscriber",
        "'=1+1,198.51.100.1,1024,'@SUM(A1),match,,100.64.1.1/32",
        "'-2,198.51.100.1,1024,'\tx,match,,100.64.1.1/32",
        'ok,198.51.100.1,1024,"\'\rCR",match,,100.64.1.1/32',
        "x,'=1+1,'+80,'-,error,bad ip '=1+1' (want four decimal octets); "
        "bad port '+80' (not a decimal number),",
    ]


def test_odd_rows_are_answered_error_and_kept(block_mapper: Mapper) -> None:
    data = (
        b"ip,port,note\n"
        b"198.51.100.1,1024\n"  # a missing trailing cell is empty
        b"198.51.100.1,1024,a,b\n"  # one field too many
        b'198.51.100.1,1024,"two\nlines"\n'
        b'198.51.100.1,1024,"bad"quote\n'
        b"198.51.100.1\n"
        b",,\n"
    )
    output, report = check_all_paths(block_mapper, data)
    assert output.decode().split("\n")[1:-1] == [
        "198.51.100.1,1024,,match,,100.64.1.1/32",
        '"198.51.100.1,1024,a,b",,,error,"4 fields, the header has 3 (row kept whole in the '
        'first column)",',
        '198.51.100.1,1024,"two',
        'lines",match,,100.64.1.1/32',
        '"198.51.100.1,1024,""bad""quote",,,error,"malformed CSV (\',\' expected after \'""\')",',
        "198.51.100.1,,,error,bad port '' (empty),",
        ",,,error,bad ip '' (empty); bad port '' (empty),",
    ]
    assert [(bad.line, bad.message[:9]) for bad in report.bad_rows] == [
        (3, "4 fields,"),
        (6, "malformed"),
        (7, "bad port "),
        (8, "bad ip ''"),
    ]


def test_quoted_cells_come_back_quoted_only_where_they_must(block_mapper: Mapper) -> None:
    rows = (
        b"ip,port,url,note\r\n"
        b'198.51.100.1,1024,"http://x/?a,b","say ""hi"""\r\n'
        b'"198.51.100.1","1024","plain",""\r\n'
        b'198.51.100.1,1024,"=cmd,1",ok\r\n'
    )
    assert _fast_block(rows)
    output, _ = check_all_paths(block_mapper, rows)
    assert output.decode().split("\n")[1:-1] == [
        '198.51.100.1,1024,"http://x/?a,b","say ""hi""",match,,100.64.1.1/32',
        "198.51.100.1,1024,plain,,match,,100.64.1.1/32",
        '198.51.100.1,1024,"\'=cmd,1",ok,match,,100.64.1.1/32',
    ]


@pytest.mark.parametrize(
    ("block", "fast"),
    [
        (b"1.2.3.4,80\n", True),
        (b"1.2.3.4,80\r\n", True),
        (b"1.2.3.4,80\rx\n", False),  # a bare CR
        (b'1.2.3.4,80,"a,b"\n', True),
        (b'1.2.3.4,80,"a""b"\n"x",""\n', True),
        (b'1.2.3.4,80,"a\nb"\n', False),  # a record over two lines
        (b'1.2.3.4,80,a"b\n', False),  # a quote inside a cell
        (b'1.2.3.4,80,"a"b\n', False),
        (b'1.2.3.4,80,"a\n', False),
        (b'"a" ,1\n', False),
    ],
)
def test_which_blocks_the_fast_path_takes(block: bytes, fast: bool) -> None:
    assert _fast_block(block) == fast


def test_an_unclosed_quote_at_the_end_is_one_bad_row(block_mapper: Mapper) -> None:
    data = b'ip,port,note\n198.51.100.1,1024,ok\n198.51.100.1,1024,"open\nmore\n'
    output, report = check_all_paths(block_mapper, data)
    assert report.bad_rows == [BadRow(3, "malformed CSV (unexpected end of data)")]
    assert output.endswith(
        b'"198.51.100.1,1024,""open\nmore",,,error,malformed CSV (unexpected end of data),\n'
    )


def test_bytes_that_are_not_utf8_pass_through(block_mapper: Mapper) -> None:
    data = b"ip,port,note\n198.51.100.1,1024,\xff\xfe\n\xff,1,x\n"
    output, _ = check_all_paths(block_mapper, data)
    assert b"198.51.100.1,1024,\xff\xfe,match" in output
    assert b"\xff,1,x,error,bad ip '\\udcff' (want four decimal octets)," in output


def test_nul_and_control_bytes_are_echoed(block_mapper: Mapper) -> None:
    data = b"ip,port,note\n198.51.100.1,1024,a\x00b\x0bc\n"
    output, _ = check_all_paths(block_mapper, data)
    assert b"a\x00b\x0bc,match" in output


def test_a_header_only_file_writes_the_header(block_mapper: Mapper) -> None:
    output, report = check_all_paths(block_mapper, b"ip,port")
    assert output == b"ip,port,status,reason,subscriber\n"
    assert report == BatchReport()


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty file"),
        (b"\xef\xbb\xbf", "empty file"),
        (b"\n\r\n\n", "empty file"),
        (b"address,port\n1.2.3.4,80\n", "no column 'ip'"),
        (b"ip,Port\n", "no column 'port'"),
        (b"ip,port,ip\n", "column 'ip' appears twice"),
        (b'ip,port,"x"y\n', "malformed CSV header"),
        (b'ip,port,"open\n', "malformed CSV header"),
    ],
)
def test_a_bad_header_is_refused_before_anything_is_written(
    block_mapper: Mapper, data: bytes, words: str
) -> None:
    sink = io.BytesIO()
    with pytest.raises(InvalidInput, match=words) as caught:
        reverse_csv(block_mapper, io.BytesIO(data), sink)
    assert caught.value.field == "header"
    assert sink.getvalue() == b""


def test_only_the_first_bad_rows_are_kept_but_all_are_counted(block_mapper: Mapper) -> None:
    data = b"ip,port\n" + b"1.2.3,80\n" * 1500 + b"198.51.100.1,1024\n"
    sink = io.BytesIO()
    report = reverse_csv(block_mapper, io.BytesIO(data), sink)
    assert report.rows == 1501
    assert report.bad_row_count == 1500
    assert len(report.bad_rows) == batch.MAX_BAD_ROWS
    assert report.bad_rows[-1].line == batch.MAX_BAD_ROWS + 1
    assert report.counts == {"match": 1, "error": 1500}


def test_a_line_without_end_is_refused(
    block_mapper: Mapper, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "MAX_LINE_BYTES", 100)
    for data in (b"ip,port\n" + b"1" * 300, b'ip,port\n1,"' + b"x\n" * 100):
        with pytest.raises(InvalidInput) as caught:
            _Batch(block_mapper, io.BytesIO(), None, block_bytes=16).run(io.BytesIO(data))
        assert caught.value.field == "batch"


# -- streaming ---------------------------------------------------------------------------------


class Recorder:
    """A source and a sink that log their calls in one list."""

    def __init__(self, data: bytes) -> None:
        self.source = io.BytesIO(data)
        self.events: list[str] = []
        self.written = bytearray()

    def read(self, size: int = -1) -> bytes:
        self.events.append("read")
        return self.source.read(size)

    def write(self, data: bytes) -> int:
        self.events.append("write")
        self.written += data
        return len(data)


@pytest.mark.parametrize("threads", [1, 2])
def test_output_is_written_while_input_is_still_being_read(
    block_mapper: Mapper, threads: int
) -> None:
    data = b"ip,port\n" + b"198.51.100.1,1024\n" * 2000
    recorder = Recorder(data)
    seen: list[int] = []
    _Batch(block_mapper, recorder, seen.append, block_bytes=1000, threads=threads).run(  # type: ignore[arg-type]
        recorder  # type: ignore[arg-type]
    )
    writes = [i for i, event in enumerate(recorder.events) if event == "write"]
    reads = [i for i, event in enumerate(recorder.events) if event == "read"]
    assert len(reads) > 20
    assert writes[1] < reads[len(reads) // 2]
    assert seen == sorted(seen)
    assert seen[-1] == len(data)
    assert bytes(recorder.written) == reference(block_mapper, data)[0]


class Trickle(io.BytesIO):
    """A sink that takes at most 7 bytes a call, like an unbuffered pipe may."""

    def write(self, data: Any) -> int:
        return super().write(bytes(data[:7]))


class Uncounted(io.BytesIO):
    """A sink whose write returns None, as some file-likes do."""

    def write(self, data: Any) -> None:  # type: ignore[override]
        super().write(data)


@pytest.mark.parametrize("sink_type", [Trickle, Uncounted])
def test_every_byte_reaches_sinks_that_take_less_or_say_nothing(
    block_mapper: Mapper, sink_type: type[io.BytesIO]
) -> None:
    data = b"ip,port\n" + b"198.51.100.1,1024\n1.2.3,80\n" * 500
    sink = sink_type()
    reverse_csv(block_mapper, io.BytesIO(data), sink)
    assert sink.getvalue() == reference(block_mapper, data)[0]


# -- the vectorised parsers are the strict parsers -----------------------------------------------


def fields_text(values: list[str]) -> tuple[Any, Any, Any]:
    encoded = [v.encode("utf-8", "surrogateescape") for v in values]
    text = b",".join(encoded) + b"\n"
    starts, at = [], 0
    for e in encoded:
        starts.append(at)
        at += len(e) + 1
    fs = np.array(starts, dtype=np.int64)
    fe = fs + np.array([len(e) for e in encoded], dtype=np.int64)
    return np.frombuffer(text, dtype=np.uint8), fs, fe


near_ipv4 = st.one_of(
    st.text(alphabet="0123456789.", max_size=17),
    st.from_regex(r"\A[0-9]{1,4}(\.[0-9]{1,4}){2,4}\Z"),
    st.tuples(*[st.integers(0, 300)] * 4).map(lambda t: ".".join(map(str, t))),
    st.text(max_size=16),
)


@given(st.lists(near_ipv4, min_size=1, max_size=8))
@example(["1.2.3.4", "01.2.3.4", "1.2.3", "1.2.3.4.5", "256.1.1.1", "0.0.0.0", "255.255.255.255"])
@example(["１.２.３.４", "1。2。3。4", " 1.2.3.4", "1.2.3.4 ", "1..2.3", ".1.2.3", "1.2.3."])
def test_vectorised_dotted_quads_are_parse_ipv4(values: list[str]) -> None:
    assume(all("," not in v and "\n" not in v for v in values))
    text, fs, fe = fields_text(values)
    dots = np.flatnonzero(text == ord("."))
    addresses, valid = parse_ipv4_many(text, dots, fs, fe)
    for value, address, ok in zip(values, addresses.tolist(), valid.tolist(), strict=True):
        try:
            expected: int | None = parse_ipv4(value)
        except InvalidInput:
            expected = None
        assert ok == (expected is not None), value
        assert isinstance(parse_ip(value), str) == (expected is None)
        if ok:
            assert address == expected


@given(
    st.lists(
        st.one_of(st.text(alphabet="0123456789+- ", max_size=7), st.text(max_size=6)),
        min_size=1,
        max_size=8,
    )
)
def test_vectorised_ports_are_parse_port(values: list[str]) -> None:
    assume(all("," not in v and "\n" not in v for v in values))
    text, fs, fe = fields_text(values)
    ports, valid = parse_port_many(text, fs, fe)
    for value, port, ok in zip(values, ports.tolist(), valid.tolist(), strict=True):
        expected = parse_port(value)
        assert ok == isinstance(expected, int), value
        if ok:
            assert port == expected


def test_every_port_spelling_up_to_six_digits() -> None:
    values = [str(n) for n in range(100_000)] + ["0" + str(n) for n in range(1000)] + ["100000"]
    text, fs, fe = fields_text(values)
    ports, valid = parse_port_many(text, fs, fe)
    assert valid.tolist() == [isinstance(parse_port(v), int) for v in values]
    assert ports[valid].tolist() == [int(v) for v in values if isinstance(parse_port(v), int)]
    assert valid.sum() == 65536


def test_dotted_quads_are_written_like_the_engine_writes_them() -> None:
    rng = np.random.default_rng(3)
    addresses = np.concatenate(
        [
            np.array([0, 0xFFFFFFFF, 0x0A000001, 0x01000000, 0x00FF00FF]),
            rng.integers(0, 1 << 32, 5000),
        ]
    )
    for tail in (b"/32", b"/8", b"/0"):
        rows, lengths = format_ipv4_many(addresses, tail)
        for address, row, length in zip(addresses.tolist(), rows, lengths.tolist(), strict=True):
            dotted = ".".join(str((address >> s) & 255) for s in (24, 16, 8, 0))
            assert row[:length].tobytes() == dotted.encode() + tail
            assert not row[length:].any()


# -- nasty CSV, every path -----------------------------------------------------------------------

IPS = [
    "198.51.100.1",
    "198.51.100.0",
    "198.51.100.15",
    "192.0.2.3",
    "192.0.2.7",
    "203.0.113.7",
    "8.8.8.8",
    "10.0.0.1",
    "100.64.1.1",
    "1.2.3",
    "01.2.3.4",
    " 1.2.3.4",
    "::ffff:198.51.100.1",
    "64:ff9b::198.51.100.1",
    "fe80::1%eth0",
    "",
    "=1+1",
    "１.２.３.４",
    "256.1.1.1",
]
PORTS = ["1024", "0", "65535", "5060", "60000", "80", "-1", "65536", "080", "1e3", "", " 80", "٣"]
NASTY = st.text(
    alphabet=st.sampled_from([*",\"\r\n=+-@\t' aé\x00\x1b\x7f", "\u202e", "\uff1d"]), max_size=6
)
PLAIN = st.text(
    alphabet=st.sampled_from([*"=+-@\t' aé\x00\x1b\x7f.0", "\u202e", "\uff1d", "\uff20"]),
    max_size=6,
)


@st.composite
def nasty_csv(draw: st.DrawFn) -> bytes:
    """A CSV file as people make them; ``plain`` ones have no quotes (the fast path's food)."""
    plain = draw(st.booleans())
    extra_names = ["note", "=x", "time"] if plain else ["note", "=x", "a,b", 'q"q', "time"]
    extras = draw(st.lists(st.sampled_from(extra_names), unique=True))
    header = draw(st.permutations(["ip", "port", *extras]))
    text_cells = PLAIN if plain else NASTY
    rows = [header]
    for _ in range(draw(st.integers(0, 25))):
        row = []
        for name in header:
            if name == "ip":
                row.append(draw(st.sampled_from(IPS) | st.ip_addresses(v=4).map(str)))
            elif name == "port":
                row.append(draw(st.sampled_from(PORTS) | st.integers(0, 65535).map(str)))
            else:
                row.append(draw(text_cells))
        shape = draw(st.sampled_from(["as is"] * 6 + ["short", "long", "empty line"]))
        if shape == "short":
            row = row[: draw(st.integers(1, len(row)))]
        elif shape == "long":
            row += draw(st.lists(text_cells, min_size=1, max_size=2))
        elif shape == "empty line":
            row = []
        rows.append(row)
    lines = []
    for row in rows:
        cells = []
        for value in row:
            special = any(c in value for c in ',"\r\n')
            if special or (not plain and draw(st.integers(0, 9)) == 0):
                cells.append('"' + value.replace('"', '""') + '"')
            else:
                cells.append(value)
        line = ",".join(cells)
        if not plain and draw(st.integers(0, 19)) == 0:
            line += '"oops'  # a stray quote, maybe opening a quoted field
        lines.append(line)
    ending = draw(st.sampled_from(["\n", "\r\n", "mixed"]))
    text = ""
    for line in lines:
        text += line + (draw(st.sampled_from(["\n", "\r\n"])) if ending == "mixed" else ending)
    if draw(st.booleans()):
        text = text.rstrip("\r\n")
    bom = "\ufeff" if draw(st.booleans()) else ""
    return (bom + text).encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=nasty_csv())
def test_nasty_csv_gives_the_reference_bytes_on_every_path(
    block_mapper: Mapper, data: bytes
) -> None:
    try:
        reference(block_mapper, data)
    except ValueError:
        with pytest.raises(InvalidInput) as caught:
            run(block_mapper, data)
        assert caught.value.field == "header"
        return
    check_all_paths(block_mapper, data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans(), seed=st.integers(0, 2**32 - 1))
def test_any_plan_answers_every_row_like_reverse(plan: Any, seed: int) -> None:
    mapper = compile_plan(plan)
    rng = np.random.default_rng(seed)
    bases = [0xC0000200, 0xC6336400, 0xCB007100, 0x0A000000, 0x08080800]
    rows = ["port,ip"]
    for _ in range(200):
        address = bases[rng.integers(0, len(bases))] + int(rng.integers(0, 256))
        text = ".".join(str((address >> s) & 255) for s in (24, 16, 8, 0))
        rows.append(f"{rng.integers(0, 65536)},{text}")
    check_all_paths(mapper, ("\n".join(rows) + "\n").encode())


# -- IPv6 subscribers (DS-Lite): texts made with numpy, byte for byte the engine's ----------------

HEXTET = st.sampled_from([0, 0, 0, 1, 0xDB8, 0xFFFF]) | st.integers(0, 0xFFFF)


@st.composite
def ipv6_address(draw: st.DrawFn) -> int:
    """Addresses rich in zero runs (of every length, ties included) and IPv4-mapped ones."""
    if draw(st.integers(0, 5)) == 0:
        return (0xFFFF << 32) | draw(st.integers(0, (1 << 32) - 1))
    hextets = draw(st.lists(HEXTET, min_size=8, max_size=8))
    return int.from_bytes(b"".join(h.to_bytes(2, "big") for h in hextets), "big")


@st.composite
def ipv6_block_plans(draw: st.DrawFn) -> str:
    """A DS-Lite ``block`` plan: one or two IPv6 inside prefixes of up to 512 subscribers, /48
    to /128 each, anywhere (``::`` at the start or end, IPv4-mapped space)."""
    length = draw(st.integers(48, 128))
    inside: list[Prefix] = []
    for _ in range(draw(st.integers(1, 2))):
        prefix_length = length - draw(st.integers(0, 9))
        mask = ((1 << prefix_length) - 1) << (128 - prefix_length)
        prefix = Prefix(V6, draw(ipv6_address()) & mask, prefix_length)
        assume(not any(prefix.overlaps(other) for other in inside))
        inside.append(prefix)
    subscribers = sum(1 << (length - p.length) for p in inside)
    assignment = draw(st.sampled_from(["sequential", "staggered"]))
    return f"""
algorithm: block
inside: {{prefixes: [{", ".join(f'"{p}"' for p in inside)}], subscriber_prefix_length: {length}}}
outside: {{prefixes: ["192.0.2.0/24"]}}
ports: {{first: 1024, last: 65535}}
block: {{ratio: {-(-subscribers // 256)}, assignment: {assignment}}}
"""


def dslite_plan(inside: str, length: int) -> str:
    return f"""
algorithm: block
inside: {{prefixes: [{inside}], subscriber_prefix_length: {length}}}
outside: {{prefixes: ["192.0.2.0/24"]}}
ports: {{first: 1024, last: 65535}}
block: {{ratio: 4, assignment: sequential}}
"""


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=ipv6_block_plans(), seed=st.integers(0, 2**32 - 1))
@example(plan=dslite_plan('"2001:db8::/56"', 64), seed=0)  # 2001:db8::/64, 2001:db8:0:1::/64
@example(plan=dslite_plan('"::/120", "ff00::/120"', 128), seed=0)  # ::/128, ::1/128, ff00::ff
@example(plan=dslite_plan('"::ffff:0:0/118"', 128), seed=0)  # ::ffff:0.0.0.0/128 ...
@example(plan=dslite_plan('"0:0:1:0:0:1::/119"', 128), seed=0)  # ties: the first run is ::
@example(plan=dslite_plan('"1::/121", "0:0:1::/121"', 128), seed=0)  # 1::, 0:0:1::7f
@example(plan=dslite_plan('"::fffe:ffff:ff00/120"', 128), seed=0)  # next to IPv4-mapped space
@example(plan=dslite_plan('"2001:db8:1000::/48"', 56), seed=0)  # the bench plan's shape
def test_ipv6_subscriber_texts_are_the_engines(plan: str, seed: int) -> None:
    mapper = compile_plan(plan_from_text(plan))
    texts = SubscriberTexts.of(mapper)
    assert texts is not None
    numbers = np.random.default_rng(seed).permutation(mapper.subscriber_count)
    expected = [str(mapper.subscriber_at(i)).encode() for i in numbers.tolist()]
    for made in (texts._make, texts.texts, texts.texts):  # direct; filling the pages; kept
        rows, lengths = made(numbers)
        assert [row[:k].tobytes() for row, k in zip(rows, lengths.tolist(), strict=True)] == (
            expected
        )
        assert not any(row[k:].any() for row, k in zip(rows, lengths.tolist(), strict=True))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=ipv6_block_plans(), seed=st.integers(0, 2**32 - 1))
@example(plan=dslite_plan('"::ffff:0:0/118"', 128), seed=0)
@example(plan=dslite_plan('"::/120", "ff00::/120"', 128), seed=0)
def test_ipv6_block_plans_answer_every_row_like_reverse(plan: str, seed: int) -> None:
    mapper = compile_plan(plan_from_text(plan))
    rng = np.random.default_rng(seed)
    rows = ["ip,port"]
    for _ in range(300):
        rows.append(f"192.0.2.{rng.integers(0, 256)},{rng.integers(1024, 65536)}")
    check_all_paths(mapper, ("\n".join(rows) + "\n").encode())


@settings(max_examples=300, deadline=None)
@given(
    addresses=st.lists(ipv6_address(), min_size=1, max_size=40),
    tail=st.sampled_from([b"", b"/48", b"/56", b"/128"]),
)
@example(addresses=[0, 1, 1 << 112, (1 << 128) - 1, 0xFFFF << 32, 0xFFFE << 32], tail=b"/128")
def test_ipv6_addresses_are_written_like_the_engine_writes_them(
    addresses: list[int], tail: bytes
) -> None:
    high = np.array([a >> 64 for a in addresses], dtype=np.uint64)
    low = np.array([a & ((1 << 64) - 1) for a in addresses], dtype=np.uint64)
    rows, lengths = format_ipv6_many(high, low, tail)
    for address, row, length in zip(addresses, rows, lengths.tolist(), strict=True):
        assert row[:length].tobytes() == format_address(V6, address).encode() + tail
        assert not row[length:].any()
