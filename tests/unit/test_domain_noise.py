"""The noise model behind the pain thresholds: AR(1) moments of the window statistic, the
autocorrelation estimate, the Student-t widening for little history."""

from __future__ import annotations

import numpy as np
import pytest

from rehab.domain.baseline import LogCalendar, pain_baselines
from rehab.domain.config import DEFAULT_CONFIG
from rehab.domain.noise import (
    MAX_WINDOW,
    MIN_WINDOW,
    RHO_GRID,
    mean_variance_factor,
    simulate_moments,
    trimmed_mean_moments,
)


def test_the_tables_are_what_the_simulation_gives() -> None:
    mean, sd = simulate_moments(n_series=4000, seed=7)
    for width in (MIN_WINDOW, 5, 9, MAX_WINDOW):
        rho = np.array(RHO_GRID)
        table_mean, table_sd = trimmed_mean_moments(width, rho)
        assert np.allclose(mean[width - MIN_WINDOW], table_mean, atol=0.06)
        assert np.allclose(sd[width - MIN_WINDOW], table_sd, atol=0.06)


def test_autocorrelation_widens_and_more_logs_narrow_the_window_statistic() -> None:
    rho = np.array(RHO_GRID)
    for width in range(MIN_WINDOW, MAX_WINDOW + 1):
        mean, sd = trimmed_mean_moments(width, rho)
        assert np.all(np.diff(sd) > 0)  # a k-day mean of autocorrelated pain is noisier
        assert np.all(mean < 0)  # the two highest logs are dropped
    _, short = trimmed_mean_moments(3, rho)
    _, long = trimmed_mean_moments(15, rho)
    assert np.all(long < short)
    with pytest.raises(ValueError):
        trimmed_mean_moments(2, rho)


def test_the_variance_of_a_mean_under_ar1() -> None:
    rho = 0.6
    n = 7
    brute = sum(rho ** abs(i - j) for i in range(n) for j in range(n)) / n**2
    factor = mean_variance_factor(np.array([float(n)]), np.array([rho]))
    assert factor[0] == pytest.approx(brute)
    assert mean_variance_factor(np.array([10.0]), np.array([0.0]))[0] == pytest.approx(0.1)
    # ≈ (1/n)(1 + ρ)/(1 − ρ) for large n, not 1/n: four times more at ρ = 0.6.
    large = mean_variance_factor(np.array([1000.0]), np.array([rho]))[0]
    assert large == pytest.approx(4.0 / 1000.0, rel=0.01)


def _estimates(values: np.ndarray) -> tuple[float, float]:
    days = np.arange(values.shape[0], dtype=np.int64) + 100
    result = pain_baselines(
        days,
        values.astype(np.float64),
        LogCalendar(days, values.shape[0] + 200),
        DEFAULT_CONFIG,
        days - 100,
    )
    return float(result.noise[-1]), float(result.rho[-1])


def test_noise_and_autocorrelation_are_estimated_from_the_logs() -> None:
    rng = np.random.default_rng(3)
    n = 400
    smooth = np.zeros(n)
    rough = rng.normal(0.0, 1.5, n)
    for t in range(1, n):
        smooth[t] = 0.8 * smooth[t - 1] + rng.normal(0.0, 1.5 * np.sqrt(1 - 0.64))
    sd_smooth, rho_smooth = _estimates(np.clip(np.rint(4 + smooth), 0, 10))
    sd_rough, rho_rough = _estimates(np.clip(np.rint(4 + rough), 0, 10))
    assert 1.0 < sd_smooth < 2.0 and 1.0 < sd_rough < 2.0
    assert rho_smooth > 0.55 > 0.35 > rho_rough


def test_a_recovering_patients_fall_is_not_counted_as_noise() -> None:
    falling = np.linspace(8.0, 2.0, 60)
    noise, _ = _estimates(np.rint(falling))
    assert noise == DEFAULT_CONFIG.noise_floor  # the trend is not noise; the floor remains
