"""Bilinear resizing one output pixel at a time: each blends the four input pixels around
the point it samples.

The fast version, minran/functional/upsample.py, writes the blend as two small matrix
products per map, A_y @ x @ A_x^T, slice by slice of the batch on every core.
"""
import numpy as np

from .conv import pair


def source_coordinate(o, size_in, size_out, align_corners):
    """Where output pixel o samples the input, in input pixel units.

    align_corners=True puts the corner pixels' centres onto each other (Caffe's Interp,
    the paper's): o * (in - 1) / (out - 1). align_corners=False keeps pixel areas aligned:
    (o + 0.5) * in / out - 0.5, clamped at 0.
    """
    if align_corners:
        return o * (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
    return max((o + 0.5) * size_in / size_out - 0.5, 0.0)


def neighbours(o, size_in, size_out, align_corners):
    """The two input pixels around output pixel o's source point and their weights; past
    the last pixel the edge repeats (both neighbours are the last pixel)."""
    s = source_coordinate(o, size_in, size_out, align_corners)
    i0 = min(int(s), size_in - 1)
    i1 = min(i0 + 1, size_in - 1)
    frac = s - i0
    return (i0, 1 - frac), (i1, frac)


def interpolation_matrix(size_in, size_out, align_corners):
    """(size_out, size_in): row o holds the weights output pixel o gives each input pixel."""
    A = np.zeros((size_out, size_in))
    for o in range(size_out):
        for i, weight in neighbours(o, size_in, size_out, align_corners):
            A[o, i] += weight
    return A


def upsample_bilinear(x, size, align_corners=True):
    """Resize (N, C, H, W) to size (Ho, Wo), up or down."""
    N, C, H, W = x.shape
    Ho, Wo = pair(size)
    out = np.zeros((N, C, Ho, Wo), dtype=x.dtype)
    for i in range(Ho):
        for j in range(Wo):
            for y, wy in neighbours(i, H, Ho, align_corners):
                for z, wz in neighbours(j, W, Wo, align_corners):
                    out[:, :, i, j] += wy * wz * x[:, :, y, z]
    return out


def upsample_bilinear_backward(g, x_shape, size, align_corners=True):
    """Each output pixel's gradient goes back to its four input pixels, with their weights."""
    N, C, H, W = x_shape
    Ho, Wo = pair(size)
    gx = np.zeros(x_shape, dtype=g.dtype)
    for i in range(Ho):
        for j in range(Wo):
            for y, wy in neighbours(i, H, Ho, align_corners):
                for z, wz in neighbours(j, W, Wo, align_corners):
                    gx[:, :, y, z] += wy * wz * g[:, :, i, j]
    return gx
