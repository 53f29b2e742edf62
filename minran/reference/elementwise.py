"""Elementwise arithmetic, and the rule broadcasting brings to every backward: an input
element used at many output positions gets the sum of their gradients.

The fast version, minran/functional/elementwise.py, sums a gradient back with a reduction
over the broadcast axes (`unbroadcast`); here each output position hands its gradient to the
input element it read, one at a time.
"""
import numpy as np


def sum_to(g, shape):
    """The gradient of an input of `shape` broadcast to g's shape: every output position adds
    its gradient to the element it read (index 0 along an axis of size 1 or a missing one)."""
    out = np.zeros(shape, dtype=g.dtype)
    missing = g.ndim - len(shape)
    for index in np.ndindex(*g.shape):
        read = tuple(0 if size == 1 else i for i, size in zip(index[missing:], shape))
        out[read] += g[index]
    return out


def add(a, b):
    return a + b


def add_backward(g, a, b):
    return sum_to(g, np.shape(a)), sum_to(g, np.shape(b))


def sub(a, b):
    return a - b


def sub_backward(g, a, b):
    return sum_to(g, np.shape(a)), sum_to(-g, np.shape(b))


def mul(a, b):
    return a * b


def mul_backward(g, a, b):
    return sum_to(g * b, np.shape(a)), sum_to(g * a, np.shape(b))


def div(a, b):
    return a / b


def div_backward(g, a, b):
    """d(a/b)/da = 1/b, d(a/b)/db = -a/b^2."""
    return sum_to(g / b, np.shape(a)), sum_to(-g * a / b ** 2, np.shape(b))


def neg(x):
    return -x


def neg_backward(g, x):
    return -g


def exp(x):
    return np.exp(x)


def exp_backward(g, x):
    return g * np.exp(x)


def log(x):
    return np.log(x)


def log_backward(g, x):
    return g / x


def sqrt(x):
    return np.sqrt(x)


def sqrt_backward(g, x):
    return g / (2 * np.sqrt(x))
