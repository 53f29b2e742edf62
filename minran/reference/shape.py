"""Reductions, reshapes and the matrix product, each backward as the index bookkeeping it is.

The fast version is minran/functional/shape.py.
"""
import numpy as np

from .elementwise import sum_to


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    return tuple(a % ndim for a in ((axis,) if isinstance(axis, int) else axis))


def reduce_sum(x, axis=None, keepdims=False):
    """Exported by minran.functional as `sum`."""
    return x.sum(axis=_axes(axis, x.ndim), keepdims=keepdims)


def reduce_sum_backward(g, x, axis=None, keepdims=False):
    """Every element summed into an output gets that output's gradient."""
    axes = _axes(axis, x.ndim)
    g = np.asarray(g)
    gx = np.zeros(x.shape, dtype=g.dtype)
    for index in np.ndindex(*x.shape):
        if keepdims:
            out = tuple(0 if a in axes else i for a, i in enumerate(index))
        else:
            out = tuple(i for a, i in enumerate(index) if a not in axes)
        gx[index] = g[out]
    return gx


def mean(x, axis=None, keepdims=False):
    axes = _axes(axis, x.ndim)
    count = int(np.prod([x.shape[a] for a in axes]))
    return reduce_sum(x, axes, keepdims) / count


def mean_backward(g, x, axis=None, keepdims=False):
    """Every element averaged into an output gets that output's gradient / the count."""
    axes = _axes(axis, x.ndim)
    count = int(np.prod([x.shape[a] for a in axes]))
    return reduce_sum_backward(np.asarray(g) / count, x, axes, keepdims)


def reshape(x, shape):
    return x.reshape(shape)


def reshape_backward(g, x, shape):
    """The same numbers in x's shape: element k of the output is element k of x, in order."""
    return g.reshape(x.shape)


def transpose(x, axes=None):
    return x.transpose(axes)


def transpose_backward(g, x, axes=None):
    """Output index (i[axes[0]], i[axes[1]], ...) came from input index i."""
    axes = tuple(reversed(range(x.ndim))) if axes is None else _axes(axes, x.ndim)
    gx = np.zeros(x.shape, dtype=g.dtype)
    for index in np.ndindex(*x.shape):
        gx[index] = g[tuple(index[a] for a in axes)]
    return gx


def matmul(a, b):
    """out[..., i, j] = sum over k of a[..., i, k] * b[..., k, j], batches broadcast."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    A = np.broadcast_to(a, batch + a.shape[-2:])
    B = np.broadcast_to(b, batch + b.shape[-2:])
    out = np.zeros(batch + (a.shape[-2], b.shape[-1]), dtype=np.result_type(a, b))
    for index in np.ndindex(*out.shape):
        *stack, i, j = index
        out[index] = sum(A[tuple(stack) + (i, k)] * B[tuple(stack) + (k, j)]
                         for k in range(a.shape[-1]))
    return out


def matmul_backward(g, a, b):
    """ga = g @ b^T and gb = a^T @ g per matrix of the stack, summed over the batches an
    operand was broadcast to."""
    ga = matmul(g, np.swapaxes(b, -1, -2))
    gb = matmul(np.swapaxes(a, -1, -2), g)
    return sum_to(ga, a.shape), sum_to(gb, b.shape)
