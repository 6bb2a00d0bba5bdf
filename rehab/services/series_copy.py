"""Daily logs read from PostgreSQL with `COPY (SELECT …) TO STDOUT (FORMAT BINARY)`, straight
into numpy arrays, and turned into the log columns of `PatientSeries`.

Why: the periodic scan reads every patient's year of logs (10 000 patients are 3.65 M rows).
As Python row objects that costs more than the detection itself (`rehab bench detect`); as
binary COPY it is one message per row, parsed by numpy in one call.

How: the SELECT makes every row fixed-width — NULLs become sentinels (adherence NaN, which the
column's CHECK rules out; leg side code 0), the leg side a small integer, the four red-flag
booleans one bit mask — so the COPY stream is the 19-byte header, then rows of identical
layout (field count, then a length and a big-endian value per field), then a 2-byte trailer:
`np.frombuffer` with a big-endian structured dtype reads it whole. Dates arrive as days since
2000-01-01 (PostgreSQL's epoch) and become `date` objects through a small lookup table, so a
batch shares one object per calendar day.

The reading loop calls libpq's `PQgetCopyData` (psycopg's `PGconn.get_copy_data`) directly for
the data rows and leaves the start and the end of the COPY to psycopg's `Copy`: iterating
`Copy` itself costs a few Python calls per row, several times more than the parse.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from rehab.db.models import SessionLog
from rehab.domain.vocabulary import RedFlag, Side

PG_EPOCH = dt.date(2000, 1, 1)
_PG_EPOCH_ORDINAL = PG_EPOCH.toordinal()
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
HEADER_BYTES = 19  # signature (11), flags (4), header extension length (4, zero)
TRAILER = b"\xff\xff"  # a field count of -1

SIDES: tuple[str, ...] = tuple(side.value for side in Side)  # code i + 1; 0 is NULL
FLAGS: tuple[str, ...] = tuple(flag.value for flag in RedFlag)  # bit i

# (name, big-endian type): the SELECT below yields exactly these, in this order, never NULL.
_FIELDS: tuple[tuple[str, str], ...] = (
    ("patient_id", ">i4"),
    ("day", ">i4"),
    ("back_pain", ">i2"),
    ("leg_pain", ">i2"),
    ("adherence", ">f8"),
    ("leg_side", ">i2"),
    ("red_flags", ">i2"),
)
ROW_DTYPE = np.dtype(
    [("field_count", ">i2")]
    + [
        item
        for i, (name, kind) in enumerate(_FIELDS)
        for item in ((f"_len{i}", ">i4"), (name, kind))
    ]
)

IntArray = npt.NDArray[np.int64]


def _column(name: str) -> sql.Identifier:
    # The model's column names, so a rename fails loudly here rather than reading garbage.
    return sql.Identifier(SessionLog.__table__.c[name].name)


def _select_sql() -> sql.Composed:
    side = sql.SQL(" ").join(
        sql.SQL("WHEN {} THEN {}").format(sql.Literal(value), sql.Literal(code))
        for code, value in enumerate(SIDES, start=1)
    )
    flags = sql.SQL(" + ").join(
        sql.SQL("({}::int4 * {})").format(_column(f"red_flag_{flag}"), sql.Literal(1 << bit))
        for bit, flag in enumerate(FLAGS)
    )
    return sql.SQL(
        "SELECT {pid}::int4, {date}, {back}::int2, {leg}::int2,"
        " COALESCE({adh}::float8, 'NaN'::float8),"
        " (CASE {side} {when} ELSE 0 END)::int2, ({flags})::int2"
        " FROM {table}"
    ).format(
        pid=_column("patient_id"),
        date=_column("log_date"),
        back=_column("back_pain"),
        leg=_column("leg_pain"),
        adh=_column("adherence"),
        side=_column("leg_side"),
        when=side,
        flags=flags,
        table=sql.Identifier(SessionLog.__tablename__),
    )


_SELECT = _select_sql()


def log_query(
    patient_ids: Sequence[int] | None, since: dt.date | None, *, ordered: bool = True
) -> sql.Composed:
    """The COPY statement for these patients' logs (None: every patient's) dated `since` on,
    ordered by patient and date unless `ordered` is false."""
    where: list[sql.Composable] = []
    if patient_ids is not None:
        ids = sorted({int(i) for i in patient_ids})
        where.append(
            sql.SQL("{} = ANY({}::int4[])").format(_column("patient_id"), sql.Literal(ids))
        )
    if since is not None:
        where.append(sql.SQL("{} >= {}").format(_column("log_date"), sql.Literal(since)))
    query = _SELECT
    if where:
        query = sql.SQL("{} WHERE {}").format(query, sql.SQL(" AND ").join(where))
    if ordered:
        query = sql.SQL("{} ORDER BY {}, {}").format(
            query, _column("patient_id"), _column("log_date")
        )
    return sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(query)


def copy_out(conn: psycopg.Connection[Any], statement: sql.Composed) -> bytes:
    """The whole output of a binary `COPY … TO STDOUT`, header and trailer included."""
    pgconn = conn.pgconn
    chunks: list[Any] = []
    append = chunks.append
    with conn.cursor() as cursor, cursor.copy(statement):
        get = pgconn.get_copy_data
        while True:
            # Blocking: one CopyData message (one row; the header comes with the first, the
            # trailer alone), or -1 once the COPY is over.
            nbytes, data = get(0)
            if nbytes < 0:
                break
            append(data)
        # The COPY's own result (what `Copy` would read): COMMAND_OK, or the server's error.
        errors = []
        while (result := pgconn.get_result()) is not None:
            if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
                message = result.error_message or b"COPY failed"
                errors.append(message.decode(errors="replace").strip())
        if errors:
            # The transaction is aborted; the connection itself stays usable (rollback).
            raise psycopg.OperationalError("; ".join(errors))
    return b"".join(chunks)


def parse_rows(buffer: bytes) -> npt.NDArray[Any]:
    """The rows of a binary COPY in `ROW_DTYPE` (still big-endian), checked for layout."""
    if len(buffer) < HEADER_BYTES + 2 or not buffer.startswith(_SIGNATURE):
        raise ValueError("not a binary COPY stream")
    body = len(buffer) - HEADER_BYTES - 2
    if body % ROW_DTYPE.itemsize or buffer[-2:] != TRAILER:
        raise ValueError("binary COPY rows are not of the expected fixed width")
    rows = np.frombuffer(buffer, ROW_DTYPE, count=body // ROW_DTYPE.itemsize, offset=HEADER_BYTES)
    if rows.shape[0] and not (
        bool(np.all(rows["field_count"] == len(_FIELDS)))
        and all(
            bool(np.all(rows[f"_len{i}"] == np.dtype(kind).itemsize))
            for i, (_, kind) in enumerate(_FIELDS)
        )
    ):
        raise ValueError("binary COPY row with an unexpected field count or a NULL")
    return rows


@dataclass(frozen=True)
class LogArrays:
    """Log rows as native numpy columns, in the order read."""

    patient_id: IntArray
    day: npt.NDArray[np.int32]  # days since 2000-01-01
    back_pain: npt.NDArray[np.int16]
    leg_pain: npt.NDArray[np.int16]
    adherence: npt.NDArray[np.float64]  # NaN: not known
    leg_side: npt.NDArray[np.int16]  # 0: none, else SIDES[code - 1]
    red_flags: npt.NDArray[np.int16]  # bit i: FLAGS[i]

    def __len__(self) -> int:
        return int(self.patient_id.shape[0])

    @classmethod
    def from_rows(cls, rows: npt.NDArray[Any]) -> LogArrays:
        def native(name: str) -> Any:
            column = rows[name]
            return column.astype(column.dtype.newbyteorder("="))

        return cls(
            patient_id=rows["patient_id"].astype(np.int64),
            day=native("day"),
            back_pain=native("back_pain"),
            leg_pain=native("leg_pain"),
            adherence=native("adherence"),
            leg_side=native("leg_side"),
            red_flags=native("red_flags"),
        )


def read_log_arrays(
    conn: psycopg.Connection[Any],
    patient_ids: Sequence[int] | None,
    since: dt.date | None,
    *,
    ordered: bool = True,
) -> LogArrays:
    """The logs of these patients (None: all) dated `since` on, as numpy columns."""
    return LogArrays.from_rows(
        parse_rows(copy_out(conn, log_query(patient_ids, since, ordered=ordered)))
    )


# Per patient: dates, back pain, leg pain, adherence, leg side, red flags (PatientSeries order).
LogColumns = tuple[
    tuple[dt.date, ...],
    tuple[int, ...],
    tuple[int, ...],
    tuple[float | None, ...],
    tuple[str | None, ...],
    tuple[tuple[str, ...], ...],
]

_SIDE_TABLE = np.array([None, *SIDES], dtype=object)
_FLAG_TABLE = np.empty(1 << len(FLAGS), dtype=object)
for _mask in range(1 << len(FLAGS)):
    _FLAG_TABLE[_mask] = tuple(flag for bit, flag in enumerate(FLAGS) if _mask >> bit & 1)


def log_columns(arrays: LogArrays) -> dict[int, LogColumns]:
    """The PatientSeries log columns of each patient, from arrays ordered by patient and date
    (the values `load_series` builds from SELECTed rows: ints, floats or None, side and flag
    strings, `date` objects)."""
    n = len(arrays)
    if n == 0:
        return {}
    pid = arrays.patient_id
    if n > 1 and not bool(
        np.all((pid[1:] > pid[:-1]) | ((pid[1:] == pid[:-1]) & (arrays.day[1:] > arrays.day[:-1])))
    ):
        raise ValueError("log rows are not ordered by patient and date")
    first_day = int(arrays.day.min())
    calendar = np.array(
        [
            dt.date.fromordinal(_PG_EPOCH_ORDINAL + d)
            for d in range(first_day, int(arrays.day.max()) + 1)
        ],
        dtype=object,
    )
    dates = calendar[arrays.day - first_day].tolist()
    back = arrays.back_pain.tolist()
    leg = arrays.leg_pain.tolist()
    adherence_obj = arrays.adherence.astype(object)
    adherence_obj[np.isnan(arrays.adherence)] = None
    adherence = adherence_obj.tolist()
    sides = _SIDE_TABLE[arrays.leg_side].tolist()
    flags = _FLAG_TABLE[arrays.red_flags].tolist()
    starts = np.flatnonzero(np.concatenate(([True], pid[1:] != pid[:-1])))
    ends = np.append(starts[1:], n)
    out: dict[int, LogColumns] = {}
    for patient, s, e in zip(pid[starts].tolist(), starts.tolist(), ends.tolist(), strict=True):
        out[patient] = (
            tuple(dates[s:e]),
            tuple(back[s:e]),
            tuple(leg[s:e]),
            tuple(adherence[s:e]),
            tuple(sides[s:e]),
            tuple(flags[s:e]),
        )
    return out
