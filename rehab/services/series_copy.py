"""Daily logs read from PostgreSQL as packed binary records into numpy arrays, and split into
each patient's log columns (`ArraySeries`): by `COPY (SELECT …) TO STDOUT (FORMAT BINARY)`
(`read_log_arrays`), or embedded in another statement (`RECORD_SQL`, `records`: the
evaluation reads a batch's logs, events, outcomes and stored alerts in one round trip).

Why: the periodic scan reads a year of logs of every patient (10 000 patients: ~3 M rows). As
Python row objects that costs more than the detection itself; even as a binary COPY with one
row per log, the client pays ~1.5 µs of CPU per CopyData message (libpq, psycopg, Python) and
that dominated the read (`rehab bench detect` measures both).

How: the SELECT packs each log into a fixed-width big-endian record and the server
concatenates the records with `string_agg` — in the COPY, one bytea per 1024 consecutive
patient ids, so no field nears PostgreSQL's 1 GB limit:

    key    int8  patient_id << 32 | days since 0001-01-01 (= date ordinal − 1)
    packed int2  back pain (4 bits) | leg pain (4) | leg side code (2) | red-flag bits (4)
    adh    float8

NULLs become sentinels inside the record (pain 15, side code 0, adherence NaN — the columns'
CHECKs rule those values out), so no record is ever NULL (string_agg would skip it silently;
each row also carries `count(*)`, checked against the records received). The COPY stream is
the 19-byte header, rows of (field count, length + int8 count, length + bytea), and the 2-byte
trailer; `np.frombuffer` reads the concatenated records with a structured dtype. The
evaluation hands the columns to the detector as arrays (`patient_logs`,
`rehab.domain.series.ArraySeries`): no Python object per number or date.

The reading loop calls libpq's `PQgetCopyData` (psycopg's `PGconn.get_copy_data`) directly and
leaves the start of the COPY to psycopg's `Copy`.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from rehab.db.models import SessionLog
from rehab.domain.vocabulary import RedFlag, Side

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER_BYTES = 19  # signature (11), flags (4), header extension length (4, zero)
TRAILER = b"\xff\xff"  # a field count of -1
GROUP_SHIFT = 10  # one aggregated row per 2**10 consecutive patient ids

SIDES: tuple[str, ...] = tuple(side.value for side in Side)  # code i + 1; 0 is NULL
FLAGS: tuple[str, ...] = tuple(flag.value for flag in RedFlag)  # bit i of the flag field
PAIN_NULL = 15
_SIDE_SHIFT, _FLAG_SHIFT = 8, 10
assert len(SIDES) < 4 and _FLAG_SHIFT + len(FLAGS) <= 15, "the packed int2 is full"

RECORD_DTYPE = np.dtype([("key", ">i8"), ("packed", ">i2"), ("adherence", ">f8")])
_ORDINAL_ZERO = dt.date(1, 1, 1)


def _column(name: str) -> sql.Identifier:
    # The model's column names, so a rename fails here rather than reading something else.
    return sql.Identifier(SessionLog.__table__.c[name].name)


def _record_sql() -> sql.Composed:
    side = sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {}").format(sql.Literal(value), sql.Literal(code))
        for code, value in enumerate(SIDES, start=1)
    )
    flags = sql.SQL(" | ").join(
        sql.SQL("({}::int4 << {})").format(
            _column(f"red_flag_{flag}"), sql.Literal(_FLAG_SHIFT + bit)
        )
        for bit, flag in enumerate(FLAGS)
    )
    return sql.SQL(
        "int8send(({pid}::int8 << 32) | ({date} - {zero}::date))"
        " || int2send((COALESCE({back}, {null}) | (COALESCE({leg}, {null}) << 4)"
        " | ((CASE {side} {when} ELSE 0 END) << {side_shift}) | {flags})::int2)"
        " || float8send(COALESCE({adh}::float8, 'NaN'::float8))"
    ).format(
        pid=_column("patient_id"),
        date=_column("log_date"),
        zero=sql.Literal(_ORDINAL_ZERO.isoformat()),
        back=_column("back_pain"),
        leg=_column("leg_pain"),
        null=sql.Literal(PAIN_NULL),
        side=_column("leg_side"),
        when=side,
        side_shift=sql.Literal(_SIDE_SHIFT),
        flags=flags,
        adh=_column("adherence"),
    )


_RECORD = _record_sql()
# The same expression as SQL text, to embed in a SQLAlchemy statement (model names only).
RECORD_SQL = _RECORD.as_string(None)


def log_query(patient_ids: Sequence[int] | None, since: dt.date | None) -> sql.Composed:
    """The COPY statement for these patients' logs (None: every patient's) dated `since` on."""
    where: list[sql.Composable] = []
    if patient_ids is not None:
        ids = sorted({int(i) for i in patient_ids})
        where.append(
            sql.SQL("{} = ANY({}::int4[])").format(_column("patient_id"), sql.Literal(ids))
        )
    if since is not None:
        where.append(sql.SQL("{} >= {}").format(_column("log_date"), sql.Literal(since)))
    query = sql.SQL("SELECT count(*), string_agg({}, ''::bytea) FROM {}").format(
        _RECORD, sql.Identifier(SessionLog.__tablename__)
    )
    if where:
        query = sql.SQL("{} WHERE {}").format(query, sql.SQL(" AND ").join(where))
    query = sql.SQL("{} GROUP BY {} >> {}").format(
        query, _column("patient_id"), sql.Literal(GROUP_SHIFT)
    )
    return sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(query)


def copy_out(conn: psycopg.Connection[Any], statement: sql.Composed) -> bytes:
    """The whole output of a `COPY … TO STDOUT`, in the connection's current transaction."""
    pgconn = conn.pgconn
    chunks: list[Any] = []
    append = chunks.append
    with conn.cursor() as cursor, cursor.copy(statement):
        get = pgconn.get_copy_data
        while True:
            # Blocking: one CopyData message (a row; the header comes with the first, the
            # trailer alone), or -1 once the COPY is over.
            nbytes, data = get(0)
            if nbytes < 0:
                break
            append(data)
        # The COPY's own result (what `Copy` would read next): COMMAND_OK, or the error.
        errors = []
        while (result := pgconn.get_result()) is not None:
            if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
                message = result.error_message or b"COPY failed"
                errors.append(message.decode(errors="replace").strip())
        if errors:
            # The transaction is aborted; the connection itself stays usable (rollback).
            raise psycopg.OperationalError("; ".join(errors))
    return b"".join(chunks)


_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")


def parse_records(stream: bytes) -> npt.NDArray[Any]:
    """The log records of a binary COPY of `log_query` (big-endian `RECORD_DTYPE`)."""
    if len(stream) < HEADER_BYTES + 2 or not stream.startswith(SIGNATURE):
        raise ValueError("not a binary COPY stream")
    view = memoryview(stream)
    blobs: list[memoryview] = []
    expected = 0
    pos = HEADER_BYTES
    while True:
        (fields,) = _INT16.unpack_from(stream, pos)
        pos += 2
        if fields == -1:
            break
        if fields != 2 or _INT32.unpack_from(stream, pos)[0] != 8:
            raise ValueError("unexpected row in the binary COPY of logs")
        expected += _INT64.unpack_from(stream, pos + 4)[0]
        (length,) = _INT32.unpack_from(stream, pos + 12)
        pos += 16
        if length < 0:
            raise ValueError("a NULL aggregate of log records")
        blobs.append(view[pos : pos + length])
        pos += length
    if pos != len(stream):
        raise ValueError("binary COPY of logs: data after the trailer")
    return records(b"".join(blobs), expected)


def records(blob: bytes | None, count: int) -> npt.NDArray[Any]:
    """`count` packed log records (string_agg of `RECORD_SQL`; NULL when there are none)."""
    data = blob or b""
    if len(data) != count * RECORD_DTYPE.itemsize:
        raise ValueError(f"packed logs: {len(data)} bytes for {count} logs")
    return np.frombuffer(data, RECORD_DTYPE)


@dataclass(frozen=True)
class LogArrays:
    """Log rows as native numpy columns, ordered by patient and date."""

    patient_id: npt.NDArray[np.int64]
    ordinal: npt.NDArray[np.int64]  # date.toordinal()
    back_pain: npt.NDArray[np.int16]  # PAIN_NULL: not logged
    leg_pain: npt.NDArray[np.int16]
    adherence: npt.NDArray[np.float64]  # NaN: not known
    leg_side: npt.NDArray[np.int16]  # 0: none, else SIDES[code - 1]
    red_flags: npt.NDArray[np.int16]  # bit i: FLAGS[i]

    def __len__(self) -> int:
        return int(self.patient_id.shape[0])

    @classmethod
    def from_records(cls, records: npt.NDArray[Any]) -> LogArrays:
        key = records["key"].astype(np.int64)
        if key.shape[0] > 1 and not bool(np.all(key[1:] > key[:-1])):
            order = np.argsort(key, kind="stable")
            key, records = key[order], records[order]
            if bool(np.any(key[1:] == key[:-1])):
                raise ValueError("two logs of one patient on one date")
        packed = records["packed"].astype(np.int16)
        return cls(
            patient_id=key >> 32,
            ordinal=(key & 0xFFFFFFFF) + 1,
            back_pain=packed & 0xF,
            leg_pain=(packed >> 4) & 0xF,
            adherence=records["adherence"].astype(np.float64),
            leg_side=(packed >> _SIDE_SHIFT) & 0x3,
            red_flags=(packed >> _FLAG_SHIFT) & ((1 << len(FLAGS)) - 1),
        )


def read_log_arrays(
    conn: psycopg.Connection[Any], patient_ids: Sequence[int] | None, since: dt.date | None
) -> LogArrays:
    """The logs of these patients (None: all) dated `since` on, as numpy columns."""
    return LogArrays.from_records(parse_records(copy_out(conn, log_query(patient_ids, since))))


class PatientLogs(NamedTuple):
    """One patient's logs as `ArraySeries` takes them (views into the batch's arrays)."""

    ordinal: npt.NDArray[np.int64]
    back_pain: npt.NDArray[np.float64]  # NaN: not logged
    leg_pain: npt.NDArray[np.float64]
    adherence: npt.NDArray[np.float64]  # NaN: not known
    red_flags: list[tuple[str, ...]]
    leg_side: list[str | None]


_SIDE_TABLE = np.array([None, *SIDES], dtype=object)
_FLAG_TABLE = np.empty(1 << len(FLAGS), dtype=object)
for _mask in range(1 << len(FLAGS)):
    _FLAG_TABLE[_mask] = tuple(flag for bit, flag in enumerate(FLAGS) if _mask >> bit & 1)


def _ratings(values: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
    out = values.astype(np.float64)
    out[values == PAIN_NULL] = np.nan
    return out


def patient_logs(arrays: LogArrays) -> dict[int, PatientLogs]:
    """Each patient's logs, for `ArraySeries`: numbers stay in arrays (one slice per patient);
    red flags and sides become the strings a PatientSeries holds (`_FLAG_TABLE`, `_SIDE_TABLE`:
    one shared tuple or string per distinct value)."""
    n = len(arrays)
    if n == 0:
        return {}
    back = _ratings(arrays.back_pain)
    leg = _ratings(arrays.leg_pain)
    sides = _SIDE_TABLE[arrays.leg_side].tolist()
    flags = _FLAG_TABLE[arrays.red_flags].tolist()
    pid = arrays.patient_id
    starts = np.flatnonzero(np.concatenate(([True], pid[1:] != pid[:-1])))
    ends = np.append(starts[1:], n)
    return {
        patient: PatientLogs(
            arrays.ordinal[s:e],
            back[s:e],
            leg[s:e],
            arrays.adherence[s:e],
            flags[s:e],
            sides[s:e],
        )
        for patient, s, e in zip(pid[starts].tolist(), starts.tolist(), ends.tolist(), strict=True)
    }
