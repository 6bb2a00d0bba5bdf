"""Detection settings with their defaults and the reasons for them.

The pain numbers start from design §3 (MCID ≈ 2 points and growing with the level, MDC ≈ 2,
day-to-day SD 1–1.6 and autocorrelated, three flares in four lasting under a day). The pain
rule standardises its window statistic by each patient's own noise and autocorrelation
(`rehab.domain.noise`), so one z serves every window and patient; that z was then tuned by
simulation (`rehab eval`, default cohort, seeds 1–3) and checked on the other presets and
seeds, because textbook control-chart settings give far too many false alerts on daily pain
(§3). `bench/RESULTS.md` has the figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from rehab.domain.noise import MAX_WINDOW, MIN_WINDOW, TRIMMED

# Windows of the pain rule: every width from 3 to 8 logs, then 10, 12 and 15 (a finer grid
# gained nothing in simulation), all at the same z but the 3-log window, which a 3-day benign
# flare (or two flares back to back) fills on its own and which therefore asks for more.
PAIN_WINDOW_WIDTHS: tuple[int, ...] = (3, 4, 5, 6, 7, 8, 10, 12, 15)
PAIN_WINDOW_Z = 3.35
SHORTEST_WINDOW_EXTRA_Z = 0.5


@dataclass(frozen=True, slots=True)
class DetectionConfig:
    # --- automatic pain baseline, read before the logs being judged -------------------------
    # Level: robust mean of the logs of the 42 days before the first log of the window judged
    # (each capped, see below), so the rise being judged is never part of its own baseline.
    baseline_window_days: int = 42
    # Recovering patients (design §3: their baseline follows them down): when the level of
    # the last 10 of those days (≥ 5 logs) is at least 1 point lower, it is the level.
    baseline_recent_days: int = 10
    baseline_recent_min_logs: int = 5
    follow_down_min_drop: float = 1.0
    # No judgement before a week of logs: a baseline from fewer is mostly noise.
    baseline_min_logs: int = 7
    # Noise σ: SD of the logs of the 56 days before, around their least-squares line (a
    # recovering patient's fall is not noise), each counted at most 3 points above the mean
    # before it (a benign flare must not inflate it), floored at 0.8 so a very steady patient
    # is judged by the clinical change rather than by noise she does not have.
    noise_window_days: int = 56
    noise_cap_points: float = 3.0
    noise_floor: float = 0.8
    noise_detrend: bool = True
    # But when the last 28 days (≥ 10 logs) vary less, their SD is the noise: an earlier
    # episode inside the 56 days (a flare, a regression since resolved) inflated σ so much
    # that a clear new rise went unalerted (simulation: +1–2 points of sensitivity on every
    # cohort for ≈ +0.015 false alerts per patient-month, better than lowering z for the same).
    noise_recent_days: int = 28
    noise_recent_min_logs: int = 10
    # Day-to-day autocorrelation ρ of that noise (design §3), from the squared differences of
    # logs on consecutive days of the same 56 days, E[(x_t − x_{t−1})²] = 2σ²(1 − ρ), shrunk
    # towards 0.5 as if 20 more pairs had shown 0.5 (a few pairs say little), at most 0.9.
    rho_window_days: int = 56
    rho_prior: float = 0.5
    rho_prior_pairs: float = 20.0
    rho_max: float = 0.9
    # Each log counts at most 4 × noise above its baseline, in the level and in the windows:
    # one extreme day cannot carry a window.
    excess_cap_noise: float = 4.0

    # --- pain regression: a changepoint statistic at several time scales --------------------
    # (logs in the window, z): the window's trimmed mean (its 2 highest logs dropped, so a one-
    # or two-day flare never counts) minus the baseline level must reach both the clinically
    # important rise and σ·(m + z'·s), where m and s are the mean and SD of that trimmed mean
    # under AR(1) noise with the patient's ρ (per log: ρ^(days between logs); tables in
    # `rehab.domain.noise`), s widened by the baseline level's own error. z' is z made a
    # Student-t quantile for the number of logs σ was estimated from (`t_correction`) and
    # lowered by ln(f)/z for a patient logging a fraction f of days (`density_adjust`: fewer
    # logs, fewer chances of a false alert per month). One z for all windows: the statistic is
    # standardised, so each window gets about the same false-alert rate. Its value was chosen
    # by simulation on the default cohort (seeds 1–3, checked on 4–6): ≥ 90 % of regressions of
    # ≥ 3 points lasting ≥ 5 days found on every seed at ≈ 0.08 false alerts per patient-month,
    # leaving room under the bar (0.10) without trading sensitivity for a lower rate.
    windows: tuple[tuple[int, float], ...] = tuple(
        (k, PAIN_WINDOW_Z + (SHORTEST_WINDOW_EXTRA_Z if k == 3 else 0.0))
        for k in PAIN_WINDOW_WIDTHS
    )
    trimmed_logs: int = 2
    t_correction: float = 1.0
    density_adjust: float = 1.0
    # Whatever the statistics say, a window whose kept logs are up by 3 points (by 3 σ for a
    # patient noisier than 1) is a clear regression: a sustained step of 3 always alerts.
    clear_rise: float = 3.0
    clear_rise_noise: float = 3.0
    # A window of n logs may span at most 2n + 1 days (sparse loggers still get judged).
    window_span_per_log: float = 2.0
    # And at least 3 of its logs (all of a 3-log window) at least 1 point above baseline.
    elevated_margin: float = 1.0
    elevated_logs_needed: int = 3

    # --- after a fall or injury (issue 3: "a fall lowers the evidence needed"; seed case) ----
    # Within 14 days after a logged fall or injury, two logs on or after the event, both up
    # by ≥ 1, whose mean is up by the clinically important rise and by `event_z` SDs of a
    # 2-log mean (σ·√((1 + ρ)/2), plus the baseline's error) are enough.
    event_window_days: int = 14
    event_z: float = 1.45

    # --- pain episodes ----------------------------------------------------------------------
    # Resolved once the median of the last 3 logs has been within max(1, half the clinically
    # important rise) of the frozen baseline for 3 logs in a row.
    resolve_margin: float = 1.0
    resolve_logs: int = 3
    # A window that fires while an episode is open, at least a clinically important rise above
    # the level that episode was raised at, supersedes it: a further regression (a new fall, a
    # second flare on top of a first) is alerted rather than hidden by the open one.
    escalate: bool = True

    # --- adherence drop ---------------------------------------------------------------------
    # Usual level: mean of the logs of the 28 days ending a week before; current: mean of the
    # last 5 logs (within 12 days, so a patient who logs every other day is judged too; within
    # 9 days only 3 in 4 drops of such patients were found). A sustained fall: current ≥ 0.25
    # and ≥ 35 % below usual, at least 3 of those 5 logs (the latest among them) 0.25 below.
    adherence_baseline_days: int = 28
    adherence_gap_days: int = 7
    adherence_min_baseline_logs: int = 7
    adherence_window_logs: int = 5
    adherence_window_max_span_days: int = 12
    adherence_min_drop: float = 0.25
    adherence_min_relative_drop: float = 0.35
    adherence_low_logs_needed: int = 3
    adherence_resolve_logs: int = 3

    # --- missed logs ------------------------------------------------------------------------
    # Alert on the 3rd consecutive day without a log: a daily program silently dropped for
    # three days deserves a check-in. Clinics that find this noisy can raise it.
    missed_log_days: int = 3

    # --- function decline (design §3: ODI ≈ 10 points, PSFS 2 points) -----------------------
    odi_mcid: float = 10.0
    psfs_mcid: float = 2.0
    outcome_baseline_measures: int = 3

    # --- context ----------------------------------------------------------------------------
    related_event_days: int = 14
    # A regression that began within 14 days after a fall or injury, in a patient with spine
    # surgery in her history, is urgent (seed case: she feared damage to the surgical site,
    # and needed assessment rather than assumptions).
    urgent_if_event_after_surgery: bool = True

    @property
    def decision_lookback_days(self) -> int:
        """How many days before a log its decision may read: the baseline, noise and
        autocorrelation periods before the first log of the longest window, plus that window's
        span; the adherence rule's usual level before its window. A replay of logs from a day
        S on decides exactly as the whole history would from S + this many days on."""
        longest = int(self.window_span_per_log * max(w for w, _ in self.windows)) + 1
        pain = max(self.baseline_window_days, self.noise_window_days, self.rho_window_days)
        adherence = (
            self.adherence_baseline_days
            + self.adherence_gap_days
            + self.adherence_window_max_span_days
        )
        return max(pain + max(longest, self.event_window_days), adherence)

    def __post_init__(self) -> None:
        if self.trimmed_logs != TRIMMED:
            raise ValueError(f"the null moments are tabled for {TRIMMED} trimmed logs")
        if not self.windows or any(not MIN_WINDOW <= w <= MAX_WINDOW for w, _ in self.windows):
            raise ValueError(f"every window must hold {MIN_WINDOW} to {MAX_WINDOW} logs")
        if self.missed_log_days < 1:
            raise ValueError("missed_log_days must be at least 1")


DEFAULT_CONFIG = DetectionConfig()
