"""The PostgreSQL fast path of `evaluation.load_series` (logs as packed binary records into
numpy, `rehab.services.series_copy`, read with events, outcomes, pins, programs and stored
alerts in one statement) gives exactly the series of the generic path (plain SELECTs, the one
SQLite uses): NULL adherence and leg side, red flags alone and together, missing days, events,
outcomes, pins, a patient without logs, and the `since` bound. The COPY reader (the
benchmark's reference) reads the same records."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa
from flask import Flask

from rehab import create_app
from rehab.db.models import (
    Alert,
    AlertStatus,
    Notification,
    OutcomeMeasure,
    PinnedBaseline,
    SessionLog,
)
from rehab.domain.detection import DEFAULT_CONFIG
from rehab.domain.series import ArraySeries
from rehab.domain.vocabulary import Instrument, RedFlag, Side
from rehab.extensions import db
from rehab.services import evaluation, series_copy
from rehab.services.time import clinic_today
from tests.conftest import app_settings, dispose_engines
from tests.support.clinic import Clinic, build_clinic
from tests.support.history import add_fall

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_app(pg_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(app_settings(pg_url, tmp_path))
    yield app
    dispose_engines(app)


@pytest.fixture
def pg_clinic(pg_app: Flask) -> Clinic:
    with pg_app.app_context():
        return build_clinic()


def _log(patient_id: int, day: dt.date, k: int, **values: Any) -> dict[str, Any]:
    client_id = f"fast-{patient_id}-{day.isoformat()}"
    row = {
        "patient_id": patient_id,
        "log_date": day,
        "client_id": client_id,
        "body_hash": hashlib.sha256(client_id.encode()).hexdigest(),
        "back_pain": (3 + k) % 11,
        "leg_pain": (k * 7) % 11,
        "leg_side": (Side.LEFT, Side.RIGHT, Side.BOTH, None)[k % 4],
        "adherence": None if k % 5 == 0 else round(k % 7 / 6, 3),
        "source": "test",
    }
    row.update(values)
    return row


def _add_history(clinic: Clinic, today: dt.date) -> tuple[int, int, int]:
    a, b, c = (p.patient_id for p in (clinic.patient_a, clinic.patient_b, clinic.patient_c))
    assert a is not None and b is not None and c is not None
    rows = []
    for k in range(90):
        day = today - dt.timedelta(days=90 - k)
        if k % 9 in (4, 5) or k % 31 == 30:  # missing days, one longer gap
            continue
        flags = {}
        if k % 13 == 3:
            flags[f"red_flag_{RedFlag.NEW_NUMBNESS.value}"] = True
        if k % 17 == 8:  # two flags the same day
            flags[f"red_flag_{RedFlag.NEW_WEAKNESS.value}"] = True
            flags[f"red_flag_{RedFlag.SADDLE_NUMBNESS.value}"] = True
        if k == 62:
            flags.update({f"red_flag_{f.value}": True for f in RedFlag})
        rows.append(_log(a, day, k, **flags))
        if k % 2:
            rows.append(_log(b, day, k + 1, leg_side=None, adherence=None if k % 3 else 1.0))
    db.session.execute(sa.insert(SessionLog), rows)
    add_fall(a, clinic.patient_a.user_id, today - dt.timedelta(days=20))
    db.session.execute(
        sa.insert(OutcomeMeasure),
        [
            {
                "patient_id": a,
                "instrument": Instrument.ODI,
                "measured_on": today - dt.timedelta(days=d),
                "score": 30.0 + d / 7,
                "answers": {},
                "recorded_by_user_id": clinic.clinician.user_id,
            }
            for d in (80, 50, 10)
        ]
        + [
            # PSFS with their activities (a duplicate, a stored row without a rating, and
            # one without activities at all): both reads must carry them alike.
            {
                "patient_id": a,
                "instrument": Instrument.PSFS,
                "measured_on": today - dt.timedelta(days=d),
                "score": 6.0,
                "answers": answers,
                "recorded_by_user_id": clinic.clinician.user_id,
            }
            for d, answers in (
                (
                    70,
                    {
                        "activities": [
                            {"activity": "Stairs", "rating": 6},
                            {"activity": "Sitting", "rating": 7},
                            {"activity": " stairs", "rating": 5},
                        ]
                    },
                ),
                (
                    40,
                    {
                        "activities": [
                            {"activity": "Walking", "rating": 6},
                            {"activity": "Sitting", "rating": None},
                        ]
                    },
                ),
                (20, {}),
            )
        ],
    )
    db.session.execute(
        sa.insert(PinnedBaseline),
        [
            {
                "patient_id": b,
                "metric": metric,
                "level": level,
                "spread": spread,
                "effective_from": today - dt.timedelta(days=days),
                "pinned_by_user_id": clinic.clinician.user_id,
            }
            for metric, level, spread, days in (
                ("leg_pain", 2.0, None, 60),
                ("back_pain", 1.5, 0.9, 30),
            )
        ],
    )
    db.session.commit()
    return a, b, c  # c has no logs


def _generic(
    monkeypatch: pytest.MonkeyPatch, ids: list[int], since: dt.date | None
) -> dict[int, Any]:
    with monkeypatch.context() as patch:
        patch.setattr(evaluation, "_fast_path", lambda session: False)
        series = evaluation.load_series(db.session, ids, since)
    db.session.rollback()
    return series


def test_copy_path_gives_the_generic_series(
    pg_app: Flask, pg_clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pg_app.app_context():
        today = clinic_today()
        a, b, c = _add_history(pg_clinic, today)
        ids = [b, c, a]
        calls: list[int] = []
        records = series_copy.records

        def spy(blob: bytes | None, count: int) -> Any:
            calls.append(count)
            return records(blob, count)

        monkeypatch.setattr(series_copy, "records", spy)
        for since in (None, today - dt.timedelta(days=40)):
            fast = evaluation.load_series(db.session, ids, since)
            db.session.rollback()
            assert calls, "the PostgreSQL fast path was not used"
            generic = _generic(monkeypatch, ids, since)
            assert list(fast) == list(generic) == ids
            for pid in ids:
                assert fast[pid] == generic[pid], pid
            assert [m.ratings for m in fast[a].outcomes if m.instrument == "psfs"] == [
                (("stairs", 6.0), ("sitting", 7.0), ("stairs", 5.0)),
                (("walking", 6.0),),
                (),
            ]
            calls.clear()
            # The COPY reader gives the same log columns.
            conn = db.session.connection().connection.driver_connection
            by_copy = {
                pid: _columns(logs)
                for pid, logs in series_copy.patient_logs(
                    series_copy.read_log_arrays(conn, ids, since)
                ).items()
            }
            db.session.rollback()
            for pid in (a, b):
                s = generic[pid]
                columns = (s.dates, s.back_pain, s.leg_pain, s.adherence, s.leg_side, s.red_flags)
                assert by_copy[pid] == columns
            assert c not in by_copy

        series = evaluation.load_series(db.session, ids, None)
        db.session.rollback()
        # The cases the comparison is about are really there.
        assert None in series[a].adherence and None in series[a].leg_side
        assert set(series[b].leg_side) == {None}
        assert (RedFlag.NEW_NUMBNESS.value,) in series[a].red_flags
        assert len(max(series[a].red_flags, key=len)) == len(RedFlag)
        gaps = {(y - x).days for x, y in zip(series[a].dates, series[a].dates[1:], strict=False)}
        assert max(gaps) >= 3
        assert all(isinstance(v, int) for v in series[a].back_pain)
        assert series[a].events and series[a].events[0].mechanism
        assert len(series[a].outcomes) == 6 and len(series[b].pinned_baselines) == 2
        assert series[c].dates == () and series[c].red_flags == ()


def test_detection_is_the_same_on_both_paths(
    pg_app: Flask, pg_clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pg_app.app_context():
        today = clinic_today()
        ids = list(_add_history(pg_clinic, today))
        fast = evaluation.detect(db.session, ids, today, None)
        db.session.rollback()
        with monkeypatch.context() as patch:
            patch.setattr(evaluation, "_fast_path", lambda session: False)
            generic = evaluation.detect(db.session, ids, today, None)
        db.session.rollback()
        assert fast == generic
        assert any(e.kind == "red_flag" for e in fast[ids[0]])


def test_copy_reader_layout_and_errors(pg_url: str) -> None:
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        empty = series_copy.read_log_arrays(conn, [123456], None)
        assert len(empty) == 0 and series_copy.patient_logs(empty) == {}
        # A server error mid-COPY surfaces as an exception, and the connection stays usable.
        failing = psycopg.sql.SQL(
            "COPY (SELECT 1 / (g - 500) FROM generate_series(1, 1000) g) TO STDOUT (FORMAT BINARY)"
        )
        with pytest.raises(psycopg.Error, match="division by zero"):
            series_copy.copy_out(conn, failing)
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)
    header = series_copy.SIGNATURE + bytes(8)
    with pytest.raises(ValueError, match="unexpected row"):
        series_copy.parse_records(header + b"\x00\x01" + bytes(12) + series_copy.TRAILER)
    # A count that does not match the records (string_agg skipping a NULL record) is caught.
    row = b"\x00\x02" + (8).to_bytes(4, "big") + (2).to_bytes(8, "big")
    row += series_copy.RECORD_DTYPE.itemsize.to_bytes(4, "big") + bytes(18)
    with pytest.raises(ValueError, match="for 2 logs"):
        series_copy.parse_records(header + row + series_copy.TRAILER)


def test_alerts_stored_by_either_insert_are_the_same(
    pg_app: Flask, pg_clinic: Clinic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The PostgreSQL insert sends the rows as one JSON parameter; a row JSON cannot carry (a
    NaN) falls back to the plain INSERT. Both store the same alerts."""

    class NoJson:
        @staticmethod
        def dumps(*args: Any, **kwargs: Any) -> str:
            raise ValueError("Out of range float values are not JSON compliant")

    columns = [c for c in Alert.__table__.c if c.name not in ("id", "created_at", "resolved_at")]
    with pg_app.app_context():
        today = clinic_today()
        ids = list(_add_history(pg_clinic, today))

        def stored() -> list[tuple[Any, ...]]:
            order = (Alert.patient_id, Alert.kind, Alert.metric, Alert.detected_on)
            rows = db.session.execute(sa.select(*columns).order_by(*order)).all()
            return [tuple(r) for r in rows]

        first = evaluation.evaluate_and_commit(db.session, ids, today)
        via_json = stored()
        assert first.stored == len(via_json) > 0
        db.session.execute(sa.delete(Notification))  # (the audit trail is append-only)
        db.session.execute(sa.delete(Alert))
        db.session.commit()
        with monkeypatch.context() as patch:
            patch.setattr(evaluation, "json", NoJson)
            again = evaluation.evaluate_and_commit(db.session, ids, today)
        assert again.stored == first.stored and len(again.opened) == len(first.opened)
        assert stored() == via_json
        # And a second evaluation finds everything stored.
        assert evaluation.evaluate_and_commit(db.session, ids, today).stored == 0


def test_patient_logs_turn_sentinels_into_nan_and_none() -> None:
    """A NULL pain (the CSV contract allows one; the log table does not today) travels as 15
    and becomes NaN (None in a PatientSeries); sides and red flags become their names."""
    records = np.zeros(2, dtype=series_copy.RECORD_DTYPE)
    day = dt.date(2026, 3, 1).toordinal() - 1
    records["key"] = [(7 << 32) | day, (7 << 32) | (day + 2)]
    records["packed"] = [series_copy.PAIN_NULL | (3 << 4) | (2 << 8) | (0b101 << 10), 4]
    records["adherence"] = [np.nan, 0.5]
    logs = series_copy.patient_logs(series_copy.LogArrays.from_records(records[::-1]))[7]
    np.testing.assert_array_equal(logs.back_pain, [np.nan, 4])
    dates, back, leg, adherence, sides, flags = _columns(logs)
    assert dates == (dt.date(2026, 3, 1), dt.date(2026, 3, 3))
    assert back == (None, 4) and leg == (3, 0) and adherence == (None, 0.5)
    assert sides == (series_copy.SIDES[1], None)
    assert flags == ((series_copy.FLAGS[0], series_copy.FLAGS[2]), ())


def _columns(logs: series_copy.PatientLogs) -> tuple[Any, ...]:
    """The PatientSeries log columns of one patient's `patient_logs`."""
    series = ArraySeries("p", *logs[:4], red_flags=logs.red_flags, leg_side=logs.leg_side)
    s = series.to_series()
    return (s.dates, s.back_pain, s.leg_pain, s.adherence, s.leg_side, s.red_flags)


def test_stored_alerts_read_packed_match_the_generic_read(pg_app: Flask, pg_clinic: Clinic) -> None:
    """The fast path sends every stored alert as a packed integer key and only the unresolved
    ones in full; reconciling asks the same questions of it as of the generic read."""
    with pg_app.app_context():
        today = clinic_today()
        ids = list(_add_history(pg_clinic, today))
        evaluation.evaluate_and_commit(db.session, ids, today)
        rows = db.session.execute(
            sa.select(
                Alert.patient_id,
                Alert.kind,
                Alert.metric,
                Alert.detected_on,
                Alert.status,
                Alert.onset,
            )
        ).all()
        db.session.rollback()
        statuses = {r.status for r in rows}
        assert len(rows) > 5 and len(statuses) == 2, statuses  # open and resolved ones
        assert {r.metric for r in rows} >= {"", "leg_pain"}
        gaps = [r for r in rows if r.kind == evaluation.GAP_KIND]
        assert {r.status for r in gaps} == statuses  # open and resolved missed-logs alerts
        since = today - dt.timedelta(days=evaluation.LOOKBACK_DAYS)
        # Read as by a replay that detects gaps after another number of days than these
        # alerts were (all by the default), and as by one that uses the same number.
        other_days = DEFAULT_CONFIG.missed_log_days + 3
        packed = evaluation._read_postgresql(db.session, ids, since, other_days)[1].stored
        same = evaluation._read_postgresql(db.session, ids, since, DEFAULT_CONFIG.missed_log_days)[
            1
        ].stored
        db.session.rollback()
        generic = evaluation._stored_alerts(db.session, ids)
        db.session.rollback()
        assert packed is not None and same is not None
        assert all(
            (g.detected_on - g.onset).days == DEFAULT_CONFIG.missed_log_days - 1 for g in gaps
        )
        for store in (packed, same, generic):
            for r in rows:
                assert store.has(r.patient_id, (r.kind, r.metric, r.detected_on))
                # Neighbours of a stored key are not stored.
                assert not store.has(r.patient_id, (r.kind, r.metric + "x", r.detected_on))
                assert not store.has(r.patient_id + 100_000, (r.kind, r.metric, r.detected_on))
                # A gap is also known by its first day, and nothing else is — except by a
                # replay that detects gaps after the same number of days: it finds each by
                # the day detected, and the read leaves their first days out.
                known_by_onset = store is not same and any(
                    (g.patient_id, g.metric, g.onset) == (r.patient_id, r.metric, r.onset)
                    for g in gaps
                )
                assert store.has_gap(r.patient_id, r.metric, r.onset) == known_by_onset
            assert not store.has(ids[0], ("pain_regression", "leg_pain", dt.date(1901, 1, 1)))
        assert dict(packed.unresolved) == dict(generic.unresolved)
        assert sum(map(len, packed.unresolved.values())) == sum(
            1 for r in rows if r.status is not AlertStatus.RESOLVED
        )
