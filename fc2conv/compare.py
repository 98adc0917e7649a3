"""How fc2conv compares two outputs: the error relative to the expected output's scale.

``max|expected - actual| / max|expected|``. An absolute tolerance would pass trivially on
classifiers whose outputs are tiny (random weights can give logits near 1e-20), and an
elementwise relative one fails on outputs near zero; the output's scale is what matters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["relative_error"]


def relative_error(expected: Any, actual: Any) -> float:
    """Largest absolute difference over the largest expected magnitude, in float64.

    Takes NumPy arrays or CPU tensors. 0 when both are all zeros; infinity when only the
    expected output is."""
    want = np.asarray(expected, dtype=np.float64)
    got = np.asarray(actual, dtype=np.float64)
    if want.shape != got.shape:
        raise ValueError(f"cannot compare outputs of shapes {want.shape} and {got.shape}")
    scale = float(np.abs(want).max()) if want.size else 0.0
    error = float(np.abs(want - got).max()) if want.size else 0.0
    if scale > 0:
        return error / scale
    return 0.0 if error == 0 else float("inf")
