"""The ops particular to the attention module: the combine step and two mask activations."""
from ..tensor import Tensor
from ._util import check_ndim, check_same
from .normalization import _normalize_backward


def attention_combine(mask, trunk, residual=True):
    """Attention residual learning H = (1 + M) * T, or naive attention learning H = M * T.

    One op instead of add-then-multiply: the output is made once and the backward needs only
    M and T (dH/dT = 1 + M or M, dH/dM = T).
    """
    check_same("attention_combine", mask, trunk)
    if mask.shape != trunk.shape:
        raise ValueError(f"attention_combine: mask {mask.shape} and trunk {trunk.shape} must "
                         f"have the same shape (the mask branch upsamples to the trunk's size)")
    gain = 1 + mask.data if residual else mask.data

    def backward(g):
        return g * trunk.data, g * gain
    return Tensor._from_op(gain * trunk.data, (mask, trunk), backward, "attention_combine")


def channel_normalize(x, eps=1e-12):
    """Channel attention (Table 1): x / ||x||_2 over the channels at each position.

    The norm is clamped below at eps (x / max(||x||, eps)) rather than given eps inside the
    square root, so every output with a norm above eps has norm exactly 1; an all-zero
    position gives zeros, not NaN.
    """
    check_ndim("channel_normalize", x, 4, "(N, C, H, W)")
    xp = x.xp
    norm = xp.sqrt((x.data * x.data).sum(axis=1, keepdims=True))
    clamped = norm < eps
    inv = 1 / xp.maximum(norm, eps)
    y = x.data * inv

    def backward(g):
        # Where the norm is clamped, y = x / eps is linear in x.
        through_norm = inv * (g - y * (g * y).sum(axis=1, keepdims=True))
        return (xp.where(clamped, g * inv, through_norm),)
    return Tensor._from_op(y, (x,), backward, "channel_normalize")


def spatial_normalize(x, eps=1e-5):
    """(x - mean) / std over each channel's H*W map; spatial attention is its sigmoid."""
    check_ndim("spatial_normalize", x, 4, "(N, C, H, W)")
    xp = x.xp
    n = x.shape[2] * x.shape[3]
    centred = x.data - x.data.mean(axis=(2, 3), keepdims=True)
    inv_std = 1 / xp.sqrt((centred * centred).mean(axis=(2, 3), keepdims=True) + eps)
    y = centred * inv_std

    def backward(g):
        sums = g.sum(axis=(2, 3), keepdims=True), (g * y).sum(axis=(2, 3), keepdims=True)
        return (_normalize_backward(g, y, inv_std, *sums, n),)
    return Tensor._from_op(y, (x,), backward, "spatial_normalize")
