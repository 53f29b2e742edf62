"""ReLU and the sigmoid, and their derivatives, as the formulas read.

The fast version, minran/functional/activation.py, runs slice by slice of the batch on every
core and writes the sigmoid so that exp never overflows; its CUDA twin is activation.cu.
"""
import numpy as np


def relu(x):
    return np.maximum(x, 0)


def relu_backward(g, x):
    """The slope is 1 where x > 0 and 0 elsewhere, the kink at 0 included (as PyTorch)."""
    return g * (x > 0)


def sigmoid(x):
    """1 / (1 + exp(-x)). exp(-x) overflows to inf below x = -709 in float64 (the result,
    0, is still right); the fast op avoids the overflow."""
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def sigmoid_backward(g, x):
    """d sigmoid / dx = sigmoid(x) * (1 - sigmoid(x))."""
    s = sigmoid(x)
    return g * s * (1 - s)
