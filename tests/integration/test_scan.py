"""The periodic scan finds every patient whose data changed after their last evaluation,
including data whose evaluation task was lost long before the scan ran."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask import Flask

from rehab.db.models import Event, Finding, JobWatermark, Patient, SessionLog, User, utcnow
from rehab.domain.vocabulary import FindingKind
from rehab.extensions import db
from rehab.services import accounts, clinical, evaluation, scan
from rehab.services.commands import EnteredInErrorInput
from rehab.services.time import clinic_today
from tests.support.clinic import Clinic
from tests.support.history import add_fall, add_logs


def test_the_first_scan_of_a_day_takes_everyone_then_only_changed_patients(
    app: Flask, clinic: Clinic
) -> None:
    with app.app_context():
        today = clinic_today()
        everyone = scan.patients_to_evaluate(db.session, today)
        db.session.commit()
        assert len(everyone) == 3
        evaluation.evaluate_and_commit(db.session, everyone, today)
        assert scan.patients_to_evaluate(db.session, today) == []

        a, b = clinic.patient_a.patient_id, clinic.patient_b.patient_id
        assert a is not None and b is not None
        # A log written 90 minutes ago whose evaluation task was lost (broker restart):
        # the single watermark the scan used to keep would have moved past it.
        add_logs(a, today - dt.timedelta(days=3), [2])
        db.session.execute(
            sa.update(SessionLog)
            .where(SessionLog.patient_id == a)
            .values(updated_at=utcnow() - dt.timedelta(minutes=90))
        )
        db.session.execute(
            sa.update(Patient)
            .where(Patient.id == a)
            .values(evaluated_at=utcnow() - dt.timedelta(hours=3))
        )
        db.session.commit()
        assert scan.patients_to_evaluate(db.session, today) == [a]
        assert scan.patients_to_evaluate(db.session, today) == [a]  # until evaluated
        evaluation.evaluate_and_commit(db.session, [a], today)
        assert scan.patients_to_evaluate(db.session, today) == []

        add_logs(b, today, [1])
        assert scan.patients_to_evaluate(db.session, today) == [b]
        evaluation.evaluate_and_commit(db.session, [b], today)

        # A fall marked entered in error after the last evaluation (its task lost too).
        add_fall(a, clinic.clinician.user_id, today - dt.timedelta(days=2))
        evaluation.evaluate_and_commit(db.session, [a, b], today)
        # (Evaluated a minute early, `CLOCK_SLACK`: that minute's data would be taken again.)
        db.session.execute(sa.update(Patient).values(evaluated_at=utcnow()))
        db.session.commit()
        assert scan.patients_to_evaluate(db.session, today) == []
        cara = accounts.actor_for(db.session.get_one(User, clinic.clinician.user_id))
        fall = db.session.scalars(sa.select(Event).where(Event.patient_id == a)).one()
        reason = EnteredInErrorInput(reason="wrong patient")
        clinical.mark_entered_in_error(db.session, cara, fall, reason)
        assert scan.patients_to_evaluate(db.session, today) == [a]
        evaluation.evaluate_and_commit(db.session, [a], today)
        db.session.execute(sa.update(Patient).values(evaluated_at=utcnow()))
        db.session.commit()
        assert scan.patients_to_evaluate(db.session, today) == []

        # The mark taken back (it clears the fall's mark columns; its task lost as well).
        fall = db.session.get_one(Event, fall.id)
        clinical.undo_entered_in_error(db.session, cara, fall, fall.entered_in_error_at)
        assert not fall.in_error
        assert scan.patients_to_evaluate(db.session, today) == [a]
        evaluation.evaluate_and_commit(db.session, [a], today)
        db.session.execute(sa.update(Patient).values(evaluated_at=utcnow()))
        db.session.commit()

        # A finding marked entered in error gives no one to evaluate: it feeds no detection.
        finding = Finding(
            patient_id=b,
            finding_date=today,
            kind=FindingKind.OBSERVATION,
            text="Tender over the left piriformis",
            author_user_id=clinic.clinician.user_id,
        )
        db.session.add(finding)
        db.session.commit()
        clinical.mark_entered_in_error(db.session, cara, finding, reason)
        assert scan.patients_to_evaluate(db.session, today) == []


def test_a_new_day_evaluates_everyone_again(app: Flask, clinic: Clinic) -> None:
    with app.app_context():
        today = clinic_today()
        db.session.add(
            JobWatermark(name=scan.DAILY_WATERMARK, through=utcnow() - dt.timedelta(days=1))
        )
        db.session.commit()
        assert len(scan.patients_to_evaluate(db.session, today)) == 3
        db.session.commit()
        # The same day again: only changed data (there is none) is evaluated.
        assert scan.patients_to_evaluate(db.session, today) == []


def test_the_day_is_the_clinics_not_utcs(app: Flask, clinic: Clinic) -> None:
    """At 12:00 UTC it is already 02:00 the next day in Kiribati: a scan that ran then was
    that day's, so a later scan the same clinic day takes only changed patients."""
    app.config["REHAB_CLINIC_TIMEZONE"] = "Pacific/Kiritimati"  # UTC+14
    with app.app_context():
        ran_at = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
        db.session.add(JobWatermark(name=scan.DAILY_WATERMARK, through=ran_at))
        db.session.commit()
        assert scan.patients_to_evaluate(db.session, dt.date(2026, 11, 27)) == []
        assert len(scan.patients_to_evaluate(db.session, dt.date(2026, 11, 28))) == 3
