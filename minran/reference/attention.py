"""The attention module's own ops by their definitions: the combine step of Eq. 1 and 3,
and the channel and spatial mask activations of Table 1, one position or map at a time.

The fast version, minran/functional/attention.py, works on whole arrays at once, slice by
slice of the batch on every core; its CUDA twin is attention.cu.
"""
import numpy as np


def attention_combine(mask, trunk, residual=True):
    """Attention residual learning (1 + M) * T, or naive attention learning M * T."""
    return (1 + mask) * trunk if residual else mask * trunk


def attention_combine_backward(g, mask, trunk, residual=True):
    """(g_mask, g_trunk): dH/dM = T, and dH/dT = 1 + M (ARL) or M (NAL)."""
    return g * trunk, g * ((1 + mask) if residual else mask)


def channel_normalize(x, eps=1e-12):
    """At each position, the channel vector divided by its length, or by eps if shorter."""
    out = np.zeros(x.shape, dtype=x.dtype)
    for n, i, j in np.ndindex(x.shape[0], x.shape[2], x.shape[3]):
        v = x[n, :, i, j]
        out[n, :, i, j] = v / max(np.sqrt((v * v).sum()), eps)
    return out


def channel_normalize_backward(g, x, eps=1e-12):
    """y = v / |v| has Jacobian (I - y y^T) / |v|, so gx = (g - y (g . y)) / |v|; where the
    length is clamped to eps, y = v / eps and gx = g / eps."""
    gx = np.zeros(x.shape, dtype=x.dtype)
    for n, i, j in np.ndindex(x.shape[0], x.shape[2], x.shape[3]):
        v, gv = x[n, :, i, j], g[n, :, i, j]
        length = np.sqrt((v * v).sum())
        if length < eps:
            gx[n, :, i, j] = gv / eps
        else:
            y = v / length
            gx[n, :, i, j] = (gv - y * (gv * y).sum()) / length
    return gx


def spatial_normalize(x, eps=1e-5):
    """Each channel's H x W map shifted to mean 0 and divided by sqrt(its variance + eps)."""
    out = np.zeros(x.shape, dtype=x.dtype)
    for n, c in np.ndindex(x.shape[0], x.shape[1]):
        m = x[n, c]
        centred = m - m.mean()
        out[n, c] = centred / np.sqrt((centred ** 2).mean() + eps)
    return out


def spatial_normalize_backward(g, x, eps=1e-5):
    """As batch norm's, over one map of k values: gx = (g - mean(g) - y * mean(g * y)) / std."""
    gx = np.zeros(x.shape, dtype=x.dtype)
    for n, c in np.ndindex(x.shape[0], x.shape[1]):
        m, gm = x[n, c], g[n, c]
        centred = m - m.mean()
        std = np.sqrt((centred ** 2).mean() + eps)
        y = centred / std
        gx[n, c] = (gm - gm.mean() - y * (gm * y).mean()) / std
    return gx
