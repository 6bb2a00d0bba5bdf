"""The controlled vocabulary shared by every layer: roles, event types, sides, red flags."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    PATIENT = "patient"
    CLINICIAN = "clinician"
    ADMIN = "admin"


class Side(StrEnum):
    LEFT = "left"
    RIGHT = "right"
    BOTH = "both"


class EventType(StrEnum):
    FALL = "fall"
    SURGERY = "surgery"
    IMAGING = "imaging"
    INJURY = "injury"
    DIAGNOSIS = "diagnosis"
    SYMPTOM_RETURN = "symptom_return"
    MEDICATION_CHANGE = "medication_change"
    TRAVEL = "travel"
    OTHER = "other"


class FallLocation(StrEnum):
    STAIRS = "stairs"
    LEVEL_GROUND = "level_ground"
    FROM_HEIGHT = "from_height"
    ICE_OR_WET = "ice_or_wet"
    OTHER = "other"


class LandedOn(StrEnum):
    BUTTOCKS = "buttocks"
    BACK = "back"
    HIP = "hip"
    HANDS = "hands"
    KNEES = "knees"
    SIDE = "side"
    HEAD = "head"
    FEET = "feet"
    OTHER = "other"


class RedFlag(StrEnum):
    """Symptoms that bypass statistics: urgent, immediate, every time (design §3)."""

    NEW_NUMBNESS = "new_numbness"
    NEW_WEAKNESS = "new_weakness"
    BLADDER_BOWEL_CHANGE = "bladder_bowel_change"
    SADDLE_NUMBNESS = "saddle_numbness"


RED_FLAG_LABELS: dict[RedFlag, str] = {
    RedFlag.NEW_NUMBNESS: "New numbness",
    RedFlag.NEW_WEAKNESS: "New weakness in a leg or foot",
    RedFlag.BLADDER_BOWEL_CHANGE: "Change in bladder or bowel control",
    RedFlag.SADDLE_NUMBNESS: "Numbness around the groin or buttocks (saddle area)",
}


# Each alert kind (design §2) in words: the e-mail's subject line, the admin's report, the
# FHIR export's DetectedIssue.
ALERT_KIND_TITLES: dict[str, str] = {
    "pain_regression": "Pain regression",
    "adherence_drop": "Drop in adherence",
    "red_flag": "Red flag",
    "missed_logs": "Missed logs",
    "function_decline": "Decline in function",
}


class FindingKind(StrEnum):
    NEURODYNAMIC_TEST = "neurodynamic_test"
    IMAGING = "imaging"
    OBSERVATION = "observation"


class NeurodynamicTest(StrEnum):
    STRAIGHT_LEG_RAISE = "straight_leg_raise"
    SLUMP = "slump"
    PRONE_KNEE_BEND = "prone_knee_bend"
    CROSSED_STRAIGHT_LEG_RAISE = "crossed_straight_leg_raise"
    FEMORAL_NERVE_TENSION = "femoral_nerve_tension"
    SEATED_SLUMP_WITH_SPINE_POSITIONS = "seated_slump_with_spine_positions"


class TestResult(StrEnum):
    __test__ = False  # not a pytest class despite the name
    POSITIVE = "positive"
    NEGATIVE = "negative"
    EQUIVOCAL = "equivocal"


class ImagingModality(StrEnum):
    MRI = "mri"
    CT = "ct"
    XRAY = "xray"
    ULTRASOUND = "ultrasound"


class Instrument(StrEnum):
    ODI = "odi"
    PSFS = "psfs"


class NotifyMode(StrEnum):
    IMMEDIATE = "immediate"
    DIGEST = "digest"


class AuditOutcome(StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    FAILED = "failed"


def humanize(value: str) -> str:
    """`straight_leg_raise` -> `Straight leg raise`: enum values read as labels."""
    return value.replace("_", " ").capitalize()
