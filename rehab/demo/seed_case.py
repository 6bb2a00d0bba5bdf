"""The seed patient: the case report of /work/shared/seed-case.md replayed as one fictional
patient ("Elena Marsh"), with absolute dates from the case ("≈" dates chosen plausibly).

Timeline: left L4-L5 decompression 2024-06-10; leg pain back (7–8/10) with an MRI showing a
re-herniation ≈ 2024-07-22; a 12-month conservative program; essentially pain-free from
≈ 2025-02 (leg 0–1, back 0–2, occasional twinges); a fall down ten marble stairs on holiday
2025-09-14 (leg pain 6–7/10, left buttock); an assessment 2025-09-22 with every neurodynamic
test negative and a large bruise; MRIs: lumbar spine clear, a Morel-Lavallée lesion irritating
the sciatic nerve in the gluteal region (deep gluteal syndrome); recovery to baseline.
"""

from __future__ import annotations

import datetime as dt
import random

from rehab.demo.common import (
    add_log,
    ar1,
    days_between,
    logging_mask,
    odi_measure,
    pain,
    psfs_measure,
    stream,
)
from rehab.demo.plan import (
    CLINICIAN,
    PATIENT,
    EventPlan,
    FindingPlan,
    OutcomePlan,
    PatientPlan,
    PhasePlan,
    PrescriptionPlan,
    ProgramPlan,
    chain_programs,
)
from rehab.domain.vocabulary import (
    EventType,
    FallLocation,
    FindingKind,
    ImagingModality,
    LandedOn,
    NeurodynamicTest,
    Side,
    TestResult,
)

D = dt.date

SEED_PATIENT_EMAIL = "elena@demo.rehab.invalid"
SEED_PATIENT_NAME = "Elena Marsh"
SEED_PATIENT_PASSWORD = "demo-patient-elena"

SURGERY = D(2024, 6, 10)
FIRST_PROGRAM = D(2024, 6, 24)
LEG_PAIN_RETURNS = D(2024, 7, 15)
SYMPTOM_RETURN = D(2024, 7, 20)
REHERNIATION_MRI = D(2024, 7, 22)
CONSERVATIVE_DECISION = D(2024, 7, 26)
TWELVE_MONTH_PROGRAM = D(2024, 7, 29)
PLATEAU_FROM = D(2024, 8, 26)
PAIN_FREE = D(2025, 2, 1)
FOLLOW_UP_MRI = D(2025, 2, 17)
MAINTENANCE_PROGRAM = D(2025, 7, 28)
HOLIDAY = (D(2025, 9, 10), D(2025, 9, 21))
FALL = D(2025, 9, 14)
PHONE_CALL = D(2025, 9, 15)
ASSESSMENT = D(2025, 9, 22)
MRIS_AFTER_FALL = D(2025, 9, 26)
DEEP_GLUTEAL_DIAGNOSIS = D(2025, 9, 29)
SETTLED = D(2025, 11, 10)
LONG_TERM_PROGRAM = D(2026, 1, 5)

# The demo needs her story from the first program on.
EARLIEST_AS_OF = FIRST_PROGRAM

FALL_DESCRIPTION = (
    "Slipped at the top of a marble staircase on holiday and went down all ten steps on my "
    "buttocks. Left leg pain radiating again."
)
BRUISE_OBSERVATION = "Large bruise over two-thirds of the left buttock, visible swelling."

PSFS_ACTIVITIES = (
    "Walking for 30 minutes",
    "Sitting through a 2-hour film",
    "Gardening",
    "Carrying the shopping home",
)

DAY_NOTES: dict[dt.date, str] = {
    FIRST_PROGRAM: "First day of the home program. Wound sore, leg much better since the op.",
    D(2024, 7, 17): "Left leg aching again down the outside of the shin.",
    SYMPTOM_RETURN: "All the leg pain is back, like before the operation.",
    REHERNIATION_MRI: "MRI today.",
    CONSERVATIVE_DECISION: "Saw the surgeon: no second operation for now, a structured program.",
    D(2024, 10, 7): "New phase: more strength work. Walked 25 minutes without the leg.",
    D(2025, 2, 3): "Hardly any leg pain this week.",
    FOLLOW_UP_MRI: "Follow-up MRI. Feeling well.",
    HOLIDAY[0]: "On holiday, doing the exercises in the hotel room.",
    FALL: "Fell down the marble stairs at the hotel, ten steps on my bottom. Left leg shooting.",
    PHONE_CALL: "Phoned my physio. Worried I have damaged the operated disc.",
    D(2025, 9, 16): "Big bruise on the left buttock, sitting hurts.",
    D(2025, 9, 19): "Short walks only. The leg pain comes from the buttock now.",
    ASSESSMENT: "Assessment with my physio today: all the nerve tests were normal.",
    MRIS_AFTER_FALL: "Two MRI scans today, back and pelvis.",
    DEEP_GLUTEAL_DIAGNOSIS: "Back is fine. A fluid pocket in the buttock is irritating the nerve.",
    D(2025, 10, 20): "Bruise fading, walked 30 minutes.",
    SETTLED: "Leg pain nearly gone again.",
}
TWINGE_NOTES = (
    "Twinge in the left leg after sitting through a long film.",
    "A twinge after a long drive, gone after a walk.",
    "Held one position too long at the desk: brief twinge.",
)

# Findings of the 2025-09-22 assessment: spine positions with nerve tensioning, all negative.
ASSESSMENT_TESTS: tuple[tuple[NeurodynamicTest, Side, str], ...] = (
    (NeurodynamicTest.STRAIGHT_LEG_RAISE, Side.LEFT, "Full range, no leg symptoms."),
    (NeurodynamicTest.STRAIGHT_LEG_RAISE, Side.RIGHT, "Full range, no symptoms."),
    (
        NeurodynamicTest.CROSSED_STRAIGHT_LEG_RAISE,
        Side.RIGHT,
        "Raising the right leg: no left leg pain.",
    ),
    (NeurodynamicTest.SLUMP, Side.LEFT, "Buttock tender on sitting; no neural reproduction."),
    (NeurodynamicTest.SLUMP, Side.RIGHT, "No symptoms."),
    (
        NeurodynamicTest.SEATED_SLUMP_WITH_SPINE_POSITIONS,
        Side.LEFT,
        "Flexion, extension and side bending: no change in leg symptoms.",
    ),
    (NeurodynamicTest.PRONE_KNEE_BEND, Side.LEFT, "No anterior thigh symptoms."),
    (NeurodynamicTest.PRONE_KNEE_BEND, Side.RIGHT, "No symptoms."),
    (NeurodynamicTest.FEMORAL_NERVE_TENSION, Side.LEFT, "No symptoms."),
)


def _programs() -> list[ProgramPlan]:
    return [
        ProgramPlan(
            "Early post-operative program",
            FIRST_PROGRAM,
            None,
            [PhasePlan("Protect the repair", FIRST_PROGRAM, "Walk little and often; no lifting.")],
            [
                PrescriptionPlan("walking", 1, 10, notes="Minutes; add 2 minutes every 3 days."),
                PrescriptionPlan("abdominal-bracing", 3, 10, 10),
                PrescriptionPlan("pelvic-tilt", 2, 10, 5),
                PrescriptionPlan("sciatic-nerve-slider", 2, 10, notes="Gentle, within comfort."),
            ],
        ),
        ProgramPlan(
            "Conservative care after re-herniation: 12-month program",
            TWELVE_MONTH_PROGRAM,
            D(2025, 7, 27),
            [
                PhasePlan(
                    "Protect",
                    TWELVE_MONTH_PROGRAM,
                    "Calm the L5 nerve root: nerve sliders, walking within comfort, positions "
                    "of ease.",
                ),
                PhasePlan(
                    "Build strength",
                    D(2024, 10, 7),
                    "Trunk and hip strength: longer holds, bridge and bird dog progressions.",
                ),
                PhasePlan(
                    "Function and range",
                    D(2025, 1, 13),
                    "Range of motion and daily tasks: bending, lifting, sitting tolerance.",
                ),
                PhasePlan(
                    "Maintain",
                    D(2025, 5, 5),
                    "Keep the gains: the program three times a week plus daily walking.",
                ),
            ],
            [
                PrescriptionPlan("sciatic-nerve-slider", 2, 10),
                PrescriptionPlan("abdominal-bracing", 3, 10, 10),
                PrescriptionPlan("bird-dog", 3, 8, 5),
                PrescriptionPlan("glute-bridge", 3, 10, 3),
                PrescriptionPlan("side-plank-knees", 3, 3, 20),
                PrescriptionPlan("walking", 1, 30, notes="Minutes, at a comfortable pace."),
            ],
        ),
        ProgramPlan(
            "Home maintenance program",
            MAINTENANCE_PROGRAM,
            None,
            [PhasePlan("Maintain", MAINTENANCE_PROGRAM, "Stay strong and active.")],
            [
                PrescriptionPlan("bird-dog", 3, 10, 5),
                PrescriptionPlan("glute-bridge", 3, 12, 3),
                PrescriptionPlan("front-plank", 3, 3, 30),
                PrescriptionPlan("hip-hinge", 3, 10),
                PrescriptionPlan("walking", 1, 40, notes="Minutes."),
            ],
        ),
        ProgramPlan(
            "After the fall: settle, then reload",
            ASSESSMENT,
            None,
            [
                PhasePlan(
                    "Settle",
                    ASSESSMENT,
                    "Let the buttock settle: short walks, gentle nerve sliders, no sitting on "
                    "the bruise for more than 20 minutes.",
                ),
                PhasePlan("Reload", D(2025, 10, 20), "Back to strength work as pain allows."),
                PhasePlan("Maintain", D(2025, 11, 17), "Back to the maintenance routine."),
            ],
            [
                PrescriptionPlan("sciatic-nerve-slider", 2, 8, notes="Gentle; stop if it pulls."),
                PrescriptionPlan("abdominal-bracing", 3, 10, 10),
                PrescriptionPlan("glute-bridge", 2, 8, 3),
                PrescriptionPlan("bird-dog", 2, 8, 5),
                PrescriptionPlan("walking", 1, 20, notes="Minutes; build to 40."),
            ],
        ),
        ProgramPlan(
            "Long-term maintenance",
            LONG_TERM_PROGRAM,
            None,
            [
                PhasePlan(
                    "Maintain", LONG_TERM_PROGRAM, "Three strength sessions a week, walk daily."
                )
            ],
            [
                PrescriptionPlan("bird-dog", 3, 10, 5),
                PrescriptionPlan("glute-bridge", 3, 12, 3),
                PrescriptionPlan("front-plank", 3, 3, 30),
                PrescriptionPlan("step-up", 3, 10),
                PrescriptionPlan("hip-hinge", 3, 10),
                PrescriptionPlan("walking", 1, 45, notes="Minutes."),
            ],
        ),
    ]


def _events() -> list[EventPlan]:
    lumbar = "lumbar spine"
    return [
        EventPlan(
            SURGERY,
            EventType.SURGERY,
            CLINICIAN,
            "Procedure: decompression (laminotomy and discectomy). Level: L4-L5. Side: left. "
            "For severe left leg pain in the L5 distribution.",
            side=Side.LEFT,
            body_region=lumbar,
        ),
        EventPlan(
            SYMPTOM_RETURN,
            EventType.SYMPTOM_RETURN,
            PATIENT,
            "All the left leg pain came back over a few days, down the outside of the shin to "
            "the top of the foot.",
            side=Side.LEFT,
            body_region="left leg",
        ),
        EventPlan(
            REHERNIATION_MRI,
            EventType.IMAGING,
            CLINICIAN,
            "Lumbar MRI: re-herniation (recurrent disc herniation) at L4-L5 on the left, "
            "contacting the traversing left L5 nerve root.",
            side=Side.LEFT,
            body_region=lumbar,
        ),
        EventPlan(
            CONSERVATIVE_DECISION,
            EventType.DIAGNOSIS,
            CLINICIAN,
            "Recurrent left L4-L5 disc herniation. Agreed with the surgeon: conservative care "
            "(a structured 12-month program) instead of revision surgery.",
            side=Side.LEFT,
            body_region=lumbar,
        ),
        EventPlan(
            FOLLOW_UP_MRI,
            EventType.IMAGING,
            CLINICIAN,
            "Follow-up lumbar MRI: the L4-L5 re-herniation is still visible, smaller; "
            "no nerve root compression. Symptoms resolved.",
            side=Side.LEFT,
            body_region=lumbar,
        ),
        EventPlan(
            HOLIDAY[0],
            EventType.TRAVEL,
            PATIENT,
            f"Holiday abroad until {HOLIDAY[1].isoformat()}.",
        ),
        EventPlan(
            FALL,
            EventType.FALL,
            PATIENT,
            FALL_DESCRIPTION,
            side=Side.LEFT,
            body_region="buttocks",
            fall_location=FallLocation.STAIRS,
            fall_steps=10,
            fall_landed_on=LandedOn.BUTTOCKS,
        ),
        EventPlan(
            MRIS_AFTER_FALL,
            EventType.IMAGING,
            CLINICIAN,
            "Lumbar spine MRI: clear. No re-herniation at L4-L5, no new trauma; the surgical "
            "site is intact.",
            body_region=lumbar,
        ),
        EventPlan(
            MRIS_AFTER_FALL,
            EventType.IMAGING,
            CLINICIAN,
            "Pelvic and gluteal MRI: Morel-Lavallée lesion (closed degloving of the deep "
            "gluteal fascia) in the left buttock, irritating the sciatic nerve in the gluteal "
            "region.",
            side=Side.LEFT,
            body_region="left gluteal region",
        ),
        EventPlan(
            DEEP_GLUTEAL_DIAGNOSIS,
            EventType.DIAGNOSIS,
            CLINICIAN,
            "Deep gluteal syndrome: the left sciatic nerve is irritated in the gluteal region by "
            "a Morel-Lavallée lesion after the fall. Lumbar spine clear. Agreed with the "
            "surgeon: conservative care, no invasive treatment.",
            side=Side.LEFT,
            body_region="left gluteal region",
        ),
    ]


def _findings() -> list[FindingPlan]:
    nd = FindingKind.NEURODYNAMIC_TEST
    findings = [
        FindingPlan(
            REHERNIATION_MRI,
            FindingKind.IMAGING,
            "Re-herniation at L4-L5, left, contacting the traversing L5 nerve root.",
            modality=ImagingModality.MRI,
            side=Side.LEFT,
            body_region="lumbar spine",
        ),
        FindingPlan(
            TWELVE_MONTH_PROGRAM,
            nd,
            "Left leg pain reproduced at 40 degrees.",
            test_name=NeurodynamicTest.STRAIGHT_LEG_RAISE,
            side=Side.LEFT,
            result=TestResult.POSITIVE,
        ),
        FindingPlan(
            TWELVE_MONTH_PROGRAM,
            nd,
            "Left L5 symptoms reproduced, eased by neck extension.",
            test_name=NeurodynamicTest.SLUMP,
            side=Side.LEFT,
            result=TestResult.POSITIVE,
        ),
        FindingPlan(
            TWELVE_MONTH_PROGRAM,
            nd,
            "No left leg pain when raising the right leg.",
            test_name=NeurodynamicTest.CROSSED_STRAIGHT_LEG_RAISE,
            side=Side.RIGHT,
            result=TestResult.NEGATIVE,
        ),
        FindingPlan(
            TWELVE_MONTH_PROGRAM,
            FindingKind.OBSERVATION,
            "Reduced lumbar flexion; walking tolerance about 10 minutes, limited by left leg pain.",
            body_region="lumbar spine",
        ),
        FindingPlan(
            FOLLOW_UP_MRI,
            FindingKind.IMAGING,
            "Re-herniation at L4-L5 still visible, smaller; no nerve root compression.",
            modality=ImagingModality.MRI,
            side=Side.LEFT,
            body_region="lumbar spine",
        ),
        FindingPlan(
            D(2025, 2, 24),
            nd,
            "Full range, no symptoms.",
            test_name=NeurodynamicTest.STRAIGHT_LEG_RAISE,
            side=Side.LEFT,
            result=TestResult.NEGATIVE,
        ),
        FindingPlan(
            D(2025, 2, 24),
            nd,
            "No symptoms.",
            test_name=NeurodynamicTest.SLUMP,
            side=Side.LEFT,
            result=TestResult.NEGATIVE,
        ),
    ]
    findings += [
        FindingPlan(ASSESSMENT, nd, text, test_name=test, side=side, result=TestResult.NEGATIVE)
        for test, side, text in ASSESSMENT_TESTS
    ]
    findings += [
        FindingPlan(
            ASSESSMENT, FindingKind.OBSERVATION, BRUISE_OBSERVATION, body_region="left buttock"
        ),
        FindingPlan(
            ASSESSMENT,
            FindingKind.OBSERVATION,
            "Lumbar movements full and pain-free; leg strength, sensation and reflexes normal. "
            "Tender over the left buttock; sitting provokes the leg pain.",
            body_region="lumbar spine",
        ),
        FindingPlan(
            MRIS_AFTER_FALL,
            FindingKind.IMAGING,
            "Lumbar spine clear: no re-herniation, no new trauma.",
            modality=ImagingModality.MRI,
            body_region="lumbar spine",
        ),
        FindingPlan(
            MRIS_AFTER_FALL,
            FindingKind.IMAGING,
            "Morel-Lavallée lesion (closed degloving of the deep gluteal fascia), left gluteal "
            "region, irritating the sciatic nerve: deep gluteal syndrome.",
            modality=ImagingModality.MRI,
            side=Side.LEFT,
            body_region="pelvis and left gluteal region",
        ),
        FindingPlan(
            D(2025, 11, 17),
            FindingKind.OBSERVATION,
            "Bruising has faded; the buttock swelling has resolved.",
            body_region="left buttock",
        ),
        FindingPlan(
            D(2025, 11, 17),
            nd,
            "Full range, no symptoms.",
            test_name=NeurodynamicTest.STRAIGHT_LEG_RAISE,
            side=Side.LEFT,
            result=TestResult.NEGATIVE,
        ),
    ]
    return findings


def _lerp(
    day: dt.date, start: dt.date, end: dt.date, a: float, b: float, power: float = 1.0
) -> float:
    x = min(1.0, max(0.0, (day - start).days / max(1, (end - start).days)))
    return a + (b - a) * (1.0 - (1.0 - x) ** power)


def _levels(day: dt.date) -> tuple[float, float, float]:
    """Underlying (leg pain, back pain, share of exercises done) on a day of her story."""
    if day < LEG_PAIN_RETURNS:
        return (
            _lerp(day, FIRST_PROGRAM, LEG_PAIN_RETURNS, 1.8, 1.0),
            _lerp(day, FIRST_PROGRAM, LEG_PAIN_RETURNS, 3.8, 2.6),
            0.9,
        )
    if day < REHERNIATION_MRI:
        return _lerp(day, LEG_PAIN_RETURNS, D(2024, 7, 21), 1.5, 7.5), 3.2, 0.75
    if day < PLATEAU_FROM:
        return 7.5, 3.5, 0.8
    if day < PAIN_FREE:
        leg = _lerp(day, PLATEAU_FROM, PAIN_FREE, 7.5, 0.5, power=1.6)
        back = _lerp(day, PLATEAU_FROM, PAIN_FREE, 3.5, 1.0, power=1.6)
        return leg, back, 0.92
    if day < FALL:
        return 0.35, 1.0, 0.7 if HOLIDAY[0] <= day else 0.93
    if day <= D(2025, 9, 28):
        return 6.5, 2.6, 0.45 if day <= HOLIDAY[1] else 0.85
    if day < SETTLED:
        leg = _lerp(day, D(2025, 9, 28), SETTLED, 6.5, 0.6, power=1.3)
        back = _lerp(day, D(2025, 9, 28), SETTLED, 2.6, 1.0)
        return leg, back, 0.88
    return 0.35, 1.0, 0.92


def _bounds(day: dt.date) -> tuple[tuple[int, int], tuple[int, int]]:
    """Hard ranges the case states: (leg low, leg high), (back low, back high)."""
    if REHERNIATION_MRI <= day < PLATEAU_FROM:
        return (7, 8), (2, 5)
    if FALL - dt.timedelta(days=7) <= day < FALL:
        # A good week before the fall: the rise begins with the fall.
        return (0, 0), (0, 1) if day < FALL - dt.timedelta(days=3) else (0, 0)
    if PAIN_FREE <= day < FALL or day >= SETTLED + dt.timedelta(days=7):
        return (0, 1), (0, 2)
    if day == FALL:
        return (6, 6), (2, 3)
    if FALL < day <= D(2025, 9, 28):
        return (6, 7), (1, 4)
    return (0, 10), (0, 10)


def _always_logged(day: dt.date, as_of: dt.date) -> bool:
    return (
        day == FIRST_PROGRAM
        or LEG_PAIN_RETURNS <= day <= D(2024, 8, 10)
        or D(2025, 9, 8) <= day <= D(2025, 10, 12)
        or day in DAY_NOTES
        or (as_of - day).days < 3
    )


def _location(day: dt.date, leg: int) -> str | None:
    if FALL <= day < SETTLED + dt.timedelta(days=7) and leg >= 1:
        return "buttock"
    if LEG_PAIN_RETURNS <= day < PAIN_FREE and leg >= 3:
        return "outer shin and top of foot"
    return None


def seed_patient(seed: int, as_of: dt.date) -> PatientPlan:
    """The seed patient's whole history up to `as_of` (dates absolute, from the case)."""
    if as_of < EARLIEST_AS_OF:
        raise ValueError(f"the demo starts on {EARLIEST_AS_OF.isoformat()}; pick a later date")
    rng = stream(seed, "seed-patient")
    plan = PatientPlan(
        key="elena",
        display_name=SEED_PATIENT_NAME,
        email=SEED_PATIENT_EMAIL,
        year_of_birth=1971,
        condition_summary="Left L5 radiculopathy: L4-L5 decompression (2024-06), re-herniation "
        "(2024-07) managed conservatively",
        team=0,
        registered_on=D(2024, 6, 20),
        password=SEED_PATIENT_PASSWORD,
        trajectory="seed case",
        programs=_programs(),
        events=_events(),
        findings=_findings(),
    )
    plan.truncate(as_of)
    chain_programs(plan.programs)
    if as_of >= DEEP_GLUTEAL_DIAGNOSIS:
        plan.condition_summary += "; deep gluteal syndrome after a fall (2025-09)"

    days = days_between(FIRST_PROGRAM, as_of)
    leg_noise = ar1(rng, len(days), 0.55, 0.5)
    back_noise = ar1(rng, len(days), 0.6, 0.5)
    logged = logging_mask(rng, len(days), 0.95, 1.3)
    for i, day in enumerate(days):
        twinge = PAIN_FREE <= day < FALL - dt.timedelta(days=7) and rng.random() < 1 / 30
        if not (logged[i] or _always_logged(day, as_of)):
            continue
        leg_level, back_level, p_done = _levels(day)
        (leg_lo, leg_hi), (back_lo, back_hi) = _bounds(day)
        leg = pain(leg_level + leg_noise[i], leg_lo, leg_hi)
        back = pain(back_level + back_noise[i], back_lo, back_hi)
        note = DAY_NOTES.get(day, "")
        if twinge and not note:
            leg, note = 2, rng.choice(TWINGE_NOTES)
        add_log(
            plan,
            rng,
            day,
            back_pain=back,
            leg_pain=leg,
            side=Side.LEFT,
            p_done=p_done,
            location=_location(day, leg),
            note=note,
        )

    plan.outcomes = _outcomes(rng, as_of)
    return plan


# (date, ODI %, PSFS ratings in the order of PSFS_ACTIVITIES): post-op, after the
# re-herniation, 3, 6 and 12 months into the program, after the fall, recovered.
OUTCOME_POINTS: tuple[tuple[dt.date, float, tuple[int, ...]], ...] = (
    (FIRST_PROGRAM, 34, (5, 5, 2, 4)),
    (TWELVE_MONTH_PROGRAM, 52, (2, 2, 1, 2)),
    (D(2024, 10, 28), 30, (6, 5, 4, 5)),
    (D(2025, 1, 27), 12, (8, 8, 7, 8)),
    (MAINTENANCE_PROGRAM, 4, (10, 9, 9, 10)),
    (ASSESSMENT, 38, (4, 3, 5, 5)),
    (D(2025, 11, 17), 8, (9, 9, 8, 9)),
)
# After recovery: a check every 26 weeks.
FOLLOW_UP = (4, (10, 9, 9, 10))


def _outcomes(rng: random.Random, as_of: dt.date) -> list[OutcomePlan]:
    points = list(OUTCOME_POINTS)
    day = points[-1][0] + dt.timedelta(weeks=26)
    while day <= as_of:
        points.append((day, *FOLLOW_UP))
        day += dt.timedelta(weeks=26)
    out = []
    for day, odi, ratings in points:
        if day > as_of:
            continue
        out.append(odi_measure(day, odi, rng))
        out.append(psfs_measure(day, dict(zip(PSFS_ACTIVITIES, ratings, strict=True))))
    return out
