"""Bilinear resizing as two small matrix products: out = A_y @ x @ A_x^T.

Each row of A_y holds the two weights that blend input rows into one output row, so the
backward is just the transposes, A_y^T @ g @ A_x: deterministic, no scatter.
"""
import numpy as np

from ..tensor import Tensor
from ._util import check_ndim, pair


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
    xp = x.xp
    H, W = x.shape[2:]
    Ay = xp.asarray(interpolation_matrix(H, Ho, align_corners), dtype=x.dtype)
    Ax = xp.asarray(interpolation_matrix(W, Wo, align_corners), dtype=x.dtype)
    out = xp.matmul(xp.matmul(Ay, x.data), Ax.T)

    def backward(g):
        return (xp.matmul(xp.matmul(Ay.T, g), Ax),)
    return Tensor._from_op(out, (x,), backward, "upsample_bilinear")
