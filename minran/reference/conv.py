"""Convolution by its definition, and im2col and col2im one entry at a time.

The fast version, minran/functional/conv.py, builds the columns with one strided copy per
kernel offset and does one matrix product per slice of the batch, on every core.
"""
import numpy as np


def pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def output_size(size, kernel, stride, padding):
    """How many windows fit: the first starts at -padding, each next one `stride` later."""
    return (size + 2 * padding - kernel) // stride + 1


def pad(x, padding, value=0.0):
    """x with padding[0] rows of `value` above and below, padding[1] columns each side."""
    ph, pw = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def im2col(x, kernel, stride, padding):
    """(N, C, H, W) -> (N, C*kh*kw, Ho*Wo). Row (c, di, dj), column (i, j): the padded input
    pixel that kernel offset (di, dj) of output (i, j) reads."""
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel), pair(stride), pair(padding)
    N, C, H, W = x.shape
    Ho, Wo = output_size(H, kh, sh, ph), output_size(W, kw, sw, pw)
    xp = pad(x, (ph, pw))
    cols = np.zeros((N, C * kh * kw, Ho * Wo), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for di in range(kh):
                for dj in range(kw):
                    row = (c * kh + di) * kw + dj
                    for i in range(Ho):
                        for j in range(Wo):
                            cols[n, row, i * Wo + j] = xp[n, c, i * sh + di, j * sw + dj]
    return cols


def col2im(cols, x_shape, kernel, stride, padding):
    """im2col's adjoint: every column entry added back onto the pixel it was read from."""
    (kh, kw), (sh, sw), (ph, pw) = pair(kernel), pair(stride), pair(padding)
    N, C, H, W = x_shape
    Ho, Wo = output_size(H, kh, sh, ph), output_size(W, kw, sw, pw)
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    for n in range(N):
        for c in range(C):
            for di in range(kh):
                for dj in range(kw):
                    row = (c * kh + di) * kw + dj
                    for i in range(Ho):
                        for j in range(Wo):
                            xp[n, c, i * sh + di, j * sw + dj] += cols[n, row, i * Wo + j]
    return xp[:, :, ph:ph + H, pw:pw + W]


def conv2d(x, w, b=None, stride=1, padding=0):
    """out[n, o, i, j] = sum over c, di, dj of x_padded[n, c, i*sh + di, j*sw + dj] * w[o, c, di, dj],
    plus b[o]."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    N, C, H, W = x.shape
    Cout, _, kh, kw = w.shape
    xp = pad(x, (ph, pw))
    out = np.zeros((N, Cout, output_size(H, kh, sh, ph), output_size(W, kw, sw, pw)), dtype=x.dtype)
    for n, o, i, j in np.ndindex(*out.shape):
        patch = xp[n, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
        out[n, o, i, j] = (patch * w[o]).sum() + (b[o] if b is not None else 0)
    return out


def conv2d_backward(g, x, w, b=None, stride=1, padding=0):
    """(gx, gw, gb) for output gradient g: each output element sends g * w[o] back to the
    pixels of its window, g * window to w[o], and g to b[o]. gb is None without a bias."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    N, C, H, W = x.shape
    Cout, _, kh, kw = w.shape
    xp = pad(x, (ph, pw))
    gxp, gw = np.zeros(xp.shape, dtype=x.dtype), np.zeros(w.shape, dtype=w.dtype)
    for n, o, i, j in np.ndindex(*g.shape):
        window = (n, slice(None), slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw))
        gxp[window] += g[n, o, i, j] * w[o]
        gw[o] += g[n, o, i, j] * xp[window]
    gb = g.sum(axis=(0, 2, 3)) if b is not None else None
    return gxp[:, :, ph:ph + H, pw:pw + W], gw, gb
