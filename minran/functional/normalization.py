"""Batch normalisation, and the shared normalise step the spatial attention mask reuses."""
from ..tensor import Tensor
from ._util import check_same


def _normalize_backward(g, xhat, inv_std, axes, n):
    """Gradient through xhat = (x - mean) / std when mean and std come from x itself."""
    g_sum = g.sum(axis=axes, keepdims=True)
    g_xhat_sum = (g * xhat).sum(axis=axes, keepdims=True)
    return inv_std / n * (n * g - g_sum - xhat * g_xhat_sum)


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
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    shape = (1, C) + (1,) * (x.ndim - 2)
    n = x.size // C
    if training:
        if n < 2:
            raise ValueError(f"batch_norm: training needs more than one value per channel, "
                             f"got input {x.shape}; use a larger batch or eval()")
        mean = x.data.mean(axis=axes, keepdims=True)
        centred = x.data - mean
        var = (centred * centred).mean(axis=axes, keepdims=True)  # two passes: no cancellation
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
    xhat = centred * inv_std
    w = weight.data.reshape(shape) if weight is not None else 1
    out = xhat * w + (bias.data.reshape(shape) if bias is not None else 0)

    def backward(g):
        gw = (g * xhat).sum(axis=axes) if weight is not None else None
        gb = g.sum(axis=axes) if bias is not None else None
        gxhat = g * w
        if training:
            gx = _normalize_backward(gxhat, xhat, inv_std, axes, n)
        else:
            gx = gxhat * inv_std
        return gx, gw, gb
    return Tensor._from_op(out.astype(x.dtype, copy=False), (x, weight, bias), backward,
                           "batch_norm")
