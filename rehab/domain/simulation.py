"""Seeded synthetic cohort with labeled regressions, for `rehab eval` and the tests.

Each simulated patient follows one trajectory class seen in low-back-pain cohorts (design §3:
Dunn 2006, Kongsted 2015/2017): persistent mild, persistent moderate, persistent severe,
recovering, fluctuating, and improvement with relapse. On top of the class's underlying level:
- autocorrelated day-to-day noise (AR(1), within-person SD ≈ 1–1.6, design §3), rounded to the
  integer NRS and clipped to 0–10;
- benign flares of 1–2 days, three in four lasting a single day (Suri 2011), never labeled;
- labeled regressions of several shapes: `step` (sudden, held, sudden return), `ramp` (linear
  rise over days, then held), `fall_flare` (a logged fall or injury, then a jump that decays),
  and `relapse` (the relapsing class's slow return of pain, held for weeks);
- bursty missing days (a two-state Markov chain) and the occasional long gap;
- events: falls that cause flares, falls that cause nothing, travel, imaging, medication
  changes; a spine-surgery history for some patients;
- red-flag days (a few linked to falls) and adherence with labeled drops.

Every random draw comes from a generator seeded by (seed, patient index), so a cohort is
reproducible and a patient's data do not depend on how many others are generated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from rehab.domain.series import (
    PAIN_METRICS,
    UNSPECIFIED_RED_FLAG,
    PainMetric,
    PatientEvent,
    PatientSeries,
)

FloatArray = npt.NDArray[np.float64]

TRAJECTORY_CLASSES: tuple[str, ...] = (
    "persistent_mild",
    "persistent_moderate",
    "persistent_severe",
    "recovering",
    "fluctuating",
    "relapsing",
)
REGRESSION_SHAPES: tuple[str, ...] = ("step", "ramp", "fall_flare", "relapse")

FALL_NOTES: tuple[str, ...] = (
    "slipped at the top of a staircase, went down 10 steps on buttocks",
    "tripped on a kerb, landed on left hip",
    "slipped on ice, landed on back",
    "fell from a ladder (about 1 m), landed on feet then buttocks",
    "missed the last stair, landed on buttocks",
    "slipped in the shower, landed on side",
)
INJURY_NOTES: tuple[str, ...] = (
    "lifted a heavy suitcase, felt a twinge",
    "rear-ended in a car at low speed",
    "twisted while gardening",
)
OTHER_EVENT_NOTES: tuple[tuple[str, str], ...] = (
    ("travel", "holiday abroad, long flight"),
    ("travel", "weekend trip by car"),
    ("imaging", "lumbar MRI"),
    ("medication_change", "stopped anti-inflammatory"),
    ("medication_change", "started new sleep medication"),
    ("other", "moved house"),
)
SURGERY_HISTORY: tuple[str, ...] = (
    "left L4-L5 decompression",
    "right L5-S1 microdiscectomy",
    "L4-L5 fusion",
)


@dataclass(frozen=True, slots=True)
class CohortParams:
    """How a cohort is drawn; ranges are (low, high) of per-patient uniform draws."""

    name: str = "default"
    noise_sd: tuple[float, float] = (1.0, 1.6)
    noise_ar: tuple[float, float] = (0.2, 0.6)
    # Near 0 the NRS has a floor: low-pain patients vary less (noise × 0.5 at level 0, full
    # from level 2). The harsh preset turns this off (clipped full noise at the floor).
    floor_damped_noise: bool = True
    log_rate: tuple[float, float] = (0.65, 0.97)
    missing_run_mean_days: float = 2.0
    long_gap_probability: float = 0.25
    spikes_per_month: tuple[float, float] = (0.3, 1.5)
    spike_size: tuple[float, float] = (2.0, 5.5)
    two_day_spike_fraction: float = 0.25
    fluctuation_sd: tuple[float, float] = (0.5, 1.0)
    drift_sd: float = 0.3
    regressions_per_year: float = 2.5
    regression_size_weights: tuple[tuple[int, float], ...] = (
        (2, 0.2),
        (3, 0.3),
        (4, 0.25),
        (5, 0.15),
        (6, 0.1),
    )
    shape_weights: tuple[tuple[str, float], ...] = (
        ("step", 0.35),
        ("ramp", 0.3),
        ("fall_flare", 0.35),
    )
    class_weights: tuple[tuple[str, float], ...] = (
        ("persistent_mild", 0.28),
        ("persistent_moderate", 0.17),
        ("persistent_severe", 0.05),
        ("recovering", 0.2),
        ("fluctuating", 0.15),
        ("relapsing", 0.15),
    )
    falls_without_flare_per_year: float = 0.4
    other_events_per_year: float = 3.0
    red_flags_per_year: float = 0.4
    red_flag_with_fall_probability: float = 0.1
    adherence_drop_probability: float = 0.4
    surgery_history_probability: float = 0.3


COHORT_PRESETS: dict[str, CohortParams] = {
    "default": CohortParams(),
    # Noisier, more autocorrelated, more benign flares, sparser logging.
    "harsh": CohortParams(
        name="harsh",
        noise_sd=(1.3, 2.0),
        noise_ar=(0.4, 0.75),
        floor_damped_noise=False,
        log_rate=(0.55, 0.9),
        missing_run_mean_days=2.5,
        spikes_per_month=(0.8, 2.5),
        spike_size=(2.0, 6.0),
        two_day_spike_fraction=0.35,
        fluctuation_sd=(0.8, 1.4),
        drift_sd=0.5,
    ),
    # Quiet patients who log almost every day: tests the floor on the noise estimate.
    "quiet": CohortParams(
        name="quiet",
        noise_sd=(0.6, 1.1),
        noise_ar=(0.2, 0.6),
        log_rate=(0.85, 1.0),
        spikes_per_month=(0.2, 1.0),
    ),
    # Patients who log every other day or less.
    "sparse": CohortParams(
        name="sparse",
        log_rate=(0.4, 0.7),
        missing_run_mean_days=3.0,
        long_gap_probability=0.4,
    ),
}


@dataclass(frozen=True, slots=True)
class RegressionLabel:
    """A planted pain regression: the underlying level is `size` points above its usual level
    from `onset` to `end` (for ramps and flares, the days when most of the rise is present)."""

    patient_id: str
    metric: PainMetric
    onset: date
    end: date
    size: int
    shape: str
    event_date: date | None = None

    @property
    def duration_days(self) -> int:
        return (self.end - self.onset).days + 1


@dataclass(frozen=True, slots=True)
class AdherenceDropLabel:
    patient_id: str
    onset: date
    end: date
    size: float

    @property
    def duration_days(self) -> int:
        return (self.end - self.onset).days + 1


@dataclass(frozen=True, slots=True)
class SimulatedPatient:
    series: PatientSeries
    trajectory_class: str
    regressions: tuple[RegressionLabel, ...]
    adherence_drops: tuple[AdherenceDropLabel, ...]
    red_flag_days: tuple[date, ...]


@dataclass(frozen=True, slots=True)
class Cohort:
    seed: int
    params: CohortParams
    start: date
    days: int
    patients: tuple[SimulatedPatient, ...] = field(default=())

    @property
    def last_day(self) -> date:
        return self.start + timedelta(days=self.days - 1)


def _pick(rng: np.random.Generator, weights: tuple[tuple[str, float], ...]) -> str:
    names = [name for name, _ in weights]
    p = np.array([w for _, w in weights], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _ar1(rng: np.random.Generator, n: int, sd: float, phi: float) -> FloatArray:
    """Stationary AR(1) noise with marginal SD `sd` and lag-1 autocorrelation `phi`."""
    shocks = rng.normal(0.0, sd * np.sqrt(1.0 - phi * phi), n)
    out = np.empty(n, dtype=np.float64)
    out[0] = rng.normal(0.0, sd)
    for i in range(1, n):
        out[i] = phi * out[i - 1] + shocks[i]
    return out


def _slow_wander(rng: np.random.Generator, n: int, sd: float, timescale_days: float) -> FloatArray:
    """A slowly varying component (AR(1) with a long memory): the fluctuating class's waves."""
    phi = float(np.exp(-1.0 / timescale_days))
    return _ar1(rng, n, sd, phi)


def _class_level(rng: np.random.Generator, trajectory_class: str, n: int) -> FloatArray:
    """Underlying pain level of one metric for the class, before flares and regressions."""
    t = np.arange(n, dtype=np.float64)
    if trajectory_class == "persistent_mild":
        return np.full(n, rng.uniform(0.3, 3.0))
    if trajectory_class == "persistent_moderate":
        return np.full(n, rng.uniform(3.0, 5.5))
    if trajectory_class == "persistent_severe":
        return np.full(n, rng.uniform(5.5, 7.5))
    if trajectory_class == "fluctuating":
        return np.full(n, rng.uniform(2.5, 5.5))
    # recovering and relapsing: exponential recovery from a high start, starting at once or
    # after a delay, settling at a low level (their baseline must follow them down).
    start = rng.uniform(5.0, 8.5)
    floor = rng.uniform(0.3, 2.5)
    tau = rng.uniform(15.0, 90.0)
    delay = rng.uniform(0.0, 60.0)
    return floor + (start - floor) * np.exp(-np.clip(t - delay, 0.0, None) / tau)


def _regression_profile(
    rng: np.random.Generator, shape: str, size: float, n: int, onset: int
) -> tuple[FloatArray, int]:
    """Excess pain over the days of the series and the index of the labeled end."""
    excess = np.zeros(n, dtype=np.float64)
    t = np.arange(n) - onset
    if shape == "step":
        hold = int(rng.integers(3, 29))
        back = int(rng.integers(1, 5))
        end = onset + hold - 1
        excess[(t >= 0) & (t < hold)] = size
        tail = (t >= hold) & (t < hold + back)
        excess[tail] = size * (1.0 - (t[tail] - hold + 1) / (back + 1))
    elif shape == "ramp":
        rise = int(rng.integers(3, 11))
        hold = int(rng.integers(2, 21))
        back = int(rng.integers(2, 6))
        end = onset + rise + hold - 1
        rising = (t >= 0) & (t < rise)
        excess[rising] = size * (t[rising] + 1) / rise
        excess[(t >= rise) & (t < rise + hold)] = size
        tail = (t >= rise + hold) & (t < rise + hold + back)
        excess[tail] = size * (1.0 - (t[tail] - rise - hold + 1) / (back + 1))
    elif shape == "fall_flare":
        hold = int(rng.integers(0, 4))
        half_life = rng.uniform(4.0, 14.0)
        after = np.clip(t - hold, 0, None)
        excess[t >= 0] = size * 0.5 ** (after[t >= 0] / half_life)
        # Labeled while at least half the jump (and at least 1.5 points) is present.
        keep = max(1.5, size / 2.0)
        end = onset + hold + int(np.floor(half_life * np.log2(size / keep)))
    elif shape == "relapse":
        rise = int(rng.integers(5, 16))
        hold = int(rng.integers(30, 121))
        end = onset + rise + hold - 1
        rising = (t >= 0) & (t < rise)
        excess[rising] = size * (t[rising] + 1) / rise
        excess[(t >= rise) & (t < rise + hold)] = size
        tail = (t >= rise + hold) & (t < rise + hold + 10)
        excess[tail] = size * (1.0 - (t[tail] - rise - hold + 1) / 11)
    else:  # pragma: no cover - shapes are a closed set
        raise ValueError(shape)
    return excess, min(end, n - 1)


def _logged_mask(rng: np.random.Generator, params: CohortParams, n: int) -> npt.NDArray[np.bool_]:
    """Bursty logging: a two-state Markov chain, plus maybe one long gap (holiday, illness)."""
    rate = rng.uniform(*params.log_rate)
    back_to_logging = 1.0 / params.missing_run_mean_days
    stop_logging = min(0.95, back_to_logging * (1.0 - rate) / rate)
    u = rng.random(n)
    logged = np.empty(n, dtype=np.bool_)
    state = True
    for i in range(n):
        logged[i] = state
        state = u[i] >= stop_logging if state else u[i] < back_to_logging
    logged[0] = True
    if rng.random() < params.long_gap_probability and n > 60:
        gap_start = int(rng.integers(30, n - 20))
        logged[gap_start : gap_start + int(rng.integers(5, 22))] = False
    return logged


def simulate_patient(
    seed: int, index: int, params: CohortParams, start: date, n_days: int
) -> SimulatedPatient:
    """Draw one patient (deterministic in seed and index)."""
    rng = np.random.default_rng([seed, index])
    patient_id = f"P{index:05d}"
    trajectory_class = _pick(rng, params.class_weights)
    n = n_days
    days = [start + timedelta(days=i) for i in range(n)]

    logged = _logged_mask(rng, params, n)
    events: list[PatientEvent] = []
    labels: list[RegressionLabel] = []
    red_flag_index: set[int] = set()
    leg_side = str(rng.choice(["left", "right", "both"]))

    means: dict[PainMetric, FloatArray] = {}
    regression_excess: dict[PainMetric, FloatArray] = {}
    for metric in PAIN_METRICS:
        level = _class_level(rng, trajectory_class, n)
        if metric == "leg_pain" and rng.random() < 0.3:
            level = np.minimum(level, rng.uniform(0.0, 1.5))  # little or no leg pain
        level = level + _slow_wander(rng, n, params.drift_sd, 40.0)
        if trajectory_class == "fluctuating":
            level = level + _slow_wander(
                rng, n, rng.uniform(*params.fluctuation_sd), rng.uniform(7.0, 30.0)
            )
        means[metric] = level
        regression_excess[metric] = np.zeros(n, dtype=np.float64)

    # Regressions: after a 30-day run-in, each on leg pain, back pain or both (the seed case's
    # signal was leg pain alone); a new one starts only 3 weeks after the previous one ended.
    n_regressions = int(rng.poisson(params.regressions_per_year * n / 365.0))
    candidates = sorted(int(rng.integers(30, max(31, n - 5))) for _ in range(n_regressions))
    if trajectory_class == "relapsing" and n > 120:
        relapse_onset = int(rng.integers(90, max(91, n - 30)))
        candidates = [relapse_onset] + [c for c in candidates if c > relapse_onset]
    sizes = [s for s, _ in params.regression_size_weights]
    size_p = np.array([w for _, w in params.regression_size_weights], dtype=np.float64)
    free_from = 0
    for k, onset in enumerate(candidates):
        if onset < free_from:
            continue
        is_relapse = trajectory_class == "relapsing" and k == 0
        shape = "relapse" if is_relapse else _pick(rng, params.shape_weights)
        which = rng.random()
        metrics: tuple[PainMetric, ...] = (
            ("leg_pain",)
            if which < 0.5
            else ("back_pain",)
            if which < 0.8
            else ("leg_pain", "back_pain")
        )
        size = int(rng.choice(sizes, p=size_p / size_p.sum()))
        if shape == "relapse":
            size = int(rng.integers(2, 5))
        event_day: int | None = None
        if shape == "fall_flare":
            event_day = max(0, onset - int(rng.integers(0, 2)))
            is_fall = rng.random() < 0.8
            events.append(
                PatientEvent(
                    date=days[event_day],
                    event_type="fall" if is_fall else "injury",
                    note=str(rng.choice(FALL_NOTES if is_fall else INJURY_NOTES)),
                )
            )
            if rng.random() < params.red_flag_with_fall_probability:
                red_flag_index.add(onset)
        profile_seed = int(rng.integers(0, 2**32))
        for metric in metrics:
            room = int(np.floor(10.0 - float(means[metric][onset])))
            metric_size = min(size, room)
            if metric_size < 2:
                continue
            excess, end = _regression_profile(
                np.random.default_rng(profile_seed), shape, float(metric_size), n, onset
            )
            regression_excess[metric] = np.maximum(regression_excess[metric], excess)
            free_from = max(free_from, end + 21)
            labels.append(
                RegressionLabel(
                    patient_id=patient_id,
                    metric=metric,
                    onset=days[onset],
                    end=days[end],
                    size=metric_size,
                    shape=shape,
                    event_date=days[event_day] if event_day is not None else None,
                )
            )

    pain: dict[PainMetric, FloatArray] = {}
    for metric in PAIN_METRICS:
        spikes = np.zeros(n, dtype=np.float64)
        n_spikes = int(rng.poisson(rng.uniform(*params.spikes_per_month) * n / 30.0))
        for _ in range(n_spikes):
            day = int(rng.integers(0, n))
            length = 2 if rng.random() < params.two_day_spike_fraction else 1
            spikes[day : day + length] = np.maximum(
                spikes[day : day + length], rng.uniform(*params.spike_size)
            )
        noise = _ar1(rng, n, rng.uniform(*params.noise_sd), rng.uniform(*params.noise_ar))
        if params.floor_damped_noise:
            noise = noise * np.clip(0.5 + means[metric] / 4.0, 0.5, 1.0)
        raw = means[metric] + regression_excess[metric] + spikes + noise
        pain[metric] = np.clip(np.rint(raw), 0.0, 10.0)

    # Falls and injuries that cause no change in pain, and everyday events.
    for _ in range(int(rng.poisson(params.falls_without_flare_per_year * n / 365.0))):
        events.append(
            PatientEvent(
                date=days[int(rng.integers(0, n))],
                event_type="fall",
                note=str(rng.choice(FALL_NOTES)),
            )
        )
    for _ in range(int(rng.poisson(params.other_events_per_year * n / 365.0))):
        event_type, note = OTHER_EVENT_NOTES[int(rng.integers(0, len(OTHER_EVENT_NOTES)))]
        when = days[int(rng.integers(0, n))]
        events.append(PatientEvent(date=when, event_type=event_type, note=note))
    if rng.random() < params.surgery_history_probability:
        # History travels as a dated surgery event so that it survives the CSV round trip.
        surgery_day = start - timedelta(days=int(rng.integers(200, 900)))
        description = str(rng.choice(SURGERY_HISTORY))
        events.append(PatientEvent(date=surgery_day, event_type="surgery", note=description))

    for _ in range(int(rng.poisson(params.red_flags_per_year * n / 365.0))):
        red_flag_index.add(int(rng.integers(0, n)))
    for day in red_flag_index:
        logged[day] = True

    # Adherence: a usual level, skipped days, set-count granularity, and maybe a labeled drop.
    usual = rng.uniform(0.55, 1.0)
    adherence_level = np.full(n, usual)
    drops: list[AdherenceDropLabel] = []
    if rng.random() < params.adherence_drop_probability and n > 60:
        onset = int(rng.integers(30, n - 10))
        length = int(rng.integers(7, 31))
        factor = rng.uniform(0.0, 0.5)
        adherence_level[onset : onset + length] = usual * factor
        end = min(n - 1, onset + length - 1)
        drops.append(
            AdherenceDropLabel(
                patient_id=patient_id,
                onset=days[onset],
                end=days[end],
                size=round(usual * (1.0 - factor), 3),
            )
        )
    in_regression = (regression_excess["back_pain"] + regression_excess["leg_pain"]) > 1.5
    adherence_level = np.where(in_regression, adherence_level * 0.9, adherence_level)
    skipped = rng.random(n) < 0.04 + 0.15 * (1.0 - adherence_level)
    adherence = np.clip(adherence_level + rng.normal(0.0, 0.1, n), 0.0, 1.0)
    adherence = np.round(adherence * 6.0) / 6.0
    adherence = np.where(skipped, 0.0, adherence)

    has_leg_pain = float(np.mean(pain["leg_pain"])) >= 0.5 or any(
        label.metric == "leg_pain" for label in labels
    )
    idx = np.flatnonzero(logged)
    back_missing = rng.random(n) < 0.03
    leg_missing = rng.random(n) < 0.03
    adherence_missing = rng.random(n) < 0.05
    series = PatientSeries(
        patient_id=patient_id,
        dates=tuple(days[i] for i in idx),
        back_pain=tuple(None if back_missing[i] else int(pain["back_pain"][i]) for i in idx),
        leg_pain=tuple(None if leg_missing[i] else int(pain["leg_pain"][i]) for i in idx),
        adherence=tuple(
            None if adherence_missing[i] else round(float(adherence[i]), 3) for i in idx
        ),
        red_flags=tuple((UNSPECIFIED_RED_FLAG,) if i in red_flag_index else () for i in idx),
        leg_side=tuple(leg_side if has_leg_pain and not leg_missing[i] else None for i in idx),
        events=tuple(sorted(events, key=lambda e: e.date)),
    )
    return SimulatedPatient(
        series=series,
        trajectory_class=trajectory_class,
        regressions=tuple(labels),
        adherence_drops=tuple(drops),
        red_flag_days=tuple(sorted(days[i] for i in red_flag_index)),
    )


def generate_cohort(
    seed: int,
    n_patients: int,
    n_days: int,
    params: CohortParams | None = None,
    start: date = date(2025, 1, 1),
) -> Cohort:
    """A reproducible labeled cohort: `n_patients` followed for `n_days` from `start`."""
    chosen = params if params is not None else COHORT_PRESETS["default"]
    patients = tuple(simulate_patient(seed, i, chosen, start, n_days) for i in range(n_patients))
    return Cohort(seed=seed, params=chosen, start=start, days=n_days, patients=patients)
