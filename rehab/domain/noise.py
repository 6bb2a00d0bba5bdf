"""Null moments of the window statistic under autocorrelated noise, for the detectors.

The pain detectors judge the trimmed mean of the last k logs (the 2 highest dropped, see
`detectors.py`) against a baseline. Under AR(1) noise with unit marginal SD and lag-1
autocorrelation rho, that trimmed mean has a negative mean (the highest logs are dropped) and
an SD that grows quickly with rho: a k-day mean of autocorrelated pain is far noisier than
SD / sqrt(k) (design §3). The tables below hold its mean and SD for k = 3…20 logs and rho =
0, 0.1, …, 0.9, from a seeded Monte Carlo (100 000 series per rho; `simulate_moments`
reproduces them to about ±0.005). The baseline's own error is added analytically
(`mean_variance_factor`). The detectors interpolate in rho, per log.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rehab.domain.arrays import FloatArray

RHO_GRID: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MIN_WINDOW = 3
MAX_WINDOW = 20
TRIMMED = 2

# Mean of the trimmed mean of k AR(1) values (marginal SD 1), one row per k = 3…20.
_MEAN: tuple[tuple[float, ...], ...] = (
    (-0.846, -0.819, -0.781, -0.738, -0.695, -0.644, -0.585, -0.510, -0.424, -0.300),  # 3
    (-0.661, -0.647, -0.623, -0.598, -0.569, -0.533, -0.490, -0.432, -0.363, -0.260),  # 4
    (-0.552, -0.541, -0.526, -0.508, -0.486, -0.459, -0.426, -0.380, -0.322, -0.233),  # 5
    (-0.476, -0.469, -0.459, -0.445, -0.427, -0.406, -0.380, -0.342, -0.292, -0.213),  # 6
    (-0.421, -0.415, -0.409, -0.397, -0.383, -0.366, -0.344, -0.312, -0.269, -0.198),  # 7
    (-0.379, -0.374, -0.369, -0.358, -0.348, -0.333, -0.316, -0.288, -0.249, -0.186),  # 8
    (-0.345, -0.341, -0.337, -0.328, -0.319, -0.307, -0.291, -0.269, -0.233, -0.176),  # 9
    (-0.318, -0.313, -0.311, -0.304, -0.295, -0.285, -0.270, -0.251, -0.220, -0.167),  # 10
    (-0.294, -0.290, -0.288, -0.283, -0.275, -0.267, -0.253, -0.236, -0.209, -0.159),  # 11
    (-0.275, -0.271, -0.269, -0.265, -0.258, -0.251, -0.238, -0.223, -0.198, -0.152),  # 12
    (-0.257, -0.254, -0.253, -0.249, -0.243, -0.237, -0.225, -0.212, -0.189, -0.146),  # 13
    (-0.243, -0.240, -0.239, -0.235, -0.230, -0.224, -0.214, -0.201, -0.181, -0.140),  # 14
    (-0.230, -0.227, -0.226, -0.223, -0.218, -0.212, -0.203, -0.192, -0.173, -0.135),  # 15
    (-0.218, -0.216, -0.215, -0.212, -0.208, -0.202, -0.194, -0.184, -0.167, -0.130),  # 16
    (-0.207, -0.206, -0.205, -0.202, -0.199, -0.193, -0.185, -0.176, -0.160, -0.126),  # 17
    (-0.198, -0.196, -0.196, -0.193, -0.191, -0.185, -0.178, -0.169, -0.155, -0.122),  # 18
    (-0.190, -0.188, -0.187, -0.185, -0.183, -0.177, -0.171, -0.163, -0.149, -0.118),  # 19
    (-0.182, -0.180, -0.180, -0.178, -0.176, -0.170, -0.165, -0.157, -0.144, -0.115),  # 20
)
# Its SD, same layout.
_SD: tuple[tuple[float, ...], ...] = (
    (0.747, 0.768, 0.790, 0.810, 0.834, 0.856, 0.887, 0.915, 0.943, 0.972),  # 3
    (0.579, 0.609, 0.642, 0.678, 0.719, 0.759, 0.805, 0.852, 0.900, 0.950),  # 4
    (0.494, 0.527, 0.563, 0.602, 0.647, 0.695, 0.750, 0.807, 0.867, 0.933),  # 5
    (0.440, 0.473, 0.510, 0.548, 0.595, 0.645, 0.703, 0.769, 0.838, 0.917),  # 6
    (0.401, 0.433, 0.469, 0.507, 0.554, 0.604, 0.665, 0.736, 0.812, 0.903),  # 7
    (0.371, 0.403, 0.437, 0.475, 0.520, 0.570, 0.632, 0.706, 0.788, 0.889),  # 8
    (0.348, 0.378, 0.411, 0.448, 0.492, 0.542, 0.604, 0.679, 0.766, 0.875),  # 9
    (0.328, 0.358, 0.389, 0.425, 0.468, 0.517, 0.579, 0.654, 0.744, 0.862),  # 10
    (0.312, 0.341, 0.371, 0.406, 0.448, 0.496, 0.556, 0.632, 0.725, 0.850),  # 11
    (0.298, 0.325, 0.355, 0.389, 0.430, 0.477, 0.536, 0.612, 0.707, 0.838),  # 12
    (0.285, 0.311, 0.340, 0.374, 0.413, 0.460, 0.518, 0.593, 0.689, 0.826),  # 13
    (0.274, 0.300, 0.328, 0.360, 0.399, 0.445, 0.502, 0.576, 0.673, 0.814),  # 14
    (0.264, 0.289, 0.317, 0.348, 0.386, 0.431, 0.487, 0.560, 0.658, 0.803),  # 15
    (0.255, 0.280, 0.306, 0.336, 0.374, 0.419, 0.473, 0.546, 0.644, 0.792),  # 16
    (0.247, 0.271, 0.297, 0.326, 0.363, 0.407, 0.461, 0.533, 0.630, 0.782),  # 17
    (0.240, 0.264, 0.289, 0.317, 0.353, 0.397, 0.449, 0.520, 0.617, 0.772),  # 18
    (0.233, 0.256, 0.281, 0.308, 0.344, 0.387, 0.439, 0.508, 0.605, 0.762),  # 19
    (0.227, 0.250, 0.274, 0.301, 0.335, 0.377, 0.428, 0.497, 0.594, 0.752),  # 20
)

_MEAN_ARRAY = np.array(_MEAN, dtype=np.float64)
_SD_ARRAY = np.array(_SD, dtype=np.float64)
_RHO_ARRAY = np.array(RHO_GRID, dtype=np.float64)


def trimmed_mean_moments(width: int, rho: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Mean and SD (in units of the noise SD) of the trimmed mean of `width` logs whose
    log-to-log autocorrelation is `rho` (an array; clipped to the table's range)."""
    if not MIN_WINDOW <= width <= MAX_WINDOW:
        raise ValueError(f"window of {width} logs outside {MIN_WINDOW}…{MAX_WINDOW}")
    row = width - MIN_WINDOW
    return (
        np.interp(rho, _RHO_ARRAY, _MEAN_ARRAY[row]),
        np.interp(rho, _RHO_ARRAY, _SD_ARRAY[row]),
    )


def mean_variance_factor(n: FloatArray, rho: FloatArray) -> FloatArray:
    """Variance of the mean of n AR(1) values of unit variance and lag-1 autocorrelation rho:
    (1/n)·(1 + 2·Σ_j (1 − j/n)·rho^j), which is ≈ (1/n)·(1 + rho)/(1 − rho) for large n."""
    n = np.maximum(n, 1.0)
    rho = np.clip(rho, 0.0, 0.99)
    long_run = (1.0 + rho) / (1.0 - rho)
    edge = 2.0 * rho * (1.0 - rho**n) / (n * (1.0 - rho) ** 2)
    return np.asarray((long_run - edge) / n, dtype=np.float64)


def simulate_moments(
    n_series: int = 100_000, seed: int = 20261127
) -> tuple[FloatArray, FloatArray]:
    """Recompute the tables (rows k = 3…20, columns `RHO_GRID`): a check, not used at run
    time (about 2 s of CPU)."""
    rng = np.random.default_rng(seed)
    mean = np.zeros((MAX_WINDOW - MIN_WINDOW + 1, len(RHO_GRID)))
    sd = np.zeros_like(mean)
    for j, rho in enumerate(RHO_GRID):
        shocks = rng.normal(0.0, np.sqrt(1.0 - rho * rho), (n_series, MAX_WINDOW))
        x = np.empty((n_series, MAX_WINDOW))
        x[:, 0] = rng.normal(0.0, 1.0, n_series)
        for t in range(1, MAX_WINDOW):
            x[:, t] = rho * x[:, t - 1] + shocks[:, t]
        for k in range(MIN_WINDOW, MAX_WINDOW + 1):
            kept = np.sort(x[:, :k], axis=1)[:, : k - TRIMMED].mean(axis=1)
            mean[k - MIN_WINDOW, j] = kept.mean()
            sd[k - MIN_WINDOW, j] = kept.std()
    return mean, sd


def trimmed_mean_moments_of(
    widths: npt.NDArray[np.int64], rho: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """`trimmed_mean_moments` for windows of several lengths at once (`widths[i]` logs with
    autocorrelation `rho[i]`): the same linear interpolation as `np.interp`, value for value
    (the table value at or below rho plus its interval's slope times the distance; the end
    values outside the grid; NaN for NaN)."""
    if widths.shape[0] == 0:
        return np.zeros(0), np.zeros(0)
    if not (int(widths.min()) >= MIN_WINDOW and int(widths.max()) <= MAX_WINDOW):
        raise ValueError(f"windows must hold {MIN_WINDOW}…{MAX_WINDOW} logs")
    grid = _RHO_ARRAY
    last = grid.shape[0] - 1
    at = grid.searchsorted(rho, side="right") - 1  # grid[at] ≤ rho < grid[at + 1]
    low = np.clip(at, 0, last - 1)
    cell = (widths - MIN_WINDOW) * grid.shape[0] + low
    offset = rho - grid[low]
    moments = []
    for table, slopes in ((_MEAN_ARRAY, _MEAN_SLOPES), (_SD_ARRAY, _SD_SLOPES)):
        flat = table.ravel()
        result = slopes.ravel()[cell] * offset + flat[cell]
        # At or beyond the grid's ends (and exactly on its last point): the end values.
        below, above = at < 0, at >= last
        if bool(below.any()):
            result[below] = flat[cell[below] - low[below]]
        if bool(above.any()):
            result[above] = flat[cell[above] - low[above] + last]
        moments.append(np.where(np.isnan(rho), rho, result))
    return moments[0], moments[1]


# np.interp's slopes, (f[j + 1] − f[j]) / (x[j + 1] − x[j]), one row per window length (the
# last column unused).
def _slopes(table: FloatArray) -> FloatArray:
    slopes = np.zeros_like(table)
    slopes[:, :-1] = (table[:, 1:] - table[:, :-1]) / (_RHO_ARRAY[1:] - _RHO_ARRAY[:-1])
    return slopes


_MEAN_SLOPES = _slopes(_MEAN_ARRAY)
_SD_SLOPES = _slopes(_SD_ARRAY)
