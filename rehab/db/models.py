"""SQLAlchemy 2 typed models for every entity of design §2.

Conventions: every time is stored as UTC (`UTCDateTime` gives aware datetimes back on SQLite
too); enumerations are stored as short strings with a CHECK constraint, so SQLite and
PostgreSQL hold the same rows and Alembic sees no drift between them.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from rehab.domain.vocabulary import (
    AuditOutcome,
    EventType,
    FallLocation,
    FindingKind,
    ImagingModality,
    Instrument,
    LandedOn,
    NeurodynamicTest,
    NotifyMode,
    Role,
    Side,
    TestResult,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone otherwise)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; rehab stores UTC-aware times only")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def str_enum(enum_cls: type[enum.StrEnum], name: str) -> sa.Enum:
    """A portable enum column: VARCHAR + CHECK, values (not names) stored."""
    return sa.Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=40,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime()}


class CreatedAt:
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --- people -------------------------------------------------------------------------------


class User(CreatedAt, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(120))
    role: Mapped[Role] = mapped_column(str_enum(Role, "role"))
    # None until the invited person sets a password through the one-time link.
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))
    is_active: Mapped[bool] = mapped_column(default=True)
    # Bumped to end every session of this user at once (logout everywhere, disable).
    session_epoch: Mapped[int] = mapped_column(default=0)
    password_changed_at: Mapped[dt.datetime | None]
    notify_mode: Mapped[NotifyMode] = mapped_column(
        str_enum(NotifyMode, "notify_mode"), default=NotifyMode.IMMEDIATE
    )
    reminder_opt_in: Mapped[bool] = mapped_column(default=False)
    # TOTP second factor (RFC 6238), required for clinicians and admins. The last accepted
    # time step is kept so a code cannot be replayed.
    totp_secret: Mapped[str | None] = mapped_column(sa.String(64))
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[dt.datetime | None]

    patient: Mapped[Patient | None] = relationship(back_populates="user")
    clinician: Mapped[Clinician | None] = relationship(back_populates="user")


class EmailChange(Base):
    """A change of login address someone asked for from her account page: it takes effect
    when the new address confirms it (a link sent there), and the old address is then told.
    Kept as the history of an account's login addresses (audit rows hold ids only)."""

    __tablename__ = "email_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    old_email: Mapped[str] = mapped_column(sa.String(254))
    new_email: Mapped[str] = mapped_column(sa.String(254))
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[dt.datetime | None]


class CareTeam(CreatedAt, Base):
    """Which clinicians may see which patients: a patient belongs to one care team."""

    __tablename__ = "care_teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)

    members: Mapped[list[CareTeamMember]] = relationship(back_populates="care_team")


class Clinician(Base):
    __tablename__ = "clinicians"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), unique=True)
    profession: Mapped[str] = mapped_column(sa.String(80), default="physiotherapist")

    user: Mapped[User] = relationship(back_populates="clinician")
    memberships: Mapped[list[CareTeamMember]] = relationship(back_populates="clinician")


class CareTeamMember(Base):
    __tablename__ = "care_team_members"

    care_team_id: Mapped[int] = mapped_column(sa.ForeignKey("care_teams.id"), primary_key=True)
    clinician_id: Mapped[int] = mapped_column(sa.ForeignKey("clinicians.id"), primary_key=True)
    added_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    care_team: Mapped[CareTeam] = relationship(back_populates="members")
    clinician: Mapped[Clinician] = relationship(back_populates="memberships")


class ClinicSettingChange(Base):
    """An administrator's change to one of the clinic's policy settings (`ClinicPolicy`):
    the latest row of a setting is its value in effect, NULL meaning back to the configured
    default; the rows are the setting's history (who, when, from what) for the admin's page."""

    __tablename__ = "clinic_setting_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(60), index=True)
    value: Mapped[int | None]
    # The value in effect before (the default, if nothing had been set), for the history.
    previous_value: Mapped[int]
    changed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    changed_by_user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))


class Patient(CreatedAt, Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), unique=True)
    care_team_id: Mapped[int] = mapped_column(sa.ForeignKey("care_teams.id"), index=True)
    year_of_birth: Mapped[int | None]
    # The clinician's working summary, e.g. "Left L5 radiculopathy after L4-L5 decompression".
    condition_summary: Mapped[str] = mapped_column(sa.String(300), default="")
    # When the detector last evaluated this patient (a little before, see
    # rehab.services.evaluation): data changed after it is new to the periodic scan.
    evaluated_at: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship(back_populates="patient")
    care_team: Mapped[CareTeam] = relationship()


# --- programs -----------------------------------------------------------------------------


class Exercise(Base):
    """An item of the clinic's exercise library."""

    __tablename__ = "exercises"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(80), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    body_region: Mapped[str] = mapped_column(sa.String(60))
    instructions: Mapped[str] = mapped_column(sa.Text)
    default_sets: Mapped[int] = mapped_column(default=3)
    default_reps: Mapped[int] = mapped_column(default=10)
    default_hold_seconds: Mapped[int] = mapped_column(default=0)


class Program(CreatedAt, Base):
    __tablename__ = "programs"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(sa.ForeignKey("patients.id"), index=True)
    title: Mapped[str] = mapped_column(sa.String(120))
    start_date: Mapped[dt.date]
    end_date: Mapped[dt.date | None]
    created_by_user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))

    phases: Mapped[list[ProgramPhase]] = relationship(
        back_populates="program", order_by="ProgramPhase.start_date"
    )
    prescriptions: Mapped[list[Prescription]] = relationship(
        back_populates="program", order_by="Prescription.position"
    )

    __table_args__ = (
        sa.CheckConstraint("end_date IS NULL OR end_date >= start_date", name="dates_ordered"),
    )


class ProgramPhase(Base):
    """A stage of a program (e.g. "Protect", "Load", "Return to activity"); it ends where the
    next phase starts."""

    __tablename__ = "program_phases"

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(sa.ForeignKey("programs.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    start_date: Mapped[dt.date]
    goals: Mapped[str] = mapped_column(sa.Text, default="")

    program: Mapped[Program] = relationship(back_populates="phases")


class Prescription(Base):
    """An exercise in a program: dose and frequency."""

    __tablename__ = "prescriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(sa.ForeignKey("programs.id"), index=True)
    exercise_id: Mapped[int] = mapped_column(sa.ForeignKey("exercises.id"))
    position: Mapped[int] = mapped_column(default=0)
    sets: Mapped[int]
    reps: Mapped[int]
    hold_seconds: Mapped[int] = mapped_column(default=0)
    sessions_per_week: Mapped[int] = mapped_column(default=7)
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    # Withdrawn prescriptions stay for the history of past logs.
    active: Mapped[bool] = mapped_column(default=True)

    program: Mapped[Program] = relationship(back_populates="prescriptions")
    exercise: Mapped[Exercise] = relationship()

    __table_args__ = (
        sa.CheckConstraint("sets BETWEEN 1 AND 20", name="sets_range"),
        sa.CheckConstraint("reps BETWEEN 1 AND 200", name="reps_range"),
        sa.CheckConstraint("hold_seconds BETWEEN 0 AND 600", name="hold_range"),
        sa.CheckConstraint("sessions_per_week BETWEEN 1 AND 14", name="frequency_range"),
    )


# --- daily logs ---------------------------------------------------------------------------


# The log columns the detector reads (`rehab.services.series_copy`), besides the key.
SESSION_LOG_DETECTION_COLUMNS = (
    "back_pain",
    "leg_pain",
    "leg_side",
    "adherence",
    "red_flag_new_numbness",
    "red_flag_new_weakness",
    "red_flag_bladder_bowel_change",
    "red_flag_saddle_numbness",
)


class SessionLog(Base):
    """One per patient per day; a retry with the same client id never duplicates it."""

    __tablename__ = "session_logs"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(sa.ForeignKey("patients.id"))
    log_date: Mapped[dt.date]
    client_id: Mapped[str] = mapped_column(sa.String(64))
    # SHA-256 of the canonical submitted body: the same client id with another body is a 409.
    body_hash: Mapped[str] = mapped_column(sa.String(64))
    back_pain: Mapped[int] = mapped_column(sa.SmallInteger)
    leg_pain: Mapped[int] = mapped_column(sa.SmallInteger)
    leg_side: Mapped[Side | None] = mapped_column(str_enum(Side, "side"))
    pain_location: Mapped[str | None] = mapped_column(sa.String(80))
    red_flag_new_numbness: Mapped[bool] = mapped_column(default=False)
    red_flag_new_weakness: Mapped[bool] = mapped_column(default=False)
    red_flag_bladder_bowel_change: Mapped[bool] = mapped_column(default=False)
    red_flag_saddle_numbness: Mapped[bool] = mapped_column(default=False)
    note: Mapped[str] = mapped_column(sa.Text, default="")
    # Fraction of today's prescribed exercises done (None when nothing was prescribed).
    # Stored, not derived on read, because detection scans years of it for every patient.
    adherence: Mapped[float | None]
    source: Mapped[str] = mapped_column(sa.String(16), default="web")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    entries: Mapped[list[ExerciseEntry]] = relationship(
        back_populates="session_log", cascade="all, delete-orphan"
    )

    __table_args__ = (
        # On PostgreSQL the one-log-a-day index also carries what detection reads
        # (`DETECTION_COLUMNS`): a patient's logs are then an index-only range scan in date
        # order, not one heap page per log (the heap is in arrival order, day by day).
        sa.UniqueConstraint(
            "patient_id", "log_date", postgresql_include=list(SESSION_LOG_DETECTION_COLUMNS)
        ),
        sa.UniqueConstraint("patient_id", "client_id"),
        sa.Index("ix_session_logs_updated_at", "updated_at"),
        sa.CheckConstraint("back_pain BETWEEN 0 AND 10", name="back_pain_range"),
        sa.CheckConstraint("leg_pain BETWEEN 0 AND 10", name="leg_pain_range"),
        sa.CheckConstraint("adherence IS NULL OR adherence BETWEEN 0 AND 1", name="adherence"),
    )

    @property
    def red_flags(self) -> list[str]:
        from rehab.domain.vocabulary import RedFlag

        return [flag.value for flag in RedFlag if getattr(self, f"red_flag_{flag.value}")]


class SessionLogEdit(Base):
    """A submission that replaced a day's log in place (the web form's edit, the API's PUT),
    by its client id: a retry of it is answered as a replay instead of being applied again
    over a newer edit. The log keeps the client id and body of the submission that created it."""

    __tablename__ = "session_log_edits"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(sa.ForeignKey("patients.id"))
    client_id: Mapped[str] = mapped_column(sa.String(64))
    body_hash: Mapped[str] = mapped_column(sa.String(64))
    session_log_id: Mapped[int] = mapped_column(
        sa.ForeignKey("session_logs.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.UniqueConstraint("patient_id", "client_id"),)


class ExerciseEntry(Base):
    __tablename__ = "exercise_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    # No index of its own: the unique (session_log_id, prescription_id) index serves lookups.
    session_log_id: Mapped[int] = mapped_column(
        sa.ForeignKey("session_logs.id", ondelete="CASCADE")
    )
    prescription_id: Mapped[int] = mapped_column(sa.ForeignKey("prescriptions.id"))
    done: Mapped[bool]
    sets_done: Mapped[int] = mapped_column(default=0)
    reps_done: Mapped[int] = mapped_column(default=0)

    session_log: Mapped[SessionLog] = relationship(back_populates="entries")
    prescription: Mapped[Prescription] = relationship()

    __table_args__ = (
        sa.UniqueConstraint("session_log_id", "prescription_id"),
        sa.CheckConstraint("sets_done BETWEEN 0 AND 50", name="sets_done_range"),
        sa.CheckConstraint("reps_done BETWEEN 0 AND 500", name="reps_done_range"),
    )


# --- events, findings, outcomes -------------------------------------------------------------


class EnteredInError:
    """A clinician's correction of a mistake (a wrong date, the wrong patient, a duplicate):
    the row stays, for the record's history and so that an export can retract it (FHIR's
    `entered-in-error`), but no page, detection or CSV uses it any more."""

    entered_in_error_at: Mapped[dt.datetime | None]
    entered_in_error_by_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    entered_in_error_reason: Mapped[str | None] = mapped_column(sa.String(300))

    @property
    def in_error(self) -> bool:
        return self.entered_in_error_at is not None

    @classmethod
    def current(cls) -> sa.ColumnElement[bool]:
        """The rows not marked entered in error: the only ones any page, detection or CSV
        may use."""
        return cls.entered_in_error_at.is_(None)


class Event(EnteredInError, CreatedAt, Base):
    """Something that happened to the patient; falls carry a structured mechanism."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(sa.ForeignKey("patients.id"), index=True)
    event_date: Mapped[dt.date]
    event_type: Mapped[EventType] = mapped_column(str_enum(EventType, "event_type"))
    side: Mapped[Side | None] = mapped_column(str_enum(Side, "side"))
    body_region: Mapped[str | None] = mapped_column(sa.String(80))
    # Procedure and level for surgery ("L4-L5 decompression"), result for imaging, and so on.
    description: Mapped[str] = mapped_column(sa.Text, default="")
    fall_location: Mapped[FallLocation | None] = mapped_column(
        str_enum(FallLocation, "fall_location")
    )
    fall_steps: Mapped[int | None]
    fall_height_cm: Mapped[int | None]
    fall_landed_on: Mapped[LandedOn | None] = mapped_column(str_enum(LandedOn, "landed_on"))
    recorded_by_user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    # Client-generated id of API submissions, so a retried POST stores one event.
    client_id: Mapped[str | None] = mapped_column(sa.String(64))

    __table_args__ = (
        sa.UniqueConstraint("patient_id", "client_id"),
        sa.CheckConstraint("fall_steps IS NULL OR fall_steps BETWEEN 1 AND 200", name="steps"),
        sa.CheckConstraint(
            "fall_height_cm IS NULL OR fall_height_cm BETWEEN 1 AND 2000", name="height"
        ),
    )


class Finding(EnteredInError, CreatedAt, Base):
    """A clinician's dated assessment item: neurodynamic test, imaging result, observation."""

    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(sa.ForeignKey("patients.id"), index=True)
    finding_date: Mapped[dt.date]
    kind: Mapped[FindingKind] = mapped_column(str_enum(FindingKind, "finding_kind"))
    test_name: Mapped[NeurodynamicTest | None] = mapped_column(
        str_enum(NeurodynamicTest, "neurodynamic_test")
    )
    side: Mapped[Side | None] = mapped_column(str_enum(Side, "side"))
    result: Mapped[TestResult | None] = mapped_column(str_enum(TestResult, "test_result"))
    modality: Mapped[ImagingModality | None] = mapped_column(
        str_enum(ImagingModality, "imaging_modality")
    )
    body_region: Mapped[str | None] = mapped_column(sa.String(80))
    text: Mapped[str] = mapped_column(sa.Text, default="")
    author_user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))

    __table_args__ = (
        sa.CheckConstraint(
            "kind != 'neurodynamic_test' OR (test_name IS NOT NULL AND result IS NOT NULL)",
            name="test_complete",
        ),
        sa.CheckConstraint(
            "kind != 'imaging' OR modality IS NOT NULL", name="imaging_needs_modality"
        ),
    )


class OutcomeMeasure(EnteredInError, CreatedAt, Base):
    """A scored questionnaire (ODI 0–100, PSFS 0–10) with its raw answers."""

    __tablename__ = "outcome_measures"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(sa.ForeignKey("patients.id"), index=True)
    instrument: Mapped[Instrument] = mapped_column(str_enum(Instrument, "instrument"))
    measured_on: Mapped[dt.date]
    score: Mapped[float]
    answers: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    recorded_by_user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))


class CorrectionAction(enum.StrEnum):
    MARKED = "marked"  # marked entered in error
    TAKEN_BACK = "taken_back"  # the mark was itself the mistake


class EntryCorrection(Base):
    """One mark of entered in error on an event, finding or score, or its taking back: the
    record's history of its corrections. The entry's own columns hold only the mark in force,
    which a taking back clears; these rows keep every mark's who, when and why, and tell the
    periodic scan whose record changed (`scan.changed_since_evaluation`)."""

    __tablename__ = "entry_corrections"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(sa.ForeignKey("patients.id"))
    # The entry, by the audit log's singular ("event", "finding", "outcome") and its id.
    entry_kind: Mapped[str] = mapped_column(sa.String(10))
    entry_id: Mapped[int]
    action: Mapped[CorrectionAction] = mapped_column(
        str_enum(CorrectionAction, "correction_action")
    )
    # A mark's reason; None for a taking back (its mark's reason stays on the mark's row).
    reason: Mapped[str | None] = mapped_column(sa.String(300))
    by_user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.Index("ix_entry_corrections_patient_id_entry", "patient_id", "entry_kind", "entry_id"),
        sa.Index("ix_entry_corrections_at", "at"),
    )


# --- security -----------------------------------------------------------------------------


class ApiToken(CreatedAt, Base):
    """A per-device bearer token; only its SHA-256 is stored (the token has 256 random bits,
    so a slow hash adds nothing)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    last_used_at: Mapped[dt.datetime | None]
    revoked_at: Mapped[dt.datetime | None]

    user: Mapped[User] = relationship()


class UserSession(Base):
    """A login session, kept on the server so it can be ended: logout, disable, password
    change. The browser holds only a random token; its SHA-256 is stored."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[dt.datetime | None]


class AuditEvent(Base):
    """Append-only record of every access to patient data. Ids only, never content."""

    __tablename__ = "audit_events"
    # One patient's trail in a time range: her access report, the admin's search by patient.
    __table_args__ = (sa.Index("ix_audit_events_patient_id_at", "patient_id", "at"),)

    id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True
    )
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(index=True)
    role: Mapped[str | None] = mapped_column(sa.String(16))
    patient_id: Mapped[int | None]
    action: Mapped[str] = mapped_column(sa.String(64))
    outcome: Mapped[AuditOutcome] = mapped_column(str_enum(AuditOutcome, "audit_outcome"))
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    # What was touched, as "kind:id" (e.g. "session_log:42"); never free text.
    target: Mapped[str | None] = mapped_column(sa.String(64))


# --- detection ----------------------------------------------------------------------------


class AlertStatus(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class AlertJudgement(enum.StrEnum):
    """What came of an alert, in the words of the clinician who resolves it (optional): the
    clinic's own measure of how often alerts were worth their attention."""

    ACTED_ON = "acted_on"  # the patient contacted or seen, the program changed
    NO_ACTION = "no_action"  # looked at: a real change, but nothing needed doing
    NOT_A_CHANGE = "not_a_change"  # a one-off day, a logging mistake: no real change


class Alert(Base):
    """One alert episode (design §2 Alert), as detected by `rehab.domain.detection`.

    Unique per episode: (patient, kind, metric, detected_on), so a task that runs twice
    inserts one row. At most one unresolved alert per (patient, kind, metric), enforced by a
    partial unique index, except red flags: each red-flag day is its own urgent alert.
    """

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(sa.ForeignKey("patients.id"))
    kind: Mapped[str] = mapped_column(sa.String(32))
    # "" when the kind has no metric (red_flag, missed_logs): NULLs would defeat uniqueness.
    metric: Mapped[str] = mapped_column(sa.String(32), default="")
    severity: Mapped[str] = mapped_column(sa.String(16))
    onset: Mapped[dt.date]
    detected_on: Mapped[dt.date]
    resolved_on: Mapped[dt.date | None]
    baseline: Mapped[float | None]
    current: Mapped[float | None]
    change: Mapped[float | None]
    baseline_source: Mapped[str] = mapped_column(sa.String(300), default="")
    related_events: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    explanation: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[AlertStatus] = mapped_column(
        str_enum(AlertStatus, "alert_status"), default=AlertStatus.OPEN
    )
    acknowledged_by_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledge_note: Mapped[str] = mapped_column(sa.Text, default="")
    # None with status resolved: resolved automatically (the metric came back near baseline).
    resolved_by_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    resolved_at: Mapped[dt.datetime | None]
    resolve_note: Mapped[str] = mapped_column(sa.Text, default="")
    # The resolving clinician's judgement; None: not given, or resolved automatically.
    resolve_judgement: Mapped[AlertJudgement | None] = mapped_column(
        str_enum(AlertJudgement, "alert_judgement")
    )
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # When an urgent alert still unacknowledged after `urgent_follow_up_minutes` was e-mailed
    # again to its care team and told to the administrators (`notifications.queue_follow_ups`).
    followed_up_at: Mapped[dt.datetime | None]
    # When the detector last opened it again after resolving it itself (superseded, or no
    # longer shown): the record, corrected since, shows it ongoing again (a mark of entered
    # in error taken back). `evaluation._reopen_all`.
    reopened_at: Mapped[dt.datetime | None]

    __table_args__ = (
        sa.UniqueConstraint("patient_id", "kind", "metric", "detected_on"),
        sa.Index(
            "uq_alerts_one_open_per_metric",
            "patient_id",
            "kind",
            "metric",
            unique=True,
            sqlite_where=sa.text("status != 'resolved' AND kind != 'red_flag'"),
            postgresql_where=sa.text("status != 'resolved' AND kind != 'red_flag'"),
        ),
        sa.Index("ix_alerts_status_patient", "status", "patient_id"),
        # The few urgent alerts nobody has acknowledged yet (the follow-up's every run, the
        # admin page).
        sa.Index(
            "ix_alerts_urgent_open",
            "created_at",
            sqlite_where=sa.text("status = 'open' AND severity = 'urgent'"),
            postgresql_where=sa.text("status = 'open' AND severity = 'urgent'"),
        ),
        sa.CheckConstraint("severity IN ('routine', 'urgent')", name="severity"),
    )

    @property
    def is_urgent(self) -> bool:
        return self.severity == "urgent"


class PinnedBaseline(Base):
    """A clinician's pinned baseline for one metric (overrides the automatic one) from
    `effective_from` until the metric's next row; a row with no level returns the metric to
    the automatic baseline from its date. A row replaced by a pin from the same or an earlier
    date (or a return to automatic on its own first day) stays, with who replaced it and when: the
    baseline's history, and an export's retraction of it. Only current rows count."""

    __tablename__ = "pinned_baselines"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(sa.ForeignKey("patients.id"), index=True)
    metric: Mapped[str] = mapped_column(sa.String(32))
    level: Mapped[float | None]
    spread: Mapped[float | None]
    effective_from: Mapped[dt.date]
    pinned_by_user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    replaced_at: Mapped[dt.datetime | None]
    replaced_by_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))

    @classmethod
    def current(cls) -> sa.ColumnElement[bool]:
        """The rows not replaced: the only ones detection, charts and pages use."""
        return cls.replaced_at.is_(None)


class JobWatermark(Base):
    """How far a periodic job got (e.g. the scan: data changed after `through` is new)."""

    __tablename__ = "job_watermarks"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    through: Mapped[dt.datetime]


# --- notifications ------------------------------------------------------------------------


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class Notification(Base):
    """The outbox (design §2 Notification): one row per message to send, per recipient and
    channel, written in the same transaction as what it announces. Delivery claims a row with
    a conditional update before sending, so it is sent at most once."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient_user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    channel: Mapped[str] = mapped_column(sa.String(16), default="email")
    # "alert" (to a clinician, at once), "alert_digest" (to a clinician, in the daily digest),
    # "reminder" (to a patient who has not logged), "password_reset" (to anyone who asked) or
    # "password_changed" (a notice to the account whose password was changed).
    purpose: Mapped[str] = mapped_column(sa.String(16))
    alert_id: Mapped[int | None] = mapped_column(sa.ForeignKey("alerts.id"), index=True)
    # What makes the row unique per recipient and channel: "alert:42", "reminder:2026-11-26".
    dedup_key: Mapped[str] = mapped_column(sa.String(80))
    urgent: Mapped[bool] = mapped_column(default=False)
    # Digest rows wait for the recipient's daily digest; immediate rows are due at once.
    deliver_after: Mapped[dt.datetime] = mapped_column(default=utcnow)
    status: Mapped[NotificationStatus] = mapped_column(
        str_enum(NotificationStatus, "notification_status"), default=NotificationStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[dt.datetime | None]
    sent_at: Mapped[dt.datetime | None]
    message_id: Mapped[str | None] = mapped_column(sa.String(255))
    # The SMTP reply or error class; never message content.
    last_error: Mapped[str] = mapped_column(sa.String(300), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        sa.UniqueConstraint("recipient_user_id", "channel", "dedup_key"),
        sa.Index("ix_notifications_due", "status", "next_attempt_at"),
    )
