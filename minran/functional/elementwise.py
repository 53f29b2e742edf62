"""Elementwise arithmetic with NumPy broadcasting; each gradient is summed back to its
input's shape by `unbroadcast`.
Plain version of each op here, forward and backward: minran/reference/elementwise.py."""
from .. import parallel
from ..tensor import Tensor
from ._util import as_tensor, check_same, unbroadcast


def _binary(a, b, op):
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError(f"{op}: at least one input must be a Tensor")
    if not isinstance(a, Tensor):
        a = as_tensor(a, b)
    b = as_tensor(b, a)
    check_same(op, a, b)
    try:
        a.xp.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} do not broadcast "
                         f"(trailing axes must match or be 1)") from None
    return a, b


def add(a, b):
    a, b = _binary(a, b, "add")

    def backward(g):
        return unbroadcast(g, a.shape), unbroadcast(g, b.shape)
    return Tensor._from_op(parallel.elementwise(a.xp.add, a.data, b.data), (a, b), backward,
                           "add")


def sub(a, b):
    a, b = _binary(a, b, "sub")

    def backward(g):
        return unbroadcast(g, a.shape), unbroadcast(-g, b.shape)
    return Tensor._from_op(a.data - b.data, (a, b), backward, "sub")


def mul(a, b):
    a, b = _binary(a, b, "mul")

    def backward(g):
        return unbroadcast(g * b.data, a.shape), unbroadcast(g * a.data, b.shape)
    return Tensor._from_op(a.data * b.data, (a, b), backward, "mul")


def div(a, b):
    a, b = _binary(a, b, "div")

    def backward(g):
        ga = g / b.data
        return unbroadcast(ga, a.shape), unbroadcast(-ga * a.data / b.data, b.shape)
    return Tensor._from_op(a.data / b.data, (a, b), backward, "div")


def neg(x):
    return Tensor._from_op(-x.data, (x,), lambda g: (-g,), "neg")


def exp(x):
    y = x.xp.exp(x.data)
    return Tensor._from_op(y, (x,), lambda g: (g * y,), "exp")


def log(x):
    return Tensor._from_op(x.xp.log(x.data), (x,), lambda g: (g / x.data,), "log")


def sqrt(x):
    y = x.xp.sqrt(x.data)
    return Tensor._from_op(y, (x,), lambda g: (g / (2 * y),), "sqrt")
