"""The numpy array types the detection engine works on, and its one hot-path helper."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def flat_true(mask: BoolArray) -> IntArray:
    """np.flatnonzero of a 1-D mask, without its Python wrapper (a hot path)."""
    return mask.nonzero()[0]
