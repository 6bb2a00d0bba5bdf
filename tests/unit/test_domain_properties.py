"""Property tests of the detector (hypothesis): the issue's "done when" list."""

from __future__ import annotations

import dataclasses
import itertools
import re
from datetime import date

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rehab.domain.alerts import AlertEpisode
from rehab.domain.detection import detect_episodes
from rehab.domain.explain import format_number, signed
from rehab.domain.series import PatientEvent, PatientSeries, PinnedBaseline
from tests.unit.test_domain_builders import day, pain_alerts, series, up_to

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

levels = st.integers(min_value=0, max_value=10)
lengths = st.integers(min_value=10, max_value=160)


def missing_pattern(n: int) -> st.SearchStrategy[list[bool]]:
    return st.lists(st.booleans(), min_size=n, max_size=n)


@SETTINGS
@given(level=levels, n=lengths, data=st.data())
def test_a_constant_series_never_alerts(level: int, n: int, data: st.DataObject) -> None:
    missing = data.draw(missing_pattern(n))
    leg = [None if gone and k > 0 else level for k, gone in enumerate(missing)]
    episodes = detect_episodes(series(leg, leg))
    assert pain_alerts(episodes, "leg_pain") == []
    assert pain_alerts(episodes, "back_pain") == []


@SETTINGS
@given(
    steps=st.lists(st.integers(min_value=-3, max_value=0), min_size=10, max_size=160),
    start=levels,
)
def test_a_falling_series_never_alerts(steps: list[int], start: int) -> None:
    values: list[int | None] = []
    current = start
    for step in steps:
        current = max(0, current + step)
        values.append(current)
    assert pain_alerts(detect_episodes(series(values))) == []


@SETTINGS
@given(
    start=st.integers(min_value=4, max_value=10),
    floor=st.integers(min_value=0, max_value=3),
    days_per_point=st.integers(min_value=1, max_value=20),
    wobble=st.lists(st.integers(min_value=0, max_value=1), min_size=200, max_size=200),
)
def test_a_recovering_patient_never_alerts(
    start: int, floor: int, days_per_point: int, wobble: list[int]
) -> None:
    """Falling pain with a one-point wobble: the baseline follows the patient down."""
    values: list[int | None] = [
        min(10, max(floor, start - k // days_per_point) + wobble[k]) for k in range(200)
    ]
    assert pain_alerts(detect_episodes(series(values))) == []


@SETTINGS
@given(level=levels, n=st.integers(min_value=20, max_value=120), spike=levels, data=st.data())
def test_a_single_day_spike_never_alerts(
    level: int, n: int, spike: int, data: st.DataObject
) -> None:
    at = data.draw(st.integers(min_value=0, max_value=n - 1))
    leg: list[int | None] = [level] * n
    leg[at] = spike
    assert pain_alerts(detect_episodes(series(leg))) == []


@SETTINGS
@given(level=levels, n=st.integers(min_value=20, max_value=120), spike=levels, data=st.data())
def test_a_two_day_flare_never_alerts_without_an_event(
    level: int, n: int, spike: int, data: st.DataObject
) -> None:
    at = data.draw(st.integers(min_value=0, max_value=n - 2))
    leg: list[int | None] = [level] * n
    leg[at] = leg[at + 1] = spike
    assert pain_alerts(detect_episodes(series(leg))) == []


@SETTINGS
@given(
    level=st.integers(min_value=0, max_value=6),
    data=st.data(),
    baseline_days=st.integers(min_value=14, max_value=90),
    hold=st.integers(min_value=3, max_value=30),
    wobble=st.lists(st.integers(min_value=0, max_value=1), min_size=90, max_size=90),
)
def test_a_sustained_step_of_three_points_always_alerts(
    level: int,
    data: st.DataObject,
    baseline_days: int,
    hold: int,
    wobble: list[int],
) -> None:
    """A baseline wobbling between two neighbouring ratings, then a step held ≥ 3 days to at
    least 3 points above its highest rating: alerted within 3 days of the step."""
    before = [level + wobble[k] for k in range(baseline_days)]
    size = data.draw(st.integers(min_value=3, max_value=10 - max(before)))
    leg: list[int | None] = [*before, *([max(before) + size] * hold)]
    alerts = pain_alerts(detect_episodes(series(leg)))
    assert alerts, "a sustained step of ≥ 3 points must alert"
    first = alerts[0]
    assert isinstance(first, AlertEpisode)
    assert day(baseline_days) <= first.detected_on <= day(baseline_days + 2)
    assert first.onset == day(baseline_days)


def _known_by(episode: AlertEpisode, cutoff: date) -> AlertEpisode:
    """What could be known of an episode on `cutoff` (its resolution only if it happened).

    How it closed (`superseded`: by a further rise) is part of the resolution, so it is
    unknown too until then.
    """
    if episode.resolved_on is not None and episode.resolved_on > cutoff:
        return dataclasses.replace(episode, resolved_on=None, superseded=False)
    return episode


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(min_value=30, max_value=200),
    data=st.data(),
)
def test_appending_future_rows_never_changes_earlier_alerts(n: int, data: st.DataObject) -> None:
    pain = st.one_of(st.none(), st.integers(min_value=0, max_value=10))
    leg = data.draw(st.lists(pain, min_size=n, max_size=n))
    back = data.draw(st.lists(pain, min_size=n, max_size=n))
    cut = data.draw(st.integers(min_value=1, max_value=n - 1))
    events = data.draw(
        st.lists(
            st.tuples(
                st.integers(min_value=-20, max_value=n + 20),
                st.sampled_from(["fall", "injury", "surgery", "medication_change"]),
            ),
            max_size=4,
        )
    )
    red = data.draw(st.lists(st.integers(min_value=0, max_value=n - 1), max_size=3))
    adherence = data.draw(
        st.lists(st.one_of(st.none(), st.sampled_from([0.0, 0.5, 1.0])), min_size=n, max_size=n)
    )
    full = series(
        leg,
        back,
        events=[PatientEvent(day(k), kind, "on stairs") for k, kind in events],
        red_flag_days=red,
        adherence=adherence,
    )
    assert_causal(full, cutoff=day(cut), last=day(n - 1))


def assert_causal(full: PatientSeries, *, cutoff: date, last: date) -> None:
    """The episodes detected by `cutoff` are the same whether or not later rows exist."""
    if not full.dates:
        return
    early = dataclasses.replace(
        up_to(full, cutoff),
        # Only what was known on the cutoff: a later fall, injury or surgery must change
        # nothing before it.
        events=tuple(e for e in full.events if e.date <= cutoff),
    )
    if not early.dates:
        return
    later = detect_episodes(full, as_of=last)
    sooner = detect_episodes(early, as_of=cutoff)
    assert [_known_by(e, cutoff) for e in later if e.detected_on <= cutoff] == list(sooner)


def test_an_episode_superseded_after_the_cutoff_was_simply_open_on_it() -> None:
    # Found by the property above in CI: back pain rises 0 -> 2 after a fall and the episode
    # stays open over a long gap until a rise to 6, months later, supersedes it. On the cutoff
    # neither the closing nor how it closed was known.
    n = 132
    back: list[int | None] = [None] * n
    back[39:48] = [0, 0, 0, 0, 0, 0, 0, 2, 2]
    back[120:129] = [0, 0, 2, 2, 0, 0, 2, 2, 6]
    full = series(
        [None] * n,
        back,
        events=[
            PatientEvent(day(33), "fall", "on stairs"),
            PatientEvent(day(114), "fall", "on stairs"),
        ],
    )
    later = detect_episodes(full, as_of=day(n - 1))
    # The case still is what it was found as: an episode open on the cutoff, later superseded.
    assert any(e.superseded and e.detected_on <= day(47) < (e.resolved_on or day(0)) for e in later)
    assert_causal(full, cutoff=day(47), last=day(n - 1))


@SETTINGS
@given(
    n=st.integers(min_value=1, max_value=120),
    data=st.data(),
)
def test_every_red_flag_day_alerts_urgently_that_day(n: int, data: st.DataObject) -> None:
    pain = st.one_of(st.none(), st.integers(min_value=0, max_value=10))
    leg = data.draw(st.lists(pain, min_size=n, max_size=n))
    flagged = data.draw(st.sets(st.integers(min_value=0, max_value=n - 1), max_size=10))
    for k in flagged:
        leg[k] = leg[k] if leg[k] is not None else 0  # a red flag comes with a log
    episodes = detect_episodes(series(leg, leg, red_flag_days=sorted(flagged)))
    red = [e for e in episodes if e.kind == "red_flag"]
    assert sorted(e.detected_on for e in red) == sorted(day(k) for k in flagged)
    assert all(e.severity == "urgent" and e.onset == e.detected_on for e in red)
    assert all(e.resolved_on is None for e in red)
    assert len({e.dedup_key for e in red}) == len(red)


@SETTINGS
@given(
    n=st.integers(min_value=30, max_value=200),
    data=st.data(),
)
def test_never_two_open_pain_alerts_of_one_metric(n: int, data: st.DataObject) -> None:
    """Design §2 dedup: a further rise may replace an open alert, never sit beside it."""
    pain = st.one_of(st.none(), st.integers(min_value=0, max_value=10))
    leg = data.draw(st.lists(pain, min_size=n, max_size=n))
    falls = data.draw(st.lists(st.integers(min_value=0, max_value=n), max_size=3))
    episodes = detect_episodes(
        series(leg, leg, events=[PatientEvent(day(k), "fall", "") for k in falls])
    )
    for metric in ("leg_pain", "back_pain"):
        alerts = pain_alerts(episodes, metric)
        for earlier, later in itertools.pairwise(alerts):
            assert isinstance(earlier, AlertEpisode) and isinstance(later, AlertEpisode)
            assert earlier.resolved_on is not None
            assert earlier.resolved_on <= later.detected_on


_CITED = re.compile(r"\(([+−][0-9.]+); clinically important ≥ ([0-9.]+)\)")


@SETTINGS
@given(
    n=st.integers(min_value=20, max_value=160),
    data=st.data(),
)
def test_a_pain_alert_reports_at_least_the_rise_it_cites(n: int, data: st.DataObject) -> None:
    """The change a pain alert reports (its current statistic minus the baseline it shows) is
    never less than the clinically important rise it cites, and the explanation states them."""
    pain = st.one_of(st.none(), st.integers(min_value=0, max_value=10))
    leg = data.draw(st.lists(pain, min_size=n, max_size=n))
    back = data.draw(st.lists(pain, min_size=n, max_size=n))
    falls = data.draw(st.lists(st.integers(min_value=-5, max_value=n), max_size=3))
    pins = data.draw(
        st.lists(
            st.builds(
                PinnedBaseline,
                metric=st.sampled_from(["leg_pain", "back_pain"]),
                level=st.integers(min_value=0, max_value=8).map(float),
                effective_from=st.integers(min_value=0, max_value=n).map(day),
            ),
            max_size=2,
        )
    )
    patient = dataclasses.replace(
        series(leg, back, events=[PatientEvent(day(k), "fall", "") for k in falls]),
        pinned_baselines=tuple(pins),
    )
    if not patient.dates:
        return
    for alert in detect_episodes(patient):
        if alert.kind != "pain_regression":
            continue
        assert alert.current is not None and alert.baseline is not None
        assert alert.change is not None
        assert alert.change == alert.current - alert.baseline
        cited = _CITED.search(alert.explanation)
        assert cited is not None, alert.explanation
        assert cited.group(1) == signed(alert.change)
        assert alert.change >= float(cited.group(2)) - 1e-9, alert.explanation
        assert f" {format_number(alert.current)}/10 (" in alert.explanation
