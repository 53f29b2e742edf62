"""Max and average pooling one window at a time, and where each window's gradient goes.

The fast version, minran/functional/pooling.py, handles every window at once with one
strided view per kernel offset, slice by slice of the batch on every core; its CUDA twin
gives every output pixel a thread.
"""
import numpy as np

from .conv import output_size, pad, pair


def _setup(x_shape, kernel, stride, padding):
    kernel = pair(kernel)
    stride = kernel if stride is None else pair(stride)
    padding = pair(padding)
    Ho = output_size(x_shape[2], kernel[0], stride[0], padding[0])
    Wo = output_size(x_shape[3], kernel[1], stride[1], padding[1])
    return kernel, stride, padding, Ho, Wo


def _window(x_padded, n, c, i, j, kernel, stride):
    """The values window (i, j) covers, in row order, as a (kh, kw) array."""
    (kh, kw), (sh, sw) = kernel, stride
    return x_padded[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw]


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Each window's largest value; padding counts as -inf (it never wins), and a NaN in a
    window makes its maximum NaN."""
    kernel, stride, padding, Ho, Wo = _setup(x.shape, kernel_size, stride, padding)
    xp = pad(x, padding, -np.inf)
    out = np.zeros(x.shape[:2] + (Ho, Wo), dtype=x.dtype)
    for n, c, i, j in np.ndindex(*out.shape):
        out[n, c, i, j] = _window(xp, n, c, i, j, kernel, stride).max()
    return out


def max_pool2d_backward(g, x, kernel_size, stride=None, padding=0):
    """Each window's gradient goes to one input: the first, in row order, equal to the
    window's maximum. Padding never wins, not even a window of -inf values, and a window
    holding a NaN has no winner, since NaN equals nothing."""
    kernel, stride, padding, Ho, Wo = _setup(x.shape, kernel_size, stride, padding)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    H, W = x.shape[2:]
    xp = pad(x, padding, -np.inf)
    gx = np.zeros(x.shape, dtype=g.dtype)
    for n, c, i, j in np.ndindex(*g.shape):
        best = _window(xp, n, c, i, j, kernel, stride).max()
        for di, dj in np.ndindex(kh, kw):
            h, w = i * sh + di - ph, j * sw + dj - pw   # in x, unpadded
            if 0 <= h < H and 0 <= w < W and x[n, c, h, w] == best:
                gx[n, c, h, w] += g[n, c, i, j]
                break
    return gx


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Each window's sum over kh*kw: padding counts as zeros and is counted in the divisor."""
    kernel, stride, padding, Ho, Wo = _setup(x.shape, kernel_size, stride, padding)
    xp = pad(x, padding)
    out = np.zeros(x.shape[:2] + (Ho, Wo), dtype=x.dtype)
    for n, c, i, j in np.ndindex(*out.shape):
        out[n, c, i, j] = _window(xp, n, c, i, j, kernel, stride).sum() / (kernel[0] * kernel[1])
    return out


def avg_pool2d_backward(g, x_shape, kernel_size, stride=None, padding=0):
    """Every pixel of a window gets g / (kh*kw) from it."""
    kernel, stride, padding, Ho, Wo = _setup(x_shape, kernel_size, stride, padding)
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    gxp = np.zeros((x_shape[0], x_shape[1], x_shape[2] + 2 * ph, x_shape[3] + 2 * pw), dtype=g.dtype)
    for n, c, i, j in np.ndindex(*g.shape):
        gxp[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw] += g[n, c, i, j] / (kh * kw)
    return gxp[:, :, ph:ph + x_shape[2], pw:pw + x_shape[3]]


def global_avg_pool(x):
    """(N, C, H, W) -> (N, C): the mean of each feature map."""
    out = np.zeros(x.shape[:2], dtype=x.dtype)
    for n, c in np.ndindex(*out.shape):
        out[n, c] = x[n, c].sum() / (x.shape[2] * x.shape[3])
    return out


def global_avg_pool_backward(g, x_shape):
    """Every pixel of a map gets its map's gradient / (H*W)."""
    gx = np.zeros(x_shape, dtype=g.dtype)
    for n, c in np.ndindex(*g.shape):
        gx[n, c] = g[n, c] / (x_shape[2] * x_shape[3])
    return gx
