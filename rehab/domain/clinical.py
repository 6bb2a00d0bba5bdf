"""Clinical thresholds the detectors start from (design §3), as small pure functions.

Sources, as summarised in the design:
- NRS pain MCID ≈ 2 points or 30 % (Farrar 2001; Ostelo 2008), growing with the starting level:
  ≈ 1 at 1–4, 2 at 5–7, 3–4 at 8–10.
- Minimal detectable change ≈ 2 points (Childs 2005): a change below it is indistinguishable
  from measurement noise, so a clinically important *detected* change is never below it.
- ODI MCID ≈ 10 points; PSFS MCID 2 points.

Points, not the "or 30 %" the design also cites: 30 % is a threshold for *improvement* from a
level (Farrar 2001 studied reductions); for a *rise* from a low baseline it means almost
nothing (30 % of 1/10 is 0.3 points) and the 2-point detectable change would decide anyway,
while from a high one the level-graded MCID above already asks for 3–3.5 points. ODI's "/ 30 %"
likewise: a clinic's patients on follow-up sit at low ODI scores, where 30 % is a few points,
inside the questionnaire's measurement error; 10 points are used.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

PAIN_MINIMAL_DETECTABLE_CHANGE = 2.0
ODI_MCID = 10.0
PSFS_MCID = 2.0
# ODI and PSFS scores are stored to one decimal place: a change within this of a threshold
# (an MCID, half of one) is at it, whatever the binary arithmetic of the subtraction says.
SCORE_TOLERANCE = 1e-6


def pain_mcid(baseline_level: float) -> float:
    """MCID of an NRS pain rise from `baseline_level` (design §3: 1 at 1–4, 2 at 5–7, 3–4 at
    8–10)."""
    if baseline_level < 4.5:
        return 1.0
    if baseline_level < 7.5:
        return 2.0
    if baseline_level < 8.5:
        return 3.0
    return 3.5


def clinically_important_pain_rise(baseline_level: float) -> float:
    """Smallest rise worth an alert: the MCID, but never below the minimal detectable change."""
    return max(pain_mcid(baseline_level), PAIN_MINIMAL_DETECTABLE_CHANGE)


def clinically_important_pain_rise_array(
    baseline_level: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Vectorised `clinically_important_pain_rise` (same steps, applied elementwise)."""
    # Below 7.5 the MCID (1 or 2) never exceeds the MDC, so only the top steps matter.
    steps = np.array([PAIN_MINIMAL_DETECTABLE_CHANGE, 3.0, 3.5])
    # (Not "≥": a NaN level counts as above every step, as in a sorted search.)
    step = (~(baseline_level < 7.5)).astype(np.intp)
    step += ~(baseline_level < 8.5)
    return np.asarray(steps[step], dtype=np.float64)
