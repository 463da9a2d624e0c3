"""An annotated Parquet file made by copying the input's column chunks; only the answers encoded.

An annotated file is the input's columns and the five answer columns. Decoding the input's columns
and encoding them again was most of the cost of ``detnat annotate`` (and one thread did all of it,
in order). Here each input row group's column chunks -- their pages, compressed, untouched -- are
copied as they are, followed by the answer columns of the same rows, encoded by pyarrow into a
one-row-group Parquet file in memory (:func:`encode_answers`, on any thread); the footer is the
input's, each row group's column chunks extended by the answers' and every byte offset moved to
where the bytes now sit. Readers see an ordinary Parquet file: the input's values, then the answers.

Worked example: input ``PAR1 | group 0: a b c | group 1: a b c | footer``, answers ``s t`` for
each group, gives ``PAR1 | a b c s t | a b c s t | footer'`` where ``footer'`` is the input's
footer with ``s t`` appended to each row group and its schema, the offsets moved.

The footer is Thrift's compact protocol, read and written generically (:func:`read_struct`,
:func:`write_struct`): every field is kept as it was except offsets, sizes and counts; page
indexes and bloom filters, which live outside the row groups, are not copied (their references
dropped). Files this cannot copy faithfully -- encrypted, column chunks in other files, empty, or
row groups too large to hold in memory a few at a time -- are refused by :func:`copyable`
(``None``), and the caller re-encodes them.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

MAGIC = b"PAR1"
MAX_GROUP_ROWS = 1 << 21  # a few row groups and their answers in flight stay well under 1 GB

# Thrift compact protocol type codes.
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)

# Field ids of parquet.thrift used here.
_FILE_SCHEMA, _FILE_ROWS, _FILE_GROUPS, _FILE_KV, _FILE_ORDERS = 2, 3, 4, 5, 7
_FILE_ENCRYPTION, _FILE_SIGNING_KEY = 8, 9
_SCHEMA_CHILDREN = 5
_GROUP_COLUMNS, _GROUP_BYTES, _GROUP_ROWS, _GROUP_OFFSET, _GROUP_COMPRESSED, _GROUP_ORDINAL = (
    1,
    2,
    3,
    5,
    6,
    7,
)
_CHUNK_PATH, _CHUNK_OFFSET, _CHUNK_META = 1, 2, 3
_CHUNK_PAGE_INDEX = (4, 5, 6, 7)  # offset index and column index: outside the row group
_CHUNK_CRYPTO = (8, 9)
_META_COMPRESSED, _META_DATA_PAGE, _META_INDEX_PAGE, _META_DICTIONARY_PAGE = 7, 9, 10, 11
_META_BLOOM = (14, 15)  # bloom filter offset and length: outside the row group

Struct = dict[
    int, tuple[int, Any]
]  # field id -> (compact type, value); lists: (element type, items)


# -- Thrift compact protocol -------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def byte(self) -> int:
        self.at += 1
        return self.data[self.at - 1]

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def value(self, kind: int) -> Any:
        if kind in (_TRUE, _FALSE):  # a list's element: one byte
            return self.byte() == _TRUE
        if kind == _BYTE:
            return struct.unpack("b", bytes([self.byte()]))[0]
        if kind in (_I16, _I32, _I64):
            return self.zigzag()
        if kind == _DOUBLE:
            self.at += 8
            return struct.unpack("<d", self.data[self.at - 8 : self.at])[0]
        if kind == _BINARY:
            n = self.varint()
            self.at += n
            return self.data[self.at - n : self.at]
        if kind in (_LIST, _SET):
            head = self.byte()
            size, element = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            return (element, [self.value(element) for _ in range(size)])
        if kind == _MAP:
            size = self.varint()
            kinds = self.byte() if size else 0
            pairs = [(self.value(kinds >> 4), self.value(kinds & 0x0F)) for _ in range(size)]
            return (kinds, pairs)
        if kind == _STRUCT:
            return self.struct()
        raise ValueError(f"unknown Thrift compact type {kind}")

    def struct(self) -> Struct:
        fields: Struct = {}
        last = 0
        while True:
            head = self.byte()
            if head == 0:
                return fields
            kind, delta = head & 0x0F, head >> 4
            last = last + delta if delta else self.zigzag()
            if kind in (_TRUE, _FALSE):
                fields[last] = (_TRUE, kind == _TRUE)
            else:
                fields[last] = (kind, self.value(kind))


def read_struct(data: bytes) -> tuple[Struct, int]:
    """A compact-protocol struct at the start of ``data``, and the bytes it took."""
    reader = _Reader(data)
    return reader.struct(), reader.at


def _varint(n: int, out: bytearray) -> None:
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _zigzag(n: int, out: bytearray) -> None:
    _varint((n << 1) ^ (n >> 63), out)


def _write_value(kind: int, value: Any, out: bytearray) -> None:
    if kind in (_TRUE, _FALSE):
        out.append(_TRUE if value else _FALSE)
    elif kind == _BYTE:
        out += struct.pack("b", value)
    elif kind in (_I16, _I32, _I64):
        _zigzag(value, out)
    elif kind == _DOUBLE:
        out += struct.pack("<d", value)
    elif kind == _BINARY:
        _varint(len(value), out)
        out += value
    elif kind in (_LIST, _SET):
        element, items = value
        if len(items) < 15:
            out.append(len(items) << 4 | element)
        else:
            out.append(0xF0 | element)
            _varint(len(items), out)
        for item in items:
            _write_value(element, item, out)
    elif kind == _MAP:
        kinds, pairs = value
        _varint(len(pairs), out)
        if pairs:
            out.append(kinds)
        for k, v in pairs:
            _write_value(kinds >> 4, k, out)
            _write_value(kinds & 0x0F, v, out)
    elif kind == _STRUCT:
        _write_fields(value, out)
    else:
        raise ValueError(f"unknown Thrift compact type {kind}")


def _write_fields(fields: Struct, out: bytearray) -> None:
    last = 0
    for number in sorted(fields):
        kind, value = fields[number]
        head = (_TRUE if value else _FALSE) if kind == _TRUE else kind
        if 0 < number - last <= 15:
            out.append((number - last) << 4 | head)
        else:
            out.append(head)
            _zigzag(number, out)
        if kind != _TRUE:
            _write_value(kind, value, out)
        last = number
    out.append(0)


def write_struct(fields: Struct) -> bytes:
    """``fields`` in the compact protocol (fields in ascending id order)."""
    out = bytearray()
    _write_fields(fields, out)
    return bytes(out)


# -- Parquet footers ------------------------------------------------------------------------------


def footer_of(data: bytes) -> tuple[Struct, int]:
    """The FileMetaData of a whole Parquet file in ``data``, and where the footer starts."""
    if data[-4:] != MAGIC or data[:4] != MAGIC:
        raise ValueError("not a plain Parquet file")
    (length,) = struct.unpack("<I", data[-8:-4])
    start = len(data) - 8 - length
    return read_struct(data[start:-8])[0], start


def _read_footer(raw: BinaryIO) -> Struct | None:
    size = raw.seek(0, os.SEEK_END)
    if size < 12:
        return None
    raw.seek(size - 8)
    tail = raw.read(8)
    raw.seek(0)
    if tail[4:] != MAGIC or raw.read(4) != MAGIC:
        return None  # PARE: an encrypted footer
    (length,) = struct.unpack("<I", tail[:4])
    if length > size - 12:
        return None
    raw.seek(size - 8 - length)
    return read_struct(raw.read(length))[0]


def _chunk_start(meta: Struct) -> int:
    data_page = int(meta[_META_DATA_PAGE][1])
    if _META_DICTIONARY_PAGE in meta:
        dictionary = int(meta[_META_DICTIONARY_PAGE][1])
        if 0 < dictionary < data_page:
            return dictionary
    return data_page


def _moved(chunk: Struct, by: int) -> Struct:
    """A ColumnChunk whose pages sit ``by`` bytes further on; page index and bloom filter
    references dropped (they are not copied)."""
    meta = dict(chunk[_CHUNK_META][1])
    for number in (_META_DATA_PAGE, _META_INDEX_PAGE, _META_DICTIONARY_PAGE):
        if number in meta:
            kind, offset = meta[number]
            meta[number] = (kind, offset + by)
    for number in _META_BLOOM:
        meta.pop(number, None)
    moved = {k: v for k, v in chunk.items() if k not in _CHUNK_PAGE_INDEX}
    moved[_CHUNK_META] = (_STRUCT, meta)
    if _CHUNK_OFFSET in moved and moved[_CHUNK_OFFSET][1] > 0:
        kind, offset = moved[_CHUNK_OFFSET]
        moved[_CHUNK_OFFSET] = (kind, offset + by)
    return moved


@dataclass(frozen=True)
class Group:
    """One input row group: its number, rows, the bytes of its column chunks, their metadata."""

    index: int
    rows: int
    start: int
    end: int
    fields: Struct


@dataclass(frozen=True)
class Input:
    """An input file whose column chunks can be copied (see :func:`copyable`)."""

    path: str
    footer: Struct
    groups: tuple[Group, ...]
    metadata: pq.FileMetaData
    arrow_schema: pa.Schema


def copyable(path: str, *, max_group_rows: int = MAX_GROUP_ROWS) -> Input | None:
    """The input's row groups, if its column chunks can be copied into the output as they are;
    ``None`` when the file must be re-encoded (not a plain Parquet file, encrypted, column
    chunks in another file, no rows, a row group of more than ``max_group_rows`` rows)."""
    try:
        with open(path, "rb") as raw:
            footer = _read_footer(raw)
        parquet = pq.ParquetFile(path)
    except (OSError, ValueError, IndexError, pa.ArrowException):
        return None
    if footer is None or _FILE_ENCRYPTION in footer or _FILE_SIGNING_KEY in footer:
        return None
    groups = []
    listed = footer[_FILE_GROUPS][1][1] if _FILE_GROUPS in footer else []
    for index, fields in enumerate(listed):
        rows = int(fields[_GROUP_ROWS][1])
        chunks = fields[_GROUP_COLUMNS][1][1]
        if rows > max_group_rows or not chunks:
            return None
        if any(
            _CHUNK_PATH in c or _CHUNK_META not in c or any(n in c for n in _CHUNK_CRYPTO)
            for c in chunks
        ):
            return None
        metas = [c[_CHUNK_META][1] for c in chunks]
        if any(_META_DATA_PAGE not in m or _META_COMPRESSED not in m for m in metas):
            return None
        start = min(_chunk_start(m) for m in metas)
        end = max(_chunk_start(m) + int(m[_META_COMPRESSED][1]) for m in metas)
        if rows:
            groups.append(Group(index, rows, start, end, fields))
    if not groups:
        return None
    return Input(path, footer, tuple(groups), parquet.metadata, parquet.schema_arrow)


# -- the answers, and the file -----------------------------------------------------------------


@dataclass(frozen=True)
class Answers:
    """The answer columns of one row group, encoded: the pages, and their footer entries
    (offsets counted from the first page)."""

    body: bytes
    group: Struct
    schema: list[Struct]
    orders: list[Struct] | None


def encode_answers(table: pa.Table, *, use_dictionary: list[str], statistics: list[str]) -> Answers:
    """``table`` as one Parquet row group, in memory (pyarrow releases the GIL while it encodes:
    call it on several threads)."""
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(
        sink,
        table.schema,
        use_dictionary=use_dictionary,
        write_statistics=statistics,
        store_schema=False,
    ) as writer:
        writer.write_table(table, row_group_size=max(table.num_rows, 1))
    data = sink.getvalue().to_pybytes()
    footer, start = footer_of(data)
    (group,) = footer[_FILE_GROUPS][1][1]
    moved = _group_moved(group, -len(MAGIC))
    orders = footer[_FILE_ORDERS][1][1] if _FILE_ORDERS in footer else None
    return Answers(data[len(MAGIC) : start], moved, footer[_FILE_SCHEMA][1][1][1:], orders)


def _group_moved(group: Struct, by: int) -> Struct:
    out = dict(group)
    _, chunks = group[_GROUP_COLUMNS][1]
    out[_GROUP_COLUMNS] = (_LIST, (_STRUCT, [_moved(c, by) for c in chunks]))
    if _GROUP_OFFSET in out:
        out[_GROUP_OFFSET] = (out[_GROUP_OFFSET][0], out[_GROUP_OFFSET][1] + by)
    return out


class Writer:
    """Writes ``PAR1``, then each row group's copied chunks and its answers, then the footer."""

    def __init__(self, out: BinaryIO, source: Input) -> None:
        self.out = out
        self.source = source
        self.at = 0
        self.groups: list[Struct] = []
        self.schema: list[Struct] | None = None
        self.orders: list[Struct] | None = None
        self.rows = 0
        self._put(MAGIC)

    def _put(self, data: bytes) -> None:
        self.out.write(data)
        self.at += len(data)

    def write_group(self, group: Group, copied: bytes, answers: Answers) -> None:
        """One input row group's chunks (the bytes ``group.start:group.end`` of the input) and
        the answers of its rows."""
        if (
            int(answers.group[_GROUP_ROWS][1]) != group.rows
            or len(copied) != group.end - group.start
        ):
            raise ValueError("answers and row group disagree")
        mine = _group_moved(group.fields, self.at - group.start)
        self._put(copied)
        theirs = _group_moved(answers.group, self.at)
        self._put(answers.body)
        merged = dict(mine)
        columns = [*mine[_GROUP_COLUMNS][1][1], *theirs[_GROUP_COLUMNS][1][1]]
        merged[_GROUP_COLUMNS] = (_LIST, (_STRUCT, columns))
        merged[_GROUP_BYTES] = (_I64, mine[_GROUP_BYTES][1] + theirs[_GROUP_BYTES][1])
        copied_size = sum(int(c[_CHUNK_META][1][_META_COMPRESSED][1]) for c in columns)
        merged[_GROUP_COMPRESSED] = (_I64, copied_size)
        merged[_GROUP_OFFSET] = (_I64, self.at - len(answers.body) - len(copied))
        merged[_GROUP_ORDINAL] = (_I16, len(self.groups))
        self.groups.append(merged)
        self.rows += group.rows
        self.schema, self.orders = answers.schema, answers.orders

    def close(self, metadata: dict[str, str]) -> None:
        """The footer: the input's, with the answers' columns, these row groups and
        ``metadata`` as its key-value metadata."""
        footer = dict(self.source.footer)
        elements = list(footer[_FILE_SCHEMA][1][1])
        assert self.schema is not None
        root = dict(elements[0])
        root[_SCHEMA_CHILDREN] = (_I32, int(root[_SCHEMA_CHILDREN][1]) + len(self.schema))
        footer[_FILE_SCHEMA] = (_LIST, (_STRUCT, [root, *elements[1:], *self.schema]))
        footer[_FILE_ROWS] = (_I64, self.rows)
        footer[_FILE_GROUPS] = (_LIST, (_STRUCT, self.groups))
        pairs = [{1: (_BINARY, k.encode()), 2: (_BINARY, v.encode())} for k, v in metadata.items()]
        footer[_FILE_KV] = (_LIST, (_STRUCT, pairs))
        if _FILE_ORDERS in footer and self.orders is not None:
            footer[_FILE_ORDERS] = (_LIST, (_STRUCT, [*footer[_FILE_ORDERS][1][1], *self.orders]))
        else:
            footer.pop(_FILE_ORDERS, None)
        encoded = write_struct(footer)
        self._put(encoded + struct.pack("<I", len(encoded)) + MAGIC)


__all__ = ["MAX_GROUP_ROWS", "Answers", "Group", "Input", "Writer", "copyable", "encode_answers"]
