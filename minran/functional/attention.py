"""The ops particular to the attention module: the combine step and two mask activations.
CUDA twins: attention.cu.
Plain version of each op here, forward and backward: minran/reference/attention.py."""
from .. import parallel
from ..backend import array_module
from ..cuda import kernels
from ..tensor import Tensor
from ._util import check_ndim, check_same
from .normalization import _normalize_backward

CUDA = kernels.Source(__file__)


def attention_combine(mask, trunk, residual=True):
    """Attention residual learning H = (1 + M) * T, or naive attention learning H = M * T.

    One op instead of add-then-multiply: the output is made once and the backward needs only
    M and T (dH/dT = 1 + M or M, dH/dM = T).
    """
    check_same("attention_combine", mask, trunk)
    if mask.shape != trunk.shape:
        raise ValueError(f"attention_combine: mask {mask.shape} and trunk {trunk.shape} must "
                         f"have the same shape (the mask branch upsamples to the trunk's size)")
    out = _combine(mask.data, trunk.data, residual)

    def backward(g):
        return _combine_backward(g, mask.data, trunk.data, residual)
    return Tensor._from_op(out, (mask, trunk), backward, "attention_combine")


def _combine(m, t, residual):
    if kernels.active(m):
        m, t = kernels.contiguous(m), kernels.contiguous(t)
        out = array_module(m).empty(m.shape, dtype=m.dtype)
        CUDA.launch("attention_combine_forward", m, t, out, out.size, int(residual),
                    threads=out.size)
        return out
    return parallel.elementwise(_residual_combine if residual else array_module(m).multiply, m, t)


def _residual_combine(m, t, out=None):
    """(1 + m) * t"""
    out = array_module(m).add(m, 1, out=out)
    out *= t
    return out


def _combine_backward(g, m, t, residual):
    if kernels.active(g):
        xp = array_module(g)
        g_mask, g_trunk = xp.empty(m.shape, dtype=m.dtype), xp.empty(m.shape, dtype=m.dtype)
        CUDA.launch("attention_combine_backward", kernels.contiguous(g), kernels.contiguous(m),
                    kernels.contiguous(t), g_mask, g_trunk, g.size, int(residual),
                    threads=g.size)
        return g_mask, g_trunk
    xp = array_module(g)
    return (parallel.elementwise(xp.multiply, g, t),
            parallel.elementwise(_residual_combine if residual else xp.multiply, m, g))


def channel_normalize(x, eps=1e-12):
    """Channel attention (Table 1): x / ||x||_2 over the channels at each position.

    The norm is clamped below at eps (x / max(||x||, eps)) rather than given eps inside the
    square root, so every output with a norm above eps has norm exactly 1; an all-zero
    position gives zeros, not NaN.
    """
    check_ndim("channel_normalize", x, 4, "(N, C, H, W)")
    y, norm = _channel_normalize(x.data, eps)

    def backward(g):
        return (_channel_normalize_backward(g, y, norm, eps),)
    return Tensor._from_op(y, (x,), backward, "channel_normalize")


def _channel_normalize(x, eps):
    """y and the norm at each position, (N, 1, H, W)."""
    xp = array_module(x)
    N, C, H, W = x.shape
    if kernels.active(x):
        y, norm = xp.empty(x.shape, dtype=x.dtype), xp.empty((N, 1, H, W), dtype=x.dtype)
        CUDA.launch("channel_normalize_forward", kernels.contiguous(x), y, norm, N, C, H * W, eps,
                    threads=N * H * W)
        return y, norm
    norm = xp.sqrt((x * x).sum(axis=1, keepdims=True))
    return x * (1 / xp.maximum(norm, eps)), norm


def _channel_normalize_backward(g, y, norm, eps):
    xp = array_module(g)
    if kernels.active(g):
        N, C, H, W = g.shape
        gx = xp.empty(g.shape, dtype=g.dtype)
        CUDA.launch("channel_normalize_backward", kernels.contiguous(g), y, norm, gx, N, C,
                    H * W, eps, threads=N * H * W)
        return gx
    inv = 1 / xp.maximum(norm, eps)
    through_norm = inv * (g - y * (g * y).sum(axis=1, keepdims=True))
    # Where the norm is clamped, y = x / eps is linear in x.
    return xp.where(norm < eps, g * inv, through_norm)


def spatial_normalize(x, eps=1e-5):
    """(x - mean) / std over each channel's H*W map; spatial attention is its sigmoid."""
    check_ndim("spatial_normalize", x, 4, "(N, C, H, W)")
    y, inv_std = _spatial_normalize(x.data, eps)

    def backward(g):
        return (_spatial_normalize_backward(g, y, inv_std),)
    return Tensor._from_op(y, (x,), backward, "spatial_normalize")


def _spatial_normalize(x, eps):
    """y and 1/std of each map, (N, C, 1, 1); the kernel gives each map one block."""
    xp = array_module(x)
    N, C, H, W = x.shape
    if kernels.active(x):
        y, inv_std = xp.empty(x.shape, dtype=x.dtype), xp.empty((N, C, 1, 1), dtype=x.dtype)
        CUDA.launch("spatial_normalize_forward", kernels.contiguous(x), y, inv_std, H * W, eps,
                    blocks=N * C)
        return y, inv_std
    centred = x - x.mean(axis=(2, 3), keepdims=True)
    inv_std = 1 / xp.sqrt((centred * centred).mean(axis=(2, 3), keepdims=True) + eps)
    return centred * inv_std, inv_std


def _spatial_normalize_backward(g, y, inv_std):
    N, C, H, W = g.shape
    if kernels.active(g):
        gx = array_module(g).empty(g.shape, dtype=g.dtype)
        CUDA.launch("spatial_normalize_backward", kernels.contiguous(g), y, inv_std, gx, H * W,
                    blocks=N * C)
        return gx
    sums = g.sum(axis=(2, 3), keepdims=True), (g * y).sum(axis=(2, 3), keepdims=True)
    return _normalize_backward(g, y, inv_std, *sums, H * W)
