"""Pointwise non-linearities. CUDA twins: activation.cu.
Plain version of each op here, forward and backward: minran/reference/activation.py."""
from .. import parallel
from ..backend import array_module
from ..cuda import kernels
from ..tensor import Tensor

CUDA = kernels.Source(__file__)


def relu(x):
    y = _relu(x.data)
    return Tensor._from_op(y, (x,), lambda g: (_relu_backward(g, x.data),), "relu")


def sigmoid(x):
    """1 / (1 + exp(-x)), written so that exp never overflows: exp(-|x|) is at most 1."""
    y = _sigmoid(x.data)
    return Tensor._from_op(y, (x,), lambda g: (_sigmoid_backward(g, y),), "sigmoid")


# The NumPy twins run slice by slice of the batch on every core (parallel.elementwise).
def _relu(x):
    if kernels.active(x):
        return _pointwise_cuda("relu_forward", x)
    return parallel.elementwise(array_module(x).maximum, x, 0)


def _relu_backward(g, x):
    if kernels.active(g):
        return _pointwise_cuda("relu_backward", g, x)
    return parallel.elementwise(_through_relu, g, x)


def _through_relu(g, x, out=None):
    return array_module(g).multiply(g, x > 0, out=out)


def _sigmoid(x):
    if kernels.active(x):
        return _pointwise_cuda("sigmoid_forward", x)
    return parallel.elementwise(_stable_sigmoid, x)


def _stable_sigmoid(x, out=None):
    """1 / (1 + e) for x >= 0 and e / (1 + e) below, e = exp(-|x|) <= 1, written without a
    per-element choice (xp.where is slow in NumPy): the numerator max(e, x >= 0) is 1 for
    x >= 0 (e <= 1) and e below (the comparison is 0 there)."""
    xp = array_module(x)
    e = xp.exp(-xp.abs(x))
    numerator = xp.maximum(e, x >= 0, dtype=x.dtype)
    e += 1
    return xp.divide(numerator, e, out=out)


def _sigmoid_backward(g, y):
    if kernels.active(g):
        return _pointwise_cuda("sigmoid_backward", g, y)
    return parallel.elementwise(_through_sigmoid, g, y)


def _through_sigmoid(g, y, out=None):
    """g * y * (1 - y)"""
    xp = array_module(g)
    out = xp.multiply(g, y, out=out)
    out *= 1 - y
    return out


def _pointwise_cuda(kernel, *inputs):
    """Launch an elementwise kernel (inputs..., out, n) with one thread per element."""
    inputs = [kernels.contiguous(a) for a in inputs]
    out = array_module(inputs[0]).empty(inputs[0].shape, dtype=inputs[0].dtype)
    CUDA.launch(kernel, *inputs, out, out.size, threads=out.size)
    return out
