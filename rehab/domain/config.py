"""Detection settings with their defaults and the reasons for them.

The pain numbers start from design §3 (MCID ≈ 2 points and growing with the level, MDC ≈ 2,
day-to-day SD 1–1.6 and autocorrelated, three flares in four lasting under a day) and were then
tuned by simulation (`rehab eval`, several seeds and cohort presets including a harsh-noise one),
because textbook control-chart settings give far too many false alerts on daily pain (§3).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DetectionConfig:
    # --- automatic pain baseline ------------------------------------------------------------
    # The "recent stable period": logs from the 28 days that end `baseline_gap_days` before the
    # day judged, so the rise being judged is not part of its own baseline.
    baseline_window_days: int = 28
    baseline_gap_days: int = 4
    # Recovering patients: the baseline follows them down to the median of the last 10 days of
    # the baseline period when that is lower (design §3: their falling pain must never alert,
    # and a relapse must be judged against where they have got to, not where they started).
    baseline_recent_days: int = 10
    baseline_recent_min_logs: int = 5
    # No judgement before a week of logs: a baseline from fewer days is mostly noise.
    baseline_min_logs: int = 7
    # Noise: robust SD of the baseline period, floored because integer ratings of a quiet
    # patient have an IQR of 0; the floor is below design §3's 1–1.6 so quiet patients get a
    # threshold set by the clinical change, not by noise they do not have.
    spread_floor: float = 0.6
    spread_cap: float = 2.5

    # --- pain regression: the ordinary rule --------------------------------------------------
    # At least `elevated_logs_needed` of the last `window_logs` logs (spanning at most
    # `window_max_span_days`) are at least `day_threshold` above baseline, the latest among
    # them; a one- or two-day flare can therefore never alert on its own (design §3: one bad day
    # is not a regression).
    window_logs: int = 4
    elevated_logs_needed: int = 3
    window_max_span_days: int = 7
    # day_threshold = max(clinically important rise, day_noise_multiplier × spread)
    day_noise_multiplier: float = 1.5
    # And the mean excess over the window, each day's excess capped so a huge spike cannot
    # carry quiet days, must reach max(clinically important rise, mean_noise_multiplier ×
    # spread).
    mean_noise_multiplier: float = 1.5
    excess_cap: float = 4.0

    # --- pain regression after a fall or injury (design: "a fall lowers the evidence needed") --
    # Within `event_window_days` after a logged fall or injury, `event_elevated_logs_needed`
    # consecutive logs on or after the event, each at least max(clinically important rise,
    # event_noise_multiplier × spread) above baseline, are enough.
    event_window_days: int = 14
    event_elevated_logs_needed: int = 2
    event_noise_multiplier: float = 1.0

    # --- episodes ---------------------------------------------------------------------------
    # An open pain episode resolves once the median of the last 3 logs has been within
    # `resolve_margin` points of the frozen baseline for `resolve_logs` logs in a row.
    resolve_margin: float = 1.0
    resolve_logs: int = 4
    # Onset: the first of the run of logs, ending at the detection, each at least
    # `onset_margin` × the clinically important rise above baseline.
    onset_margin: float = 0.5

    # --- adherence drop ---------------------------------------------------------------------
    adherence_baseline_days: int = 28
    adherence_gap_days: int = 7
    adherence_min_baseline_logs: int = 7
    adherence_window_logs: int = 5
    adherence_window_max_span_days: int = 9
    # A sustained fall of done-vs-prescribed: the mean of the last 5 logs is at least
    # 0.25 (absolute) and 35 % (relative) below the usual level, and at least 3 of them are
    # below the usual level by the absolute amount.
    adherence_min_drop: float = 0.25
    adherence_min_relative_drop: float = 0.35
    adherence_low_logs_needed: int = 3
    adherence_resolve_logs: int = 3

    # --- missed logs ------------------------------------------------------------------------
    # Alert on the 3rd consecutive day without a log: a daily program silently abandoned for
    # three days deserves a check-in, and this is the clinic setting most often changed.
    missed_log_days: int = 3

    # --- function decline (design §3: ODI ≈ 10 points, PSFS 2 points) -----------------------
    odi_mcid: float = 10.0
    psfs_mcid: float = 2.0
    outcome_baseline_measures: int = 3

    # --- context ----------------------------------------------------------------------------
    related_event_days: int = 14
    # A regression linked to a fall or injury in a patient with spine-surgery history is urgent
    # (seed case: after a fall she feared damage to the surgical site and needed assessment).
    urgent_if_event_after_surgery: bool = True


DEFAULT_CONFIG = DetectionConfig()
