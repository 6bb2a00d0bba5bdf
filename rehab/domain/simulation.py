"""Seeded synthetic cohort with labeled regressions, for `rehab eval` and the tests.

Each simulated patient follows one trajectory class seen in low-back-pain cohorts (design §3:
Dunn 2006, Kongsted 2015/2017): persistent mild, persistent moderate, persistent severe,
recovering, fluctuating, and improvement with relapse. On top of the class's underlying level:
- autocorrelated day-to-day noise (AR(1), within-person SD ≈ 1–1.6, design §3; optionally with
  heavy-tailed shocks), rounded to the integer NRS and clipped to 0–10; near 0 a patient varies
  less (the NRS floor), judged from the level she is at that day;
- benign flares of 1–2 days, three in four lasting a single day (Suri 2011), never labeled;
- labeled regressions of several shapes: `step` (sudden, held, sudden return), `ramp` (linear
  rise over days, then held), `fall_flare` (a logged fall or injury, then a jump that decays),
  and `relapse` (the relapsing class's slow return of pain after its improvement, held for
  weeks);
- bursty missing days (a two-state Markov chain), the occasional long gap, optionally skipped
  weekends;
- events: falls that cause flares, falls that cause nothing, travel, imaging, medication
  changes; a spine-surgery history for some patients;
- red-flag days (a few linked to falls) and adherence with labeled drops.

What a label means. A regression of `size` s is a rise of the *expected logged* pain (after
rounding and clipping to 0–10, for that patient's noise) by s points above the patient's
level over the week before its onset, held from `onset` to `end` (for ramps and flares, the
days when most of the rise is present). So:
- a regression planted while a recovering patient's pain is still falling rises s points
  above where she was at its onset, not above a level she has not reached yet;
- near the floor (level 0–1) the planted rise is a little larger than s, because clipping at 0
  props up the logged level before it; near the ceiling a rise of s may not fit under 10 at
  all, and the label then says the rise that fits (or there is no regression: under 2).

Every random draw comes from a generator seeded by (seed, patient index), so a cohort is
reproducible and a patient's data do not depend on how many others are generated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from rehab.domain.arrays import FloatArray
from rehab.domain.series import (
    PAIN_METRICS,
    UNSPECIFIED_RED_FLAG,
    PainMetric,
    PatientEvent,
    PatientSeries,
)

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

# The level a regression is measured from: the mean underlying level of the days before it.
ONSET_LEVEL_DAYS = 7
# A regression's peak is planted at most this high (underlying level; the logs clip at 10).
CEILING = 10.0


@dataclass(frozen=True, slots=True)
class CohortParams:
    """How a cohort is drawn; ranges are (low, high) of per-patient uniform draws."""

    name: str = "default"
    noise_sd: tuple[float, float] = (1.0, 1.6)
    noise_ar: tuple[float, float] = (0.2, 0.6)
    # Shocks of the AR(1) noise: normal (None) or Student t with this many degrees of freedom
    # (scaled to the same SD): occasional larger day-to-day jumps.
    noise_df: float | None = None
    # Near 0 the NRS has a floor: low-pain patients vary less (noise × 0.5 at level 0, full
    # from level 2, judged from the day's underlying level, regressions included). The harsh
    # preset turns this off (clipped full noise at the floor).
    floor_damped_noise: bool = True
    log_rate: tuple[float, float] = (0.65, 0.97)
    missing_run_mean_days: float = 2.0
    long_gap_probability: float = 0.25
    # Chance that a Saturday or Sunday goes unlogged on top of the chain (routine loggers).
    weekend_skip_probability: float = 0.0
    spikes_per_month: tuple[float, float] = (0.3, 1.5)
    spike_size: tuple[float, float] = (2.0, 5.5)
    two_day_spike_fraction: float = 0.25
    three_day_spike_fraction: float = 0.0
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
    # A check against overfitting, never tuned on: a different mix from the others — wider
    # noise SD, autocorrelation from none to strong, heavy-tailed shocks, some 3-day benign
    # flares, skipped weekends, more fluctuating and recovering patients, a longer drift.
    "shifted": CohortParams(
        name="shifted",
        noise_sd=(0.8, 1.9),
        noise_ar=(0.0, 0.8),
        noise_df=4.0,
        log_rate=(0.6, 0.95),
        missing_run_mean_days=1.5,
        weekend_skip_probability=0.3,
        spikes_per_month=(0.5, 2.0),
        spike_size=(2.0, 6.0),
        two_day_spike_fraction=0.2,
        three_day_spike_fraction=0.05,
        fluctuation_sd=(0.6, 1.2),
        drift_sd=0.4,
        class_weights=(
            ("persistent_mild", 0.2),
            ("persistent_moderate", 0.15),
            ("persistent_severe", 0.08),
            ("recovering", 0.22),
            ("fluctuating", 0.2),
            ("relapsing", 0.15),
        ),
    ),
}


@dataclass(frozen=True, slots=True)
class RegressionLabel:
    """A planted pain regression: the expected logged pain is `size` points above the level of
    the week before `onset`, from `onset` to `end` (for ramps and flares, the days when most of
    the rise is present)."""

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


def _ar1(
    rng: np.random.Generator, n: int, sd: float, phi: float, df: float | None = None
) -> FloatArray:
    """Stationary AR(1) noise with marginal SD `sd` and lag-1 autocorrelation `phi`; shocks
    normal, or Student t with `df` degrees of freedom scaled to unit variance."""
    if df is None:
        unit = rng.normal(0.0, 1.0, n)
    else:
        unit = rng.standard_t(df, n) * math.sqrt((df - 2.0) / df)
    shocks = unit * sd * math.sqrt(1.0 - phi * phi)
    out = np.empty(n, dtype=np.float64)
    out[0] = unit[0] * sd
    for i in range(1, n):
        out[i] = phi * out[i - 1] + shocks[i]
    return out


def _slow_wander(rng: np.random.Generator, n: int, sd: float, timescale_days: float) -> FloatArray:
    """A slowly varying component (AR(1) with a long memory): the fluctuating class's waves."""
    phi = float(np.exp(-1.0 / timescale_days))
    return _ar1(rng, n, sd, phi)


def _class_level(rng: np.random.Generator, trajectory_class: str, n: int) -> tuple[FloatArray, int]:
    """Underlying pain level of one metric for the class, before flares and regressions, and
    the day by which an improving patient has made most of her improvement (0 otherwise)."""
    t = np.arange(n, dtype=np.float64)
    if trajectory_class == "persistent_mild":
        return np.full(n, rng.uniform(0.3, 3.0)), 0
    if trajectory_class == "persistent_moderate":
        return np.full(n, rng.uniform(3.0, 5.5)), 0
    if trajectory_class == "persistent_severe":
        return np.full(n, rng.uniform(5.5, 7.5)), 0
    if trajectory_class == "fluctuating":
        return np.full(n, rng.uniform(2.5, 5.5)), 0
    # recovering and relapsing: exponential recovery from a high start, starting at once or
    # after a delay, settling at a low level (their baseline must follow them down).
    start = rng.uniform(5.0, 8.5)
    floor = rng.uniform(0.3, 2.5)
    tau = rng.uniform(15.0, 90.0)
    delay = rng.uniform(0.0, 60.0)
    level = floor + (start - floor) * np.exp(-np.clip(t - delay, 0.0, None) / tau)
    return level, int(delay + 1.5 * tau)  # ≈ 78 % of the way down


def _regression_profile(
    rng: np.random.Generator, shape: str, size: int, n: int, onset: int
) -> tuple[FloatArray, int]:
    """Fraction (0–1) of the regression's rise present on each day of the series, and the
    index of the labeled end. (`size` only decides how long a flare counts as labeled.)"""
    excess = np.zeros(n, dtype=np.float64)
    t = np.arange(n) - onset
    if shape == "step":
        hold = int(rng.integers(3, 29))
        back = int(rng.integers(1, 5))
        end = onset + hold - 1
        excess[(t >= 0) & (t < hold)] = 1.0
        tail = (t >= hold) & (t < hold + back)
        excess[tail] = 1.0 - (t[tail] - hold + 1) / (back + 1)
    elif shape == "ramp":
        rise = int(rng.integers(3, 11))
        hold = int(rng.integers(2, 21))
        back = int(rng.integers(2, 6))
        end = onset + rise + hold - 1
        rising = (t >= 0) & (t < rise)
        excess[rising] = (t[rising] + 1) / rise
        excess[(t >= rise) & (t < rise + hold)] = 1.0
        tail = (t >= rise + hold) & (t < rise + hold + back)
        excess[tail] = 1.0 - (t[tail] - rise - hold + 1) / (back + 1)
    elif shape == "fall_flare":
        hold = int(rng.integers(0, 4))
        half_life = rng.uniform(4.0, 14.0)
        after = np.clip(t - hold, 0, None)
        excess[t >= 0] = 0.5 ** (after[t >= 0] / half_life)
        # Labeled while at least half the jump (and at least 1.5 points) is present.
        keep = max(1.5, size / 2.0)
        end = onset + hold + int(np.floor(half_life * np.log2(size / keep)))
    elif shape == "relapse":
        rise = int(rng.integers(5, 16))
        hold = int(rng.integers(30, 121))
        end = onset + rise + hold - 1
        rising = (t >= 0) & (t < rise)
        excess[rising] = (t[rising] + 1) / rise
        excess[(t >= rise) & (t < rise + hold)] = 1.0
        tail = (t >= rise + hold) & (t < rise + hold + 10)
        excess[tail] = 1.0 - (t[tail] - rise - hold + 1) / 11
    else:  # pragma: no cover - shapes are a closed set
        raise ValueError(shape)
    return excess, min(end, n - 1)


def _noise_scale(level: FloatArray | float, damped: bool) -> FloatArray:
    """Multiplier of a patient's noise SD at an underlying level (the NRS floor, see params)."""
    scale = np.clip(0.5 + np.asarray(level, dtype=np.float64) / 4.0, 0.5, 1.0)
    return scale if damped else np.ones_like(scale)


def expected_logged(level: float, sd: float) -> float:
    """Expected logged NRS value, E[clip(round(level + e), 0, 10)] for e ~ N(0, sd²)."""
    if sd <= 0.0:
        return float(min(10.0, max(0.0, round(level))))
    # E[X] = Σ_j P(X > j) for the integers j = 0..9.
    return sum(0.5 * math.erfc((j + 0.5 - level) / (sd * math.sqrt(2.0))) for j in range(10))


def _planted_rise(level: float, size: int, sd: float, damped: bool) -> tuple[float, int]:
    """Underlying rise Δ above `level` that raises the expected logged value by `size`, and the
    size that fits (less than asked when the ceiling is near; the rise is then the most that
    fits under `CEILING`)."""

    def logged(at: float) -> float:
        return expected_logged(at, sd * float(_noise_scale(at, damped)))

    base = logged(level)
    room = logged(CEILING) - base
    fitting = min(size, math.floor(room + 1e-9))
    if fitting < 1:
        return 0.0, 0
    low, high = 0.0, max(0.0, CEILING - level)
    for _ in range(40):  # bisection: the expected logged value rises with the level
        middle = (low + high) / 2.0
        if logged(level + middle) - base < fitting:
            low = middle
        else:
            high = middle
    return high, fitting


def _logged_mask(
    rng: np.random.Generator, params: CohortParams, n: int, start: date
) -> npt.NDArray[np.bool_]:
    """Bursty logging: a two-state Markov chain, plus maybe one long gap (holiday, illness)
    and skipped weekends."""
    rate = rng.uniform(*params.log_rate)
    back_to_logging = 1.0 / params.missing_run_mean_days
    stop_logging = min(0.95, back_to_logging * (1.0 - rate) / rate)
    u = rng.random(n)
    logged = np.empty(n, dtype=np.bool_)
    state = True
    for i in range(n):
        logged[i] = state
        state = u[i] >= stop_logging if state else u[i] < back_to_logging
    if params.weekend_skip_probability > 0.0:
        weekday = (start.weekday() + np.arange(n)) % 7
        logged &= ~((weekday >= 5) & (rng.random(n) < params.weekend_skip_probability))
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

    logged = _logged_mask(rng, params, n, start)
    events: list[PatientEvent] = []
    labels: list[RegressionLabel] = []
    red_flag_index: set[int] = set()
    leg_side = str(rng.choice(["left", "right", "both"]))

    means: dict[PainMetric, FloatArray] = {}
    regression_excess: dict[PainMetric, FloatArray] = {}
    noise_sd: dict[PainMetric, float] = {}
    noise_ar: dict[PainMetric, float] = {}
    settled = 0
    for metric in PAIN_METRICS:
        level, settled_day = _class_level(rng, trajectory_class, n)
        settled = max(settled, settled_day)
        if metric == "leg_pain" and rng.random() < 0.3:
            level = np.minimum(level, rng.uniform(0.0, 1.5))  # little or no leg pain
        level = level + _slow_wander(rng, n, params.drift_sd, 40.0)
        if trajectory_class == "fluctuating":
            level = level + _slow_wander(
                rng, n, rng.uniform(*params.fluctuation_sd), rng.uniform(7.0, 30.0)
            )
        means[metric] = level
        regression_excess[metric] = np.zeros(n, dtype=np.float64)
        noise_sd[metric] = rng.uniform(*params.noise_sd)
        noise_ar[metric] = rng.uniform(*params.noise_ar)

    # Regressions: after a 30-day run-in, each on leg pain, back pain or both (the seed case's
    # signal was leg pain alone); a new one starts only 3 weeks after the previous one ended.
    # The relapsing class relapses once it has made most of its improvement.
    n_regressions = int(rng.poisson(params.regressions_per_year * n / 365.0))
    candidates = sorted(int(rng.integers(30, max(31, n - 5))) for _ in range(n_regressions))
    relapse_from = max(90, settled)
    if trajectory_class == "relapsing" and n - 30 > relapse_from:
        relapse_onset = int(rng.integers(relapse_from, n - 30))
        candidates = [relapse_onset] + [c for c in candidates if c > relapse_onset]
    else:
        relapse_onset = -1
    sizes = [s for s, _ in params.regression_size_weights]
    size_p = np.array([w for _, w in params.regression_size_weights], dtype=np.float64)
    free_from = 0
    for onset in candidates:
        if onset < free_from:
            continue
        is_relapse = onset == relapse_onset
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
            underlying = means[metric]
            onset_level = float(np.mean(underlying[max(0, onset - ONSET_LEVEL_DAYS) : onset]))
            rise, metric_size = _planted_rise(
                onset_level, size, noise_sd[metric], params.floor_damped_noise
            )
            if metric_size < 2:
                continue
            fraction, end = _regression_profile(
                np.random.default_rng(profile_seed), shape, metric_size, n, onset
            )
            # Measured from the onset level: a patient still improving does not carry the
            # regression down with her (its size would shrink as she recovers).
            catch_up = np.maximum(onset_level - underlying, 0.0)
            excess = fraction * (rise + catch_up)
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
            draw = rng.random()
            length = (
                3
                if draw < params.three_day_spike_fraction
                else 2
                if draw < params.three_day_spike_fraction + params.two_day_spike_fraction
                else 1
            )
            spikes[day : day + length] = np.maximum(
                spikes[day : day + length], rng.uniform(*params.spike_size)
            )
        underlying = means[metric] + regression_excess[metric]
        noise = _ar1(rng, n, noise_sd[metric], noise_ar[metric], params.noise_df)
        noise = noise * _noise_scale(underlying, params.floor_damped_noise)
        pain[metric] = np.clip(np.rint(underlying + spikes + noise), 0.0, 10.0)

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
