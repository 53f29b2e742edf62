"""Reductions, reshapes and the matrix product: the ops that move or combine axes.
Plain version of each op here, forward and backward: minran/reference/shape.py."""
from ..tensor import Tensor
from ._util import check_same, unbroadcast


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim for a in axes)


def reduce_sum(x, axis=None, keepdims=False):
    """Exported as `F.sum`; named apart so this file keeps the builtin `sum`."""
    axes = _axes(axis, x.ndim)

    def backward(g):
        if not keepdims:
            g = g.reshape([1 if i in axes else n for i, n in enumerate(x.shape)])
        return (x.xp.broadcast_to(g, x.shape).copy(),)
    return Tensor._from_op(x.data.sum(axis=axes, keepdims=keepdims), (x,), backward, "sum")


def mean(x, axis=None, keepdims=False):
    axes = _axes(axis, x.ndim)
    count = 1
    for a in axes:
        count *= x.shape[a]

    def backward(g):
        if not keepdims:
            g = g.reshape([1 if i in axes else n for i, n in enumerate(x.shape)])
        return (x.xp.broadcast_to(g / count, x.shape).copy(),)
    return Tensor._from_op(x.data.mean(axis=axes, keepdims=keepdims), (x,), backward, "mean")


def reshape(x, shape):
    try:
        y = x.data.reshape(shape)
    except ValueError:
        raise ValueError(f"reshape: cannot reshape {x.shape} ({x.size} elements) "
                         f"to {tuple(shape)}") from None
    return Tensor._from_op(y, (x,), lambda g: (g.reshape(x.shape),), "reshape")


def transpose(x, axes=None):
    axes = tuple(reversed(range(x.ndim))) if axes is None else tuple(a % x.ndim for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of a {x.ndim}-D shape")
    inverse = tuple(axes.index(i) for i in range(x.ndim))
    return Tensor._from_op(x.data.transpose(axes), (x,),
                           lambda g: (g.transpose(inverse),), "transpose")


def matmul(a, b):
    """Matrix product of 2-D or stacked (batched, broadcasting) matrices."""
    check_same("matmul", a, b)
    if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} @ {b.shape} do not chain; both need at "
                         f"least 2 axes and a.shape[-1] == b.shape[-2]")
    xp = a.xp

    def backward(g):
        ga = xp.matmul(g, xp.swapaxes(b.data, -1, -2))
        gb = xp.matmul(xp.swapaxes(a.data, -1, -2), g)
        return unbroadcast(ga, a.shape), unbroadcast(gb, b.shape)
    return Tensor._from_op(xp.matmul(a.data, b.data), (a, b), backward, "matmul")
