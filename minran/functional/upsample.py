"""Bilinear resizing as two small matrix products: out = A_y @ x @ A_x^T.

Each row of A_y holds the two weights that blend input rows into one output row, so the
backward is just the transposes, A_y^T @ g @ A_x: deterministic, no scatter. The CUDA twin
(upsample.cu) computes the same weights per pixel: one thread per output pixel blends four
inputs, and in the backward one thread per input pixel gathers from the outputs that read it.
Plain version of each op here, forward and backward: minran/reference/upsample.py.
"""
import numpy as np

from .. import parallel
from ..backend import array_module
from ..cuda import kernels
from ..tensor import Tensor
from ._util import check_ndim, pair

CUDA = kernels.Source(__file__)


def interpolation_matrix(size_in, size_out, align_corners):
    """(size_out, size_in) matrix of bilinear weights along one axis.

    align_corners=True maps the corner pixel centres onto each other (Caffe's Interp layer):
    source = out * (in - 1) / (out - 1). align_corners=False keeps pixel areas aligned
    (half-pixel centres): source = (out + 0.5) * in / out - 0.5, clamped at 0.
    """
    out = np.arange(size_out, dtype=np.float64)
    if align_corners:
        scale = (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
        src = out * scale
    else:
        src = np.maximum((out + 0.5) * (size_in / size_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), size_in - 1)
    i1 = np.minimum(i0 + 1, size_in - 1)
    frac = src - i0
    A = np.zeros((size_out, size_in))
    np.add.at(A, (np.arange(size_out), i0), 1 - frac)
    np.add.at(A, (np.arange(size_out), i1), frac)
    return A


def upsample_bilinear(x, size, align_corners=True):
    """Resize (N, C, H, W) to any (Ho, Wo), up or down."""
    check_ndim("upsample_bilinear", x, 4, "(N, C, H, W)")
    Ho, Wo = pair(size, "size", "upsample_bilinear")
    if Ho < 1 or Wo < 1:
        raise ValueError(f"upsample_bilinear: output size must be positive, got {(Ho, Wo)}")
    N, C, H, W = x.shape
    geometry = (N, C, H, W, Ho, Wo, align_corners)
    out = _resize(x.data, geometry)

    def backward(g):
        return (_resize_backward(g, geometry),)
    return Tensor._from_op(out, (x,), backward, "upsample_bilinear")


def _resize(x, geometry):
    N, C, H, W, Ho, Wo, align_corners = geometry
    xp = array_module(x)
    if kernels.active(x):
        out = xp.empty((N, C, Ho, Wo), dtype=x.dtype)
        CUDA.launch("upsample_bilinear_forward", kernels.contiguous(x), out,
                    *_kernel_geometry(geometry), threads=out.size)
        return out
    Ay, Ax = _matrices(geometry, x.dtype, xp)
    return _sliced_products(x, Ay, Ax.T, (N, C, Ho, Wo))


def _resize_backward(g, geometry):
    N, C, H, W, Ho, Wo, align_corners = geometry
    xp = array_module(g)
    if kernels.active(g):
        gx = xp.empty((N, C, H, W), dtype=g.dtype)
        CUDA.launch("upsample_bilinear_backward", kernels.contiguous(g), gx,
                    *_kernel_geometry(geometry), threads=gx.size)
        return gx
    Ay, Ax = _matrices(geometry, g.dtype, xp)
    return _sliced_products(g, Ay.T, Ax, (N, C, H, W))


def _sliced_products(a, left, right, shape):
    """left @ a @ right for every map of a, slice by slice of the batch on every core."""
    xp = array_module(a)
    out = xp.empty(shape, dtype=a.dtype)

    def products(s):
        xp.matmul(xp.matmul(left, a[s]), right, out=out[s])
    parallel.run(products, parallel.slices(out))
    return out


def _matrices(geometry, dtype, xp):
    N, C, H, W, Ho, Wo, align_corners = geometry
    return (xp.asarray(interpolation_matrix(H, Ho, align_corners), dtype=dtype),
            xp.asarray(interpolation_matrix(W, Wo, align_corners), dtype=dtype))


def _kernel_geometry(geometry):
    N, C, H, W, Ho, Wo, align_corners = geometry
    return (N, C, H, W, Ho, Wo, _scale(H, Ho, align_corners), _scale(W, Wo, align_corners),
            int(align_corners))


def _scale(size_in, size_out, align_corners):
    """The step between source coordinates, as interpolation_matrix() takes it."""
    if align_corners:
        return (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
    return size_in / size_out
