"""Batch normalisation, and the shared normalise step the spatial attention mask reuses."""
from ..backend import array_module
from ..tensor import Tensor
from ._util import check_same


def _normalize_backward(g, xhat, scale, g_sum, g_xhat_sum, n, out=None):
    """Gradient through xhat = (x - mean) / std when mean and std come from x itself:

        gx = scale * (g - sum(g) / n - xhat * sum(g * xhat) / n),   scale = 1 / std

    with the sums over the n normalised values, passed in because callers often have them
    already (batch norm's are its bias and weight gradients). `out` may be `xhat` itself
    when this is its last use, which saves a full-size temporary.
    """
    xp = array_module(g)
    gx = xp.multiply(xhat, g_xhat_sum / n, out=out)
    gx += g_sum / n
    xp.subtract(g, gx, out=gx)
    gx *= scale
    return gx


def _per_channel(xp, a, b=None):
    """Sum of a (or of a * b) over every axis but the channel axis 1, without a temporary.

    The same as (a * b).sum(axis=(0, 2, 3)); einsum reads both arrays once and writes only
    the C results, where the plain form first writes a full-size product (the profile in
    docs/BENCHMARKS.md shows batch norm is bound by such passes over memory).
    """
    letters = "nc" + "hw"[:a.ndim - 2]
    if b is None:
        return xp.einsum(f"{letters}->c", a)
    return xp.einsum(f"{letters},{letters}->c", a, b)


def batch_norm(x, weight, bias, running_mean, running_var, training,
               momentum=0.1, eps=1e-5):
    """Normalise each channel of (N, C) or (N, C, H, W) input.

    Training uses the batch's mean and biased variance, and updates `running_mean` and
    `running_var` (arrays, changed in place) with the unbiased variance, as PyTorch does.
    Evaluation uses the running statistics.
    """
    if x.ndim not in (2, 4):
        raise ValueError(f"batch_norm: expected (N, C) or (N, C, H, W) input, got {x.shape}")
    check_same("batch_norm", x, weight, bias)
    C = x.shape[1]
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                    ("running_var", running_var)):
        if t is not None and tuple(t.shape) != (C,):
            raise ValueError(f"batch_norm: {name} must have shape ({C},) for input {x.shape}, "
                             f"got {tuple(t.shape)}")
    xp = x.xp
    shape = (1, C) + (1,) * (x.ndim - 2)
    n = x.size // C
    if training:
        if n < 2:
            raise ValueError(f"batch_norm: training needs more than one value per channel, "
                             f"got input {x.shape}; use a larger batch or eval()")
        mean = (_per_channel(xp, x.data) / n).reshape(shape).astype(x.dtype, copy=False)
        centred = x.data - mean
        # Two passes (mean, then squares about it): no E[x^2] - E[x]^2 cancellation.
        var = (_per_channel(xp, centred, centred) / n).reshape(shape)
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean.reshape(C)
        if running_var is not None:
            running_var *= 1 - momentum
            running_var += momentum * var.reshape(C) * (n / (n - 1))
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation needs running_mean and running_var")
        mean = xp.asarray(running_mean, dtype=x.dtype).reshape(shape)
        var = xp.asarray(running_var, dtype=x.dtype).reshape(shape)
        centred = x.data - mean
    inv_std = 1 / xp.sqrt(var + eps)
    xhat = centred
    xhat *= inv_std                    # in place: `centred` is not needed any more
    w = weight.data.reshape(shape) if weight is not None else 1
    out = xhat * w
    if bias is not None:
        out += bias.data.reshape(shape)
    del xhat, centred  # rebuilt from x in the backward: one pass, where keeping it costs a copy of x

    def backward(g):
        xhat = x.data - mean
        xhat *= inv_std
        g_sum = _per_channel(xp, g)              # = the bias gradient
        g_xhat_sum = _per_channel(xp, g, xhat)   # = the weight gradient
        gw = g_xhat_sum if weight is not None else None
        gb = g_sum if bias is not None else None
        scale = inv_std * w
        if not training:
            return g * scale, gw, gb
        # The gradient reaching xhat is g * w, and its two sums are w * gb and w * gw, so
        # the w comes out as a factor: gx = w / std * (g - gb / n - xhat * gw / n).
        gx = _normalize_backward(g, xhat, scale, g_sum.reshape(shape),
                                 g_xhat_sum.reshape(shape), n, out=xhat)
        return gx, gw, gb
    return Tensor._from_op(out.astype(x.dtype, copy=False), (x, weight, bias), backward,
                           "batch_norm")
