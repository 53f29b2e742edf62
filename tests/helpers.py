"""Shared test helpers: float64 tensors from drawn shapes."""
import numpy as np

from minran import Tensor


def randn(shape, seed=0, requires_grad=True, scale=1.0, shift=0.0):
    data = np.random.default_rng(seed).standard_normal(shape) * scale + shift
    return Tensor(data.astype(np.float64), requires_grad=requires_grad)
