"""Summary statistics for results: mean, standard error and 95% intervals over tasks or trials."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def mean_se(values: Iterable[float] | np.ndarray) -> tuple[float, float, int]:
    """Mean, standard error (sample std with ddof=1 over sqrt(n)) and count of ``values``.

    With one value the standard error is NaN (unknown), never 0.
    """
    x = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64)
    x = x.reshape(-1)
    n = int(x.size)
    if n == 0:
        raise ValueError("mean_se: no values")
    mean = float(x.mean())
    se = float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return mean, se, n


def ci95(values: Iterable[float] | np.ndarray) -> tuple[float, float]:
    """Normal-approximation 95% confidence interval of the mean: mean ± 1.96 se."""
    mean, se, _ = mean_se(values)
    return mean - 1.96 * se, mean + 1.96 * se
