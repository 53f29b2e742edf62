"""Pointwise non-linearities."""
from ..tensor import Tensor


def relu(x):
    y = x.xp.maximum(x.data, 0)
    return Tensor._from_op(y, (x,), lambda g: (g * (x.data > 0),), "relu")


def sigmoid(x):
    """1 / (1 + exp(-x)), written so that exp never overflows: exp(-|x|) is at most 1."""
    xp = x.xp
    e = xp.exp(-xp.abs(x.data))
    y = xp.where(x.data >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
    return Tensor._from_op(y, (x,), lambda g: (g * y * (1 - y),), "sigmoid")
