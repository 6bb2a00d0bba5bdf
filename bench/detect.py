"""`rehab bench detect`: the periodic detection scan over a year of logs of 10 000 patients in
PostgreSQL, against the fastest raw read of the same rows, measured in the same run; and the
evaluation of one patient after one new log.

- **data**: a seeded synthetic clinic (`rehab.domain.simulation`'s cohort generator: trajectory
  classes, autocorrelated noise, benign flares, planted regressions, falls and other events,
  bursty missed days, red-flag days, adherence with drops; plus a monthly ODI and a few pinned
  baselines), COPYed in with psycopg's binary `Copy.write_row`: users, care teams (250
  patients and two clinicians each), patients, programs and prescriptions, logs (in arrival
  order: day by day, as production writes them), events, outcome measures, pins. Then
  VACUUM ANALYZE.
- **raw read** (the reference): the rows the scan needs (every log of the last
  `LOOKBACK_DAYS`, the columns detection reads) by one `COPY (SELECT …) TO STDOUT (FORMAT
  BINARY)` parsed into numpy arrays — the same reader the scan uses, on the whole table at
  once, unordered; and, for context, a plain psycopg `fetchall` of the same rows as tuples.
- **scan**: exactly what the `rehab.evaluate_patients` task runs, `evaluation.evaluate_and_commit`
  in the app context on `db.session`, over the batches `scan.batches` makes of every patient:
  first run (every episode of the year is stored: alerts, audit rows, notifications, delivery
  tasks sent to Redis after each commit) and a second run (steady state: nothing new). Peak RSS
  shows memory stays bounded (one batch at a time). Optionally the steady scan again with 2
  processes, each taking every other batch (the 2-core box runs 2 worker processes).
- **incremental**: a new log for today through `logs.record_session_log` (as the API writes it),
  then `evaluation.evaluate_and_commit(session, [patient_id], today)` timed, over ~200 patients.

Every measurement runs in a fresh process (spawned), so its peak RSS is its own, one after the
other against the same database; the figures and ratios come from one run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import math
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import numpy.typing as npt

from bench.results import (
    RESULTS_PATH,
    database_url_option,
    json_option,
    machine_description,
    results_option,
    write_section,
)
from bench.servers import bench_database

SECTION_TITLE = "Detection scan (rehab bench detect)"
PATIENTS_PER_TEAM = 250
SCAN_TARGET_RATIO = 3.0
INCREMENTAL_TARGET_MS = 10.0

Echo = Callable[[str], None]


@dataclass
class DetectOptions:
    patients: int = 10_000
    days: int = 365
    seed: int = 1
    incremental: int = 200
    repeat: int = 2  # reference reads and steady scans: best of this many
    parallel: bool = True
    quick: bool = False
    database_url: str | None = None
    results_path: Path | None = None
    command: str = "rehab bench detect"

    @classmethod
    def quick_form(cls) -> DetectOptions:
        return cls(patients=300, days=120, incremental=20, repeat=1, quick=True)


# --- the clinic ---------------------------------------------------------------------------


@dataclass
class _Chunk:
    """Simulated patients (indexes `first`…) as columns: one entry per log, and lists."""

    first: int
    count: int
    patient: npt.NDArray[np.int32]  # index in the cohort
    day: npt.NDArray[np.int32]  # 0 = the first day
    back_pain: npt.NDArray[np.int16]
    leg_pain: npt.NDArray[np.int16]
    adherence: npt.NDArray[np.float64]  # NaN: NULL
    leg_side: npt.NDArray[np.int8]  # 0: NULL, else 1 + index in Side
    red_flags: npt.NDArray[np.int8]  # bit mask over RedFlag
    events: list[tuple[int, int, str, str]]  # patient, day (may be < 0), type, note
    outcomes: list[tuple[int, int, float]]  # patient, day, ODI score
    pins: list[tuple[int, str, float, int]]  # patient, metric, level, effective day
    classes: dict[str, int]


def _simulate_chunk(seed: int, first: int, count: int, days: int) -> _Chunk:
    """Draw patients `first`… with the cohort generator, as DB-ready columns. The API stores
    both pains on every log (the CSV contract allows a blank): a blank pain takes the
    patient's previous value. A red flag of unspecified kind becomes one of the four."""
    from rehab.domain.simulation import COHORT_PRESETS, simulate_patient
    from rehab.domain.vocabulary import RedFlag, Side

    start = dt.date(2025, 1, 1)
    params = COHORT_PRESETS["default"]
    sides = [s.value for s in Side]
    parts: dict[str, list[Any]] = {k: [] for k in ("p", "d", "b", "l", "a", "s", "f")}
    events: list[tuple[int, int, str, str]] = []
    outcomes: list[tuple[int, int, float]] = []
    pins: list[tuple[int, str, float, int]] = []
    classes: dict[str, int] = {}
    for index in range(first, first + count):
        simulated = simulate_patient(seed, index, params, start, days)
        series = simulated.series
        classes[simulated.trajectory_class] = classes.get(simulated.trajectory_class, 0) + 1
        rng = np.random.default_rng([seed, index, 7])
        n = len(series.dates)
        day = np.fromiter((d.toordinal() for d in series.dates), np.int32, n) - start.toordinal()
        pains = []
        for column in (series.back_pain, series.leg_pain):
            values, last = [], 0
            for v in column:
                last = last if v is None else int(v)
                values.append(last)
            pains.append(np.array(values, dtype=np.int16))
        adherence = np.array(
            [math.nan if a is None else a for a in series.adherence] if series.adherence else [],
            dtype=np.float64,
        )
        side = np.array(
            [0 if s is None else 1 + sides.index(s) for s in series.leg_side], dtype=np.int8
        )
        flags = np.array(
            [(1 << int(rng.integers(0, len(RedFlag)))) if f else 0 for f in series.red_flags],
            dtype=np.int8,
        )
        for name, value in zip(
            "pdblasf",
            (np.full(n, index, np.int32), day, *pains, adherence, side, flags),
            strict=True,
        ):
            parts[name].append(value)
        events += [(index, (e.date - start).days, e.event_type, e.note) for e in series.events]
        # A monthly ODI that follows back pain (0–10 → 10–70), with measurement noise.
        back = pains[0].astype(np.float64)
        for measured in range(14, days, 28):
            recent = back[(day > measured - 8) & (day <= measured)]
            if recent.shape[0]:
                score = 10.0 + 6.0 * float(recent.mean()) + float(rng.normal(0.0, 4.0))
                outcomes.append((index, measured, float(np.clip(round(score), 0, 100))))
        if rng.random() < 0.02 and n > 40:
            level = float(np.median(pains[1][day < 28])) if bool(np.any(day < 28)) else 1.0
            pins.append((index, "leg_pain", level, 28))
    return _Chunk(
        first,
        count,
        np.concatenate(parts["p"]),
        np.concatenate(parts["d"]),
        np.concatenate(parts["b"]),
        np.concatenate(parts["l"]),
        np.concatenate(parts["a"]),
        np.concatenate(parts["s"]),
        np.concatenate(parts["f"]),
        events,
        outcomes,
        pins,
        classes,
    )


def simulate(seed: int, patients: int, days: int, workers: int) -> list[_Chunk]:
    size = 250
    spans = [(first, min(size, patients - first)) for first in range(0, patients, size)]
    if workers <= 1 or len(spans) == 1:
        return [_simulate_chunk(seed, first, count, days) for first, count in spans]
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_simulate_chunk, seed, f, c, days) for f, c in spans]
        return [f.result() for f in futures]


_SKIP = object()


def _default(column: Any) -> Any:
    """What the application would write in a column the bench does not set."""
    default = column.default
    if default is not None and getattr(default, "is_scalar", False):
        value = default.arg
    elif default is not None and getattr(default, "is_callable", False):
        value = default.arg(None)  # SQLAlchemy wraps zero-argument callables to take a context
    elif column.server_default is not None or column.nullable or column.primary_key:
        return _SKIP
    else:
        raise click.ClickException(f"bench detect: no value for {column.table.name}.{column.name}")
    return value.value if isinstance(value, enum.Enum) else value


def copy_rows(conn: Any, model: Any, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """COPY rows into the model's table (binary, types from the catalog); the columns not given
    get the model's defaults, as the application would write them."""
    from psycopg import sql

    table = model.__table__
    extra = [
        (c.name, v)
        for c in table.columns
        if c.name not in columns
        if (v := _default(c)) is not _SKIP
    ]
    names = [*columns, *(name for name, _ in extra)]
    tail = tuple(value for _, value in extra)
    types = dict(
        conn.execute(
            "SELECT attname, atttypid::int FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            (table.name,),
        ).fetchall()
    )
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    count = 0
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types([types[name] for name in names])
        for row in rows:
            copy.write_row((*row, *tail))
            count += 1
    return count


def _next_id(conn: Any, table: str) -> int:
    row = conn.execute(f'SELECT COALESCE(max(id), 0) + 1 FROM "{table}"').fetchone()
    return int(row[0])


def _fix_sequence(conn: Any, table: str) -> None:
    conn.execute(
        f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'),"
        f' (SELECT COALESCE(max(id), 1) FROM "{table}"))'
    )


_FALL_DETAILS = (
    ("stair", "stairs"),
    ("ice", "ice_or_wet"),
    ("shower", "ice_or_wet"),
    ("ladder", "from_height"),
    ("kerb", "level_ground"),
)
_LANDED = ("buttocks", "hip", "back", "feet", "side")


def _fall_columns(note: str) -> tuple[str | None, int | None, int | None, str | None]:
    location = next((loc for word, loc in _FALL_DETAILS if word in note), "other")
    steps = 10 if "10 steps" in note else None
    height = 100 if "1 m" in note else None
    landed = next((w for w in _LANDED if f"on {w}" in note or f"on left {w}" in note), None)
    return location, steps, height, landed


@dataclass
class Clinic:
    first_patient_id: int
    last_patient_id: int
    logs: int
    events: int
    outcomes: int
    pins: int
    classes: dict[str, int]
    seconds_simulate: float
    seconds_copy: float


def build_clinic(
    psycopg_dsn: str, database_url: str, options: DetectOptions, today: dt.date, echo: Echo
) -> Clinic:
    """Simulate the cohort and COPY the clinic in (logs dated today − days … yesterday)."""
    import psycopg
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from rehab.db.models import (
        CareTeam,
        CareTeamMember,
        Clinician,
        Event,
        Exercise,
        OutcomeMeasure,
        Patient,
        PinnedBaseline,
        Prescription,
        Program,
        SessionLog,
        User,
    )
    from rehab.domain.vocabulary import RedFlag
    from rehab.services.library import seed_exercise_library
    from rehab.services.series_copy import SIDES

    started = time.perf_counter()
    workers = max(1, min(2, os.cpu_count() or 1))
    chunks = simulate(options.seed, options.patients, options.days, workers)
    simulated = time.perf_counter() - started
    echo(f"  simulated {options.patients:,} patients × {options.days} days in {simulated:.0f} s")

    engine = sa.create_engine(database_url)
    try:
        with Session(engine) as session:
            seed_exercise_library(session)
            session.commit()
            exercise_ids = list(session.scalars(sa.select(Exercise.id).order_by(Exercise.id)))[:3]
    finally:
        engine.dispose()

    started = time.perf_counter()
    run = uuid.uuid4().hex[:6]
    first_day = today - dt.timedelta(days=options.days)
    start_ordinal = dt.date(2025, 1, 1).toordinal()
    shift = first_day.toordinal() - start_ordinal  # simulated day 0 is the program's first day
    created = dt.datetime.combine(first_day, dt.time(9), tzinfo=dt.UTC)
    n_patients = options.patients
    n_teams = max(1, math.ceil(n_patients / PATIENTS_PER_TEAM))
    with psycopg.connect(psycopg_dsn) as conn:
        ids = {
            t: _next_id(conn, t)
            for t in (
                "users",
                "care_teams",
                "clinicians",
                "patients",
                "programs",
                "prescriptions",
                "events",
                "outcome_measures",
                "pinned_baselines",
                "session_logs",
            )
        }
        team_ids = [ids["care_teams"] + t for t in range(n_teams)]
        copy_rows(
            conn,
            CareTeam,
            ["id", "name", "created_at"],
            ((tid, f"Bench team {run}-{t}", created) for t, tid in enumerate(team_ids)),
        )
        clinician_users = [ids["users"] + i for i in range(2 * n_teams)]
        patient_users = [ids["users"] + 2 * n_teams + i for i in range(n_patients)]
        user_rows: list[tuple[Any, ...]] = [
            (
                uid,
                f"bench-{run}-c{i}@clinic.test",
                f"Bench Clinician {i}",
                "clinician",
                "immediate" if i % 2 == 0 else "digest",
                created,
            )
            for i, uid in enumerate(clinician_users)
        ] + [
            (
                uid,
                f"bench-{run}-p{i}@patient.test",
                f"Bench Patient {i}",
                "patient",
                "immediate",
                created,
            )
            for i, uid in enumerate(patient_users)
        ]
        copy_rows(
            conn,
            User,
            ["id", "email", "display_name", "role", "notify_mode", "created_at"],
            user_rows,
        )
        clinician_ids = [ids["clinicians"] + i for i in range(2 * n_teams)]
        copy_rows(
            conn, Clinician, ["id", "user_id"], zip(clinician_ids, clinician_users, strict=True)
        )
        copy_rows(
            conn,
            CareTeamMember,
            ["care_team_id", "clinician_id", "added_at"],
            ((team_ids[i // 2], cid, created) for i, cid in enumerate(clinician_ids)),
        )
        patient_ids = [ids["patients"] + i for i in range(n_patients)]
        copy_rows(
            conn,
            Patient,
            ["id", "user_id", "care_team_id", "year_of_birth", "condition_summary", "created_at"],
            (
                (
                    pid,
                    patient_users[i],
                    team_ids[i // PATIENTS_PER_TEAM],
                    1950 + i % 50,
                    "Low back pain with leg symptoms",
                    created,
                )
                for i, pid in enumerate(patient_ids)
            ),
        )
        program_ids = [ids["programs"] + i for i in range(n_patients)]
        copy_rows(
            conn,
            Program,
            ["id", "patient_id", "title", "start_date", "created_by_user_id", "created_at"],
            (
                (
                    prog,
                    patient_ids[i],
                    "Lumbar stabilisation",
                    first_day,
                    clinician_users[2 * (i // PATIENTS_PER_TEAM)],
                    created,
                )
                for i, prog in enumerate(program_ids)
            ),
        )
        copy_rows(
            conn,
            Prescription,
            ["id", "program_id", "exercise_id", "position", "sets", "reps"],
            (
                (ids["prescriptions"] + 3 * i + k, prog, ex, k, 3, 10)
                for i, prog in enumerate(program_ids)
                for k, ex in enumerate(exercise_ids)
            ),
        )

        # Logs in arrival order (day by day), as production writes them.
        patient = np.concatenate([c.patient for c in chunks])
        day = np.concatenate([c.day for c in chunks])
        order = np.lexsort((patient, day))
        columns = {
            "patient": (np.asarray(patient_ids, dtype=np.int64)[patient[order]]).tolist(),
            "back": np.concatenate([c.back_pain for c in chunks])[order].tolist(),
            "leg": np.concatenate([c.leg_pain for c in chunks])[order].tolist(),
        }
        adherence = np.concatenate([c.adherence for c in chunks])[order]
        adherence_obj = adherence.astype(object)
        adherence_obj[np.isnan(adherence)] = None
        side_table = np.array([None, *SIDES], dtype=object)
        sides = side_table[np.concatenate([c.leg_side for c in chunks])[order]].tolist()
        masks = np.concatenate([c.red_flags for c in chunks])[order]
        flag_columns = [((masks >> bit) & 1).astype(bool).tolist() for bit in range(len(RedFlag))]
        span = int(day.max()) + 1 if day.shape[0] else 1
        dates = [dt.date.fromordinal(start_ordinal + shift + d) for d in range(span)]
        stamps = [dt.datetime.combine(d, dt.time(19), tzinfo=dt.UTC) for d in dates]
        client_ids = [f"bench-{d.isoformat()}" for d in dates]
        body_hash = "0" * 64
        day_sorted = day[order].tolist()
        log_rows = (
            (
                ids["session_logs"] + i,
                columns["patient"][i],
                dates[d],
                client_ids[d],
                body_hash,
                columns["back"][i],
                columns["leg"][i],
                sides[i],
                flag_columns[0][i],
                flag_columns[1][i],
                flag_columns[2][i],
                flag_columns[3][i],
                "",
                adherence_obj[i],
                "bench",
                stamps[d],
                stamps[d],
            )
            for i, d in enumerate(day_sorted)
        )
        flag_names = [f"red_flag_{f.value}" for f in RedFlag]
        logs = copy_rows(
            conn,
            SessionLog,
            [
                "id",
                "patient_id",
                "log_date",
                "client_id",
                "body_hash",
                "back_pain",
                "leg_pain",
                "leg_side",
                *flag_names,
                "note",
                "adherence",
                "source",
                "created_at",
                "updated_at",
            ],
            log_rows,
        )
        del columns, adherence_obj, sides, flag_columns, log_rows

        def on(offset: int) -> dt.date:
            return dt.date.fromordinal(start_ordinal + shift + offset)

        event_rows: list[tuple[Any, ...]] = []
        for chunk in chunks:
            for index, offset, event_type, note in chunk.events:
                fall = _fall_columns(note) if event_type == "fall" else (None, None, None, None)
                event_rows.append(
                    (
                        ids["events"] + len(event_rows),
                        patient_ids[index],
                        on(offset),
                        event_type,
                        note,
                        *fall,
                        patient_users[index],
                        dt.datetime.combine(on(max(offset, 0)), dt.time(20), tzinfo=dt.UTC),
                    )
                )
        copy_rows(
            conn,
            Event,
            [
                "id",
                "patient_id",
                "event_date",
                "event_type",
                "description",
                "fall_location",
                "fall_steps",
                "fall_height_cm",
                "fall_landed_on",
                "recorded_by_user_id",
                "created_at",
            ],
            event_rows,
        )
        outcome_rows: list[tuple[Any, ...]] = [
            (
                ids["outcome_measures"] + k,
                patient_ids[index],
                "odi",
                on(offset),
                score,
                {},
                patient_users[index],
                dt.datetime.combine(on(offset), dt.time(18), tzinfo=dt.UTC),
            )
            for k, (index, offset, score) in enumerate(
                o for chunk in chunks for o in chunk.outcomes
            )
        ]
        copy_rows(
            conn,
            OutcomeMeasure,
            [
                "id",
                "patient_id",
                "instrument",
                "measured_on",
                "score",
                "answers",
                "recorded_by_user_id",
                "created_at",
            ],
            outcome_rows,
        )
        pin_rows = [
            (
                ids["pinned_baselines"] + k,
                patient_ids[index],
                metric,
                level,
                on(offset),
                clinician_users[2 * (index // PATIENTS_PER_TEAM)],
            )
            for k, (index, metric, level, offset) in enumerate(
                p for chunk in chunks for p in chunk.pins
            )
        ]
        copy_rows(
            conn,
            PinnedBaseline,
            ["id", "patient_id", "metric", "level", "effective_from", "pinned_by_user_id"],
            pin_rows,
        )
        for table in ids:
            _fix_sequence(conn, table)
        conn.commit()
    classes: dict[str, int] = {}
    for chunk in chunks:
        for name, count in chunk.classes.items():
            classes[name] = classes.get(name, 0) + count
    return Clinic(
        first_patient_id=patient_ids[0],
        last_patient_id=patient_ids[-1],
        logs=logs,
        events=len(event_rows),
        outcomes=len(outcome_rows),
        pins=len(pin_rows),
        classes=classes,
        seconds_simulate=simulated,
        seconds_copy=time.perf_counter() - started,
    )


# --- measurements (each in its own spawned process) ----------------------------------------


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not getrusage's ru_maxrss: a spawned child's ru_maxrss
    starts from its parent's RSS at the fork (Linux keeps it across exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _since(spec: dict[str, Any]) -> dt.date:
    from rehab.services.evaluation import LOOKBACK_DAYS

    return dt.date.fromisoformat(spec["today"]) - dt.timedelta(days=LOOKBACK_DAYS)


def _measured(
    spec: dict[str, Any], read: Callable[[Any], int], barrier: Any = None
) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(spec["dsn"]) as conn:
        before, load = _rss_mb(), os.getloadavg()[0]
        if barrier is not None:
            barrier.wait()
        started, cpu = time.perf_counter(), time.process_time()
        start_mono = time.monotonic()
        rows = read(conn)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        end_mono = time.monotonic()
    return {
        "seconds": seconds,
        "cpu": cpu,
        "start": start_mono,
        "end": end_mono,
        "rows": rows,
        "rss_before_mb": before,
        "peak_rss_mb": _peak_rss_mb(),
        "load": load,
    }


def _measure_copy(spec: dict[str, Any], barrier: Any) -> dict[str, Any]:
    """The records the scan reads (`series_copy`: one fixed-width record per log, packed
    server-side into one bytea per 1024 patient ids), by COPY, every log of the lookback."""
    from rehab.services import series_copy

    return _measured(spec, lambda conn: len(series_copy.read_log_arrays(conn, None, _since(spec))))


def _measure_select(spec: dict[str, Any], barrier: Any) -> dict[str, Any]:
    """The same records by a plain SELECT in binary format (one row per 1024 patient ids);
    in part `part` of `parts` processes, that part of the patients (contiguous ids)."""
    from psycopg import sql

    from rehab.services import series_copy

    ids = None
    parts = spec.get("parts", 1)
    if parts > 1:
        first, last = spec["first_patient_id"], spec["last_patient_id"]
        share = -(-(last - first + 1) // parts)
        low = first + spec["part"] * share
        ids = list(range(low, min(low + share, last + 1)))
    copy = series_copy.log_query(ids, _since(spec))
    # log_query's SELECT, without the COPY around it.
    select = sql.SQL(copy.as_string(None)[len("COPY (") : -len(") TO STDOUT (FORMAT BINARY)")])

    def read(conn: Any) -> int:
        with conn.cursor(binary=True) as cursor:
            rows = cursor.execute(select).fetchall()
        arrays = [
            series_copy.LogArrays.from_records(series_copy.records(blob, count))
            for count, blob in rows
        ]
        return sum(map(len, arrays))

    return _measured(spec, read, barrier)


# The textbook layout: one COPY row per log, each field with its length, NULLs made sentinels.
_ROW_FIELDS = (("patient_id", ">i4"), ("day", ">i4"), ("back_pain", ">i2"), ("leg_pain", ">i2"),
               ("adherence", ">f8"), ("leg_side", ">i2"), ("red_flags", ">i2"))  # fmt: skip
ROW_DTYPE = np.dtype(
    [("field_count", ">i2")]
    + [
        item
        for i, (name, kind) in enumerate(_ROW_FIELDS)
        for item in ((f"_length{i}", ">i4"), (name, kind))
    ]
)


def _row_copy_sql(since: dt.date) -> str:
    from rehab.domain.vocabulary import RedFlag, Side

    side = " ".join(f"WHEN '{s.value}' THEN {i}" for i, s in enumerate(Side, start=1))
    flags = " + ".join(f"red_flag_{f.value}::int4 * {1 << i}" for i, f in enumerate(RedFlag))
    return (
        "COPY (SELECT patient_id, log_date - DATE '2000-01-01', back_pain, leg_pain,"
        " COALESCE(adherence, 'NaN'::float8), (CASE leg_side " + side + " ELSE 0 END)::int2,"
        " (" + flags + ")::int2 FROM session_logs"
        f" WHERE log_date >= '{since.isoformat()}') TO STDOUT (FORMAT BINARY)"
    )


def read_rows_reference(conn: Any, since: dt.date) -> dict[str, npt.NDArray[Any]]:
    """COPY with one row per log → numpy: the same tight libpq loop as `series_copy`, each row
    appended to one buffer, parsed by `np.frombuffer` (19-byte header, 2-byte trailer)."""
    from rehab.services.series_copy import HEADER_BYTES

    buffer = bytearray()
    extend = buffer.extend
    pgconn = conn.pgconn
    with conn.cursor() as cursor, cursor.copy(_row_copy_sql(since)):
        get = pgconn.get_copy_data
        while True:
            nbytes, data = get(0)
            if nbytes < 0:
                break
            extend(data)
        while (result := pgconn.get_result()) is not None:
            if result.status != 1:  # COMMAND_OK
                raise RuntimeError((result.error_message or b"COPY failed").decode())
    count = (len(buffer) - HEADER_BYTES - 2) // ROW_DTYPE.itemsize
    rows = np.frombuffer(buffer, ROW_DTYPE, count=count, offset=HEADER_BYTES)
    if count and not bool(np.all(rows["field_count"] == len(_ROW_FIELDS))):
        raise RuntimeError("unexpected COPY row layout")
    return {name: rows[name].astype(rows[name].dtype.newbyteorder("=")) for name, _ in _ROW_FIELDS}


def _measure_row_copy(spec: dict[str, Any], barrier: Any) -> dict[str, Any]:
    return _measured(spec, lambda conn: len(read_rows_reference(conn, _since(spec))["day"]))


def _measure_fetchall(spec: dict[str, Any], barrier: Any) -> dict[str, Any]:
    from rehab.domain.vocabulary import RedFlag

    flags = ", ".join(f"red_flag_{f.value}" for f in RedFlag)
    query = (
        "SELECT patient_id, log_date, back_pain, leg_pain, adherence, leg_side, "
        f"{flags} FROM session_logs WHERE log_date >= %s"
    )

    def read(conn: Any) -> int:
        with conn.cursor() as cursor:
            cursor.execute(query, (_since(spec),))
            return len(cursor.fetchall())

    return _measured(spec, read)


def _app(spec: dict[str, Any]) -> Any:
    from rehab import create_app

    return create_app(spec["app"])


def _bench_patient_ids(session: Any, spec: dict[str, Any]) -> list[int]:
    import sqlalchemy as sa

    from rehab.db.models import Patient

    return list(
        session.scalars(
            sa.select(Patient.id)
            .where(Patient.id.between(spec["first_patient_id"], spec["last_patient_id"]))
            .order_by(Patient.id)
        )
    )


def _measure_scan(spec: dict[str, Any], barrier: Any) -> dict[str, Any]:
    """The full scan as the worker runs it: `evaluate_and_commit` per `scan.batches` batch.
    Thin timers around the three stages show where the time goes."""
    from rehab.extensions import db
    from rehab.services import audit, evaluation, notifications, scan

    today = dt.date.fromisoformat(spec["today"])
    stages = {"load": 0.0, "domain": 0.0, "reconcile": 0.0, "notify": 0.0, "commit": 0.0}

    def timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                stages[name] += time.perf_counter() - started

        return wrapper

    patches = (
        (evaluation, "_load", "load"),
        (evaluation, "detect_episodes_many", "domain"),
        (evaluation, "_reconcile", "reconcile"),
        (notifications, "queue_for_alerts", "notify"),
        (audit, "commit", "commit"),
    )
    for module, attribute, stage in patches:
        setattr(module, attribute, timed(stage, getattr(module, attribute)))
    app = _app(spec)
    with app.app_context():
        session = db.session
        batches = scan.batches(_bench_patient_ids(session, spec))
        session.rollback()
        mine = batches[spec.get("part", 0) :: spec.get("parts", 1)]
        rss_first_batch = math.nan
        stored = opened = resolved = 0
        before, load = _rss_mb(), os.getloadavg()[0]
        if barrier is not None:
            barrier.wait()
        started, cpu = time.perf_counter(), time.process_time()
        start_mono = time.monotonic()
        for number, batch in enumerate(mine):
            result = evaluation.evaluate_and_commit(session, batch, today)
            stored += result.stored
            opened += len(result.opened)
            resolved += result.resolved
            if number == 0:
                rss_first_batch = _rss_mb()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        end_mono = time.monotonic()
    return {
        "seconds": seconds,
        "cpu": cpu,
        "start": start_mono,
        "end": end_mono,
        "patients": sum(map(len, mine)),
        "batches": len(mine),
        "batch_size": scan.BATCH_SIZE,
        "stored": stored,
        "opened": opened,
        "resolved": resolved,
        "stages": stages,
        "rss_before_mb": before,
        "rss_first_batch_mb": rss_first_batch,
        "peak_rss_mb": _peak_rss_mb(),
        "load": load,
    }


def _measure_incremental(spec: dict[str, Any], barrier: Any) -> dict[str, Any]:
    """A new log for today, written as the API writes it, then the worker's evaluation of
    that one patient, timed; over `incremental` patients (after 5 not counted)."""
    import sqlalchemy as sa
    from sqlalchemy import event

    from rehab.db.models import Patient, Prescription, Program, SessionLog
    from rehab.domain.vocabulary import Role, Side
    from rehab.extensions import db
    from rehab.services import evaluation, logs
    from rehab.services.actors import Actor
    from rehab.services.commands import ExerciseEntryInput, SessionLogInput

    today = dt.date.fromisoformat(spec["today"])
    wanted = spec["incremental"] + 5
    load = os.getloadavg()[0]
    app = _app(spec)
    timings: list[float] = []
    statements: list[int] = []
    with app.app_context():
        session = db.session
        all_ids = _bench_patient_ids(session, spec)
        step = max(1, len(all_ids) // wanted)
        chosen = all_ids[::step][:wanted]
        users = dict(
            session.execute(
                sa.select(Patient.id, Patient.user_id).where(Patient.id.in_(chosen))
            ).all()
        )
        prescriptions: dict[int, list[int]] = {}
        for pid, prescription in session.execute(
            sa.select(Program.patient_id, Prescription.id)
            .join(Prescription, Prescription.program_id == Program.id)
            .where(Program.patient_id.in_(chosen))
            .order_by(Prescription.id)
        ):
            prescriptions.setdefault(pid, []).append(prescription)
        last = {
            row.patient_id: row
            for row in session.execute(
                sa.select(
                    SessionLog.patient_id,
                    SessionLog.back_pain,
                    SessionLog.leg_pain,
                    SessionLog.leg_side,
                )
                .where(SessionLog.patient_id.in_(chosen))
                .order_by(SessionLog.patient_id, SessionLog.log_date)
            )
        }
        session.commit()
        counter = {"n": 0}

        def count(*_: Any) -> None:
            counter["n"] += 1

        engine = db.engine
        for number, pid in enumerate(chosen):
            previous = last.get(pid)
            back = previous.back_pain if previous else 2
            leg = previous.leg_pain if previous else 1
            side = (previous.leg_side if previous else None) or Side.LEFT
            data = SessionLogInput(
                client_id=uuid.uuid4().hex,
                log_date=today,
                back_pain=back,
                leg_pain=leg,
                leg_side=side if leg > 0 else None,
                exercises=[
                    ExerciseEntryInput(prescription_id=p, done=True, sets_done=3, reps_done=10)
                    for p in prescriptions.get(pid, [])
                ],
            )
            actor = Actor(user_id=users[pid], role=Role.PATIENT, patient_id=pid)
            logs.record_session_log(session, actor, pid, data, source="api")
            session.commit()
            counter["n"] = 0
            event.listen(engine, "before_cursor_execute", count)
            started = time.perf_counter()
            evaluation.evaluate_and_commit(session, [pid], today)
            elapsed = time.perf_counter() - started
            event.remove(engine, "before_cursor_execute", count)
            if number >= 5:
                timings.append(elapsed * 1000)
                statements.append(counter["n"])
    return {
        "ms": timings,
        "statements": statements,
        "peak_rss_mb": _peak_rss_mb(),
        "load": load,
    }


def _build(spec: dict[str, Any], barrier: Any) -> dict[str, Any]:
    def echo(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    options = DetectOptions(**spec["options"])
    today = dt.date.fromisoformat(spec["today"])
    return asdict(build_clinic(spec["dsn"], spec["database_url"], options, today, echo))


_MEASURES: dict[str, Callable[[dict[str, Any], Any], dict[str, Any]]] = {
    "build": _build,
    "copy": _measure_copy,
    "select": _measure_select,
    "row_copy": _measure_row_copy,
    "fetchall": _measure_fetchall,
    "scan": _measure_scan,
    "incremental": _measure_incremental,
}


def domain_fingerprint() -> str:
    """A hash of the detector's source as this process imported it: the tree is shared, and a
    run whose processes imported different detectors mixes figures (and stores new alerts)."""
    import hashlib

    import rehab.domain

    digest = hashlib.sha256()
    for path in sorted(Path(rehab.domain.__path__[0]).glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _child(kind: str, spec: dict[str, Any], queue: Any, barrier: Any) -> None:
    try:
        import rehab.domain.detection  # noqa: F401  (imported before the fingerprint is taken)

        fingerprint = domain_fingerprint()
        queue.put({**_MEASURES[kind](spec, barrier), "domain": fingerprint})
    except BaseException:
        queue.put({"error": traceback.format_exc()})


def _together(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Processes started together as one run: wall time from the first start to the last
    end, CPU and rows summed, the largest peak RSS."""
    return {
        "seconds": max(p["end"] for p in parts) - min(p["start"] for p in parts),
        "cpu": sum(p["cpu"] for p in parts),
        "rows": sum(p.get("rows", 0) for p in parts),
        "peak_rss_mb": max(p["peak_rss_mb"] for p in parts),
        "load": max(p["load"] for p in parts),
    }


def run_measure(kind: str, spec: dict[str, Any], processes: int = 1) -> list[dict[str, Any]]:
    """Run a measurement in `processes` fresh spawned processes at once (parts of the work)."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    barrier = context.Barrier(processes) if processes > 1 else None
    children = []
    for part in range(processes):
        child_spec = {**spec, "part": part, "parts": processes}
        child = context.Process(target=_child, args=(kind, child_spec, queue, barrier))
        child.start()
        children.append(child)
    results = [queue.get(timeout=7200) for _ in children]
    for child in children:
        child.join(60)
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise click.ClickException(f"bench detect: {kind} failed:\n{errors[0]}")
    return results


# --- the report ---------------------------------------------------------------------------


@dataclass
class DetectReport:
    machine: str
    date: str
    server: str
    command: str
    patients: int
    days: int
    rows: int
    events: int
    outcomes: int
    pins: int
    setup: str
    copy_runs: list[dict[str, Any]]  # packed records by COPY, all rows
    select_runs: list[dict[str, Any]]  # packed records by a binary SELECT
    row_copy_runs: list[dict[str, Any]]  # one COPY row per log
    select_parallel_runs: list[dict[str, Any]]  # the binary SELECT, 2 processes at once
    fetchall: dict[str, Any]
    first: dict[str, Any]
    steady_runs: list[dict[str, Any]]
    parallel: dict[str, Any] | None
    incremental: dict[str, Any]
    quick: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def copy(self) -> dict[str, Any]:
        return min(self.copy_runs, key=lambda r: r["seconds"])

    @property
    def select(self) -> dict[str, Any]:
        return min(self.select_runs, key=lambda r: r["seconds"])

    @property
    def row_copy(self) -> dict[str, Any]:
        return min(self.row_copy_runs, key=lambda r: r["seconds"])

    @property
    def select_parallel(self) -> dict[str, Any] | None:
        runs = self.select_parallel_runs
        return min(runs, key=lambda r: r["seconds"]) if runs else None

    @property
    def fastest_read(self) -> float:
        """The fastest raw read, in one process or two."""
        reads = [self.copy, self.select, self.row_copy]
        if self.select_parallel is not None:
            reads.append(self.select_parallel)
        return float(min(r["seconds"] for r in reads))

    @property
    def ratio_parallel(self) -> float:
        """The scan as the worker runs it on this 2-core box (a process per core) ÷ the
        fastest raw read."""
        if self.parallel is None:
            return math.nan
        return float(self.parallel["seconds"]) / self.fastest_read

    @property
    def steady(self) -> dict[str, Any]:
        return min(self.steady_runs, key=lambda r: r["seconds"])

    @property
    def ratio_first(self) -> float:
        return float(self.first["seconds"]) / self.fastest_read

    @property
    def ratio_steady(self) -> float:
        return float(self.steady["seconds"]) / self.fastest_read

    @property
    def ratio_steady_row_copy(self) -> float:
        return float(self.steady["seconds"] / self.row_copy["seconds"])

    @property
    def incremental_median(self) -> float:
        ms = self.incremental["ms"]
        return statistics.median(ms) if ms else math.nan

    @property
    def incremental_p90(self) -> float:
        ms = sorted(self.incremental["ms"])
        return ms[min(len(ms) - 1, math.ceil(0.9 * len(ms)) - 1)] if ms else math.nan

    @property
    def scan_met(self) -> bool:
        return self.ratio_steady <= SCAN_TARGET_RATIO

    @property
    def incremental_met(self) -> bool:
        return self.incremental_median <= INCREMENTAL_TARGET_MS

    @property
    def loads(self) -> list[float]:
        runs = [*self.copy_runs, *self.select_runs, *self.row_copy_runs, self.fetchall, self.first,
                *self.steady_runs, self.incremental]  # fmt: skip
        return [r["load"] for r in runs if "load" in r]

    def markdown(self) -> str:
        copy, row_copy, steady, first = self.copy, self.row_copy, self.steady, self.first
        fastest = self.fastest_read
        n = max(int(steady["patients"]), 1)
        stages = steady["stages"]
        other = steady["seconds"] - sum(stages.values())
        inc = self.incremental
        domain_ms = stages["domain"] * 1000 / n
        budget = SCAN_TARGET_RATIO * fastest - (steady["seconds"] - stages["domain"])
        lines = [
            f"## {SECTION_TITLE}",
            "",
            f"`{self.command}` on {self.date}, {self.machine}; 1-minute load average"
            f" {min(self.loads, default=math.nan):.1f}–{max(self.loads, default=math.nan):.1f}"
            " during the measurements (the box is shared).",
            f"Database: {self.server}.",
            "",
            f"{self.patients:,} simulated patients × {self.days} days (`rehab.domain.simulation`"
            f" default cohort: {self.rows:,} logs with missed days, {self.events:,} events,"
            f" {self.outcomes:,} ODI measures, {self.pins} pinned baselines), logs stored in"
            f" arrival order (day by day). Setup: {self.setup}. Each figure comes from a fresh"
            " process, one after the other, against the same database in the same run. The"
            " scans run `evaluation.evaluate_and_commit` (what the `rehab.evaluate_patients`"
            f" task runs) on `db.session` over the {steady['batches']} batches of"
            f" {steady['batch_size']} that `scan.batches` makes of every patient, in one process"
            " unless said otherwise.",
            "",
            "| what | seconds | ÷ fastest raw read | CPU s | peak RSS (MB) | notes |",
            "|---|---:|---:|---:|---:|---|",
            f"| raw read: COPY (SELECT …) TO STDOUT (FORMAT BINARY) → numpy, one fixed-width"
            f" record per log packed by the server | {copy['seconds']:.2f} |"
            f" {copy['seconds'] / fastest:.2f} | {copy['cpu']:.2f} | {copy['peak_rss_mb']:.0f} |"
            f" {copy['rows']:,} rows, the columns detection reads; {_runs(self.copy_runs)} |",
            f"| raw read: the same records by a plain SELECT (binary) → numpy (the scan reads"
            f" them this way, batch by batch) | {self.select['seconds']:.2f} |"
            f" {self.select['seconds'] / fastest:.2f} | {self.select['cpu']:.2f} |"
            f" {self.select['peak_rss_mb']:.0f} | {_runs(self.select_runs)} |",
            f"| raw read: the same COPY with one row per log → numpy | {row_copy['seconds']:.2f} |"
            f" {row_copy['seconds'] / fastest:.2f} | {row_copy['cpu']:.2f} |"
            f" {row_copy['peak_rss_mb']:.0f} | {row_copy['rows']:,} rows;"
            f" {_runs(self.row_copy_runs)} |",
        ]
        sp = self.select_parallel
        if sp is not None:
            lines.append(
                f"| raw read: the same SELECT in 2 processes at once, half of the patients each"
                f" (contiguous ids) | {sp['seconds']:.2f} | {sp['seconds'] / fastest:.2f} |"
                f" {sp['cpu']:.2f} (both) | {sp['peak_rss_mb']:.0f} (each, max) | wall time from"
                f" the first start to the last end; {_runs(self.select_parallel_runs)} |"
            )
        lines += [
            f"| plain fetchall (psycopg tuples), for context | {self.fetchall['seconds']:.2f} | "
            f"{self.fetchall['seconds'] / fastest:.2f} | {self.fetchall['cpu']:.2f} | "
            f"{self.fetchall['peak_rss_mb']:.0f} | {self.fetchall['rows']:,} rows |",
            f"| full scan, first run | {first['seconds']:.2f} | {self.ratio_first:.2f} | "
            f"{first['cpu']:.2f} | {first['peak_rss_mb']:.0f} | stores every episode of the year:"
            f" {first['stored']:,} alerts ({first['opened']:,} still open → notification rows,"
            " delivery tasks to Redis), an audit row each |",
            f"| **full scan, steady state** | **{steady['seconds']:.2f}** | "
            f"**{self.ratio_steady:.2f}** | {steady['cpu']:.2f} | {steady['peak_rss_mb']:.0f} | "
            f"nothing new ({steady['stored']} stored); {_runs(self.steady_runs)} |",
        ]
        if self.parallel is not None:
            p = self.parallel
            lines.append(
                f"| full scan, steady state, 2 processes | {p['seconds']:.2f} | "
                f"{p['seconds'] / fastest:.2f} | {p['cpu']:.2f} (both) | "
                f"{p['peak_rss_mb']:.0f} (each, max) | every other batch each, started together;"
                " wall time from the first start to the last end |"
            )
        lines += [
            "",
            "**Full scan (steady state, one process) ÷ fastest raw read:"
            f" {self.ratio_steady:.2f}×**"
            f" (target ≤ {SCAN_TARGET_RATIO:g}×: {'met' if self.scan_met else 'NOT met'};"
            f" ÷ the one-row-per-log COPY: {self.ratio_steady_row_copy:.2f}×; first run"
            f" {self.ratio_first:.2f}×). **Incremental evaluation after one new log: median"
            f" {self.incremental_median:.1f} ms, p90 {self.incremental_p90:.1f} ms** over"
            f" {len(inc['ms'])} patients (target median ≤ {INCREMENTAL_TARGET_MS:g} ms:"
            f" {'met' if self.incremental_met else 'NOT met'}).",
            "",
            f"Where the steady scan's time goes ({n:,} patients): the detector"
            f" (`detect_episodes_many`, the pure domain) {stages['domain']:.2f} s"
            f" ({domain_ms:.2f} ms/patient); loading {stages['load']:.2f} s"
            f" ({stages['load'] * 1000 / n:.2f} ms/patient: one SELECT per batch returns the"
            " packed logs, the events, outcomes, pins, programs and stored alerts; decoding"
            " them into each patient's series, log columns as numpy arrays); comparing the"
            " episodes with the stored"
            f" alerts {stages['reconcile']:.2f} s (in memory: no query); the rest"
            f" {other + stages['notify'] + stages['commit']:.2f} s (advisory locks, commit)."
            f" {_budget(budget, fastest, stages, n)}"
            f" Memory: RSS {steady['rss_before_mb']:.0f} MB before the scan,"
            f" {steady['rss_first_batch_mb']:.0f} MB after its first batch, peak"
            f" {steady['peak_rss_mb']:.0f} MB (first run: peak {first['peak_rss_mb']:.0f} MB):"
            " one batch at a time, no ORM objects loaded.",
            "",
            f"First run ({first['stored']:,} alerts): domain {first['stages']['domain']:.1f} s,"
            f" load {first['stages']['load']:.1f} s, reconcile (INSERT … ON CONFLICT DO NOTHING"
            f" RETURNING, an audit row per alert) {first['stages']['reconcile']:.1f} s,"
            f" notification rows {first['stages']['notify']:.1f} s (including the flush of the"
            " audit rows' ORM objects it triggers), commit and delivery tasks sent to Redis"
            f" {first['stages']['commit']:.1f} s.",
            "",
            "Incremental: the log is written by `logs.record_session_log` (as the API does),"
            " then `evaluate_and_commit(session, [patient_id], today)` is timed: an advisory"
            f" lock, one SELECT (the patient's {self.days} days of packed logs, events, outcomes,"
            " pins, programs, stored alerts), the detector, commit —"
            f" {statistics.median(inc['statements']) if inc['statements'] else 0:.0f} SQL"
            " statements (median) besides BEGIN and COMMIT; min / max"
            f" {min(inc['ms'], default=math.nan):.1f} / {max(inc['ms'], default=math.nan):.1f}"
            " ms.",
        ]
        if self.quick:
            lines += ["", "(`--quick`: a small form for CI; the figures say little.)"]
        if self.problems:
            lines += ["", "**Problems:** " + "; ".join(self.problems) + "."]
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            fastest_read=self.fastest_read,
            ratio_first=self.ratio_first,
            ratio_steady=self.ratio_steady,
            ratio_steady_row_copy=self.ratio_steady_row_copy,
            ratio_parallel=self.ratio_parallel,
            incremental_median_ms=self.incremental_median,
            incremental_p90_ms=self.incremental_p90,
            scan_met=self.scan_met,
            incremental_met=self.incremental_met,
        )
        return data


def _budget(budget: float, fastest: float, stages: dict[str, float], n: int) -> str:
    """What the target leaves the detector, in words."""
    domain = stages["domain"]
    if budget > 0:
        return (
            f"Within {SCAN_TARGET_RATIO:g}× the fastest read, everything but the detector leaves"
            f" it {budget:.2f} s ({budget * 1000 / n:.2f} ms/patient) against the"
            f" {domain:.2f} s it takes: it would need to be {domain / budget:.1f}× faster."
        )
    return (
        f"The detector alone takes {domain / fastest:.1f}× the fastest read, and loading"
        f" {stages['load'] / fastest:.1f}×: the target is out of reach on both counts — the"
        " whole-table read scans the heap in order; a batch reads 250 patients' rows from the"
        " covering index (an index-only scan) and decodes their events, outcomes and stored"
        " alerts too."
    )


def _runs(runs: list[dict[str, Any]]) -> str:
    if len(runs) == 1:
        return "one run"
    return f"best of {len(runs)}: " + ", ".join(f"{r['seconds']:.2f}" for r in runs)


# --- the run ------------------------------------------------------------------------------


def _psycopg_dsn(database_url: str) -> str:
    import sqlalchemy as sa

    url = sa.engine.make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


@contextlib.contextmanager
def _servers(options: DetectOptions) -> Iterator[tuple[str, str, str]]:
    """(database URL, Redis URL, PostgreSQL description), stopped on exit."""
    import psycopg

    from rehab.devservers import start_redis

    with contextlib.ExitStack() as stack:
        database = bench_database(stack, options.database_url)
        url, durability = database.url, database.durability
        redis = start_redis()
        stack.callback(redis.close)
        with psycopg.connect(_psycopg_dsn(url), autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            buffers = conn.execute("SHOW shared_buffers").fetchone()
        version = (
            f"PostgreSQL {row[0] if row else '?'} ({durability}; shared_buffers"
            f" {buffers[0] if buffers else '?'}), Redis as the broker (no worker)"
        )
        yield url, redis.url, version


def _vacuum(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        conn.execute("VACUUM ANALYZE")


def run_detect(options: DetectOptions, echo: Echo = print) -> DetectReport:
    import secrets

    from config import load_settings
    from rehab import migrate
    from rehab.services.time import DEFAULT_TIMEZONE  # noqa: F401  (import check: fail early)

    with (
        tempfile.TemporaryDirectory(prefix="rehab-bench-detect-") as tmp,
        _servers(options) as (database_url, redis_url, server),
    ):
        dsn = _psycopg_dsn(database_url)
        echo(f"database: {server}; migrating")
        migrate.upgrade(database_url)
        overrides = {
            "mode": "production",
            "outbox_in_production": True,  # no SMTP: the scan sends no e-mail
            "secret_key": secrets.token_hex(32),
            "database_url": database_url,
            "broker_url": redis_url,
            "instance_path": str(Path(tmp) / "instance"),
        }
        from zoneinfo import ZoneInfo

        settings = load_settings(**overrides)
        today = dt.datetime.now(ZoneInfo(settings.clinic_timezone)).date()
        echo(f"generating {options.patients:,} patients × {options.days} days")
        # In a process of its own: the parent stays small, its children's figures their own.
        built = run_measure(
            "build",
            {"dsn": dsn, "database_url": database_url, "options": asdict(options),
             "today": today.isoformat()},
        )[0]  # fmt: skip
        clinic = Clinic(**{k: v for k, v in built.items() if k != "domain"})
        started = time.perf_counter()
        _vacuum(dsn)
        vacuumed = time.perf_counter() - started
        setup = (
            f"simulation {clinic.seconds_simulate:.0f} s (2 processes), COPY in"
            f" {clinic.seconds_copy:.0f} s, VACUUM ANALYZE {vacuumed:.0f} s"
        )
        echo(f"  {clinic.logs:,} logs, {clinic.events:,} events; {setup}")
        spec: dict[str, Any] = {
            "dsn": dsn,
            "app": overrides,
            "today": today.isoformat(),
            "first_patient_id": clinic.first_patient_id,
            "last_patient_id": clinic.last_patient_id,
            "incremental": options.incremental,
        }
        copy_runs: list[dict[str, Any]] = []
        select_runs: list[dict[str, Any]] = []
        row_copy_runs: list[dict[str, Any]] = []
        steady_runs: list[dict[str, Any]] = []

        def read(kind: str, runs: list[dict[str, Any]], label: str) -> None:
            _vacuum(dsn)
            runs.extend(run_measure(kind, spec))
            echo(f"  {label}: {runs[-1]['seconds']:.2f} s ({runs[-1]['rows']:,} rows)")

        for _ in range(options.repeat):
            read("copy", copy_runs, "COPY → numpy, packed records")
            read("select", select_runs, "SELECT (binary) → numpy, packed records")
            read("row_copy", row_copy_runs, "COPY → numpy, one row per log")
        _vacuum(dsn)
        fetchall = run_measure("fetchall", spec)[0]
        echo(f"  fetchall: {fetchall['seconds']:.2f} s")
        _vacuum(dsn)
        first = run_measure("scan", spec)[0]
        echo(f"  scan, first run: {first['seconds']:.2f} s, {first['stored']:,} alerts stored")
        for _ in range(options.repeat):
            _vacuum(dsn)
            steady_runs.extend(run_measure("scan", spec))
            stages = ", ".join(f"{k} {v:.2f}" for k, v in steady_runs[-1]["stages"].items())
            echo(f"  scan, steady state: {steady_runs[-1]['seconds']:.2f} s ({stages})")
        # The reference once more after the scans: the box is shared, its load drifts.
        read("copy", copy_runs, "COPY → numpy, packed records, again")
        read("select", select_runs, "SELECT (binary) → numpy, packed records, again")
        parallel = None
        parts_runs: list[dict[str, Any]] = []
        select_parallel_runs: list[dict[str, Any]] = []
        if options.parallel:
            # The reference as the worker's scan runs on this box: 2 processes at once.
            for _ in range(options.repeat):
                _vacuum(dsn)
                select_parallel_runs.append(_together(run_measure("select", spec, processes=2)))
                echo(
                    "  SELECT (binary) → numpy, packed records, 2 processes:"
                    f" {select_parallel_runs[-1]['seconds']:.2f} s"
                )
            _vacuum(dsn)
            parts = parts_runs = run_measure("scan", spec, processes=2)
            parallel = {
                **_together(parts),
                "patients": sum(p["patients"] for p in parts),
                "stored": sum(p["stored"] for p in parts),
            }
            echo(f"  scan, steady state, 2 processes: {parallel['seconds']:.2f} s")
        _vacuum(dsn)
        incremental = run_measure("incremental", spec)[0]
        echo(f"  incremental: median {statistics.median(incremental['ms']):.1f} ms")

        problems = []
        if any(r["stored"] for r in steady_runs) or (parallel and parallel["stored"]):
            problems.append("a steady-state scan stored new alerts (did the detector change?)")
        fingerprints = {r["domain"] for r in [first, *steady_runs, incremental, *parts_runs]}
        if len(fingerprints) > 1:
            problems.append(
                "rehab/domain changed during the run (the scans imported different detectors)"
            )
        for run in [*copy_runs, *select_runs, *row_copy_runs, *select_parallel_runs, fetchall]:
            if run["rows"] != clinic.logs:
                problems.append(f"a raw read returned {run['rows']} rows of {clinic.logs}")
        report = DetectReport(
            machine=machine_description(),
            date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            server=server,
            command=options.command,
            patients=options.patients,
            days=options.days,
            rows=clinic.logs,
            events=clinic.events,
            outcomes=clinic.outcomes,
            pins=clinic.pins,
            setup=setup,
            copy_runs=copy_runs,
            select_runs=select_runs,
            row_copy_runs=row_copy_runs,
            select_parallel_runs=select_parallel_runs,
            fetchall=fetchall,
            first=first,
            steady_runs=steady_runs,
            parallel=parallel,
            incremental=incremental,
            quick=options.quick,
            problems=problems,
        )
    if options.results_path is not None:
        write_section(options.results_path, SECTION_TITLE, report.markdown())
    return report


@click.command("detect")
@click.option("--patients", type=click.IntRange(1), default=None, help="Patients [10000].")
@click.option("--days", type=click.IntRange(30), default=None, help="Days of logs [365].")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--incremental",
    type=click.IntRange(1),
    default=None,
    help="Patients timed for the incremental evaluation [200].",
)
@click.option(
    "--repeat",
    type=click.IntRange(1),
    default=None,
    help="Runs of the COPY read and of the steady scan; the best counts [2].",
)
@click.option("--no-parallel", is_flag=True, help="Skip the 2-process scan.")
@click.option(
    "--quick", is_flag=True, help="Small form for CI: 300 patients × 120 days, no RESULTS.md."
)
@database_url_option
@results_option
@json_option
def detect_command(
    patients: int | None,
    days: int | None,
    seed: int,
    incremental: int | None,
    repeat: int | None,
    no_parallel: bool,
    quick: bool,
    database_url: str | None,
    results_path: Path | None,
    json_path: Path | None,
) -> None:
    """Full detection scan vs the fastest raw read of the same rows, and the evaluation after
    one new log (PostgreSQL, same run)."""
    import json

    options = DetectOptions.quick_form() if quick else DetectOptions()
    parts = ["rehab bench detect", "--quick" if quick else ""]
    if patients is not None:
        options.patients = patients
        parts.append(f"--patients {patients}")
    if days is not None:
        options.days = days
        parts.append(f"--days {days}")
    if incremental is not None:
        options.incremental = incremental
        parts.append(f"--incremental {incremental}")
    if repeat is not None:
        options.repeat = repeat
        parts.append(f"--repeat {repeat}")
    if seed != 1:
        parts.append(f"--seed {seed}")
    options.seed = seed
    options.parallel = not no_parallel
    parts.append("--no-parallel" if no_parallel else "")
    options.database_url = database_url
    parts.append("--database-url …" if database_url else "")
    options.results_path = results_path or (None if quick else RESULTS_PATH)
    options.command = " ".join(p for p in parts if p)
    report = run_detect(options, echo=lambda line: click.echo(line, err=True))
    click.echo(report.markdown())
    if json_path is not None:
        json_path.write_text(json.dumps(report.as_dict(), indent=2, default=str))
    if options.results_path is not None:
        click.echo(f"written to {options.results_path}", err=True)
    if report.problems:
        sys.exit(1)
