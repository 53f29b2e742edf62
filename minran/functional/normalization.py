"""Batch normalisation (with the ReLU that follows it optionally fused in), and the shared
normalise step the spatial attention mask reuses. CUDA twin: normalization.cu.
Plain version of each op here, forward and backward: minran/reference/normalization.py."""
from .. import parallel
from ..backend import array_module
from ..cuda import kernels
from ..tensor import Tensor
from ._util import check_same

CUDA = kernels.Source(__file__)
IMAGE_FROM = 1 << 17


def _normalize_backward(g, xhat, scale, g_sum, g_xhat_sum, n, out=None):
    """Gradient through y = s * xhat, xhat = (x - mean) / std, when mean and std come from x:

        gx = scale * (g - sum(g) / n - xhat * sum(g * xhat) / n),   scale = s / std

    with the sums over the n normalised values, passed in because callers often have them
    already. The spatial mask uses it as written (s = 1); batch norm computes the same
    formula slice by slice in its own order of passes (`_backward`), with its bias and weight
    gradients as the two sums. `out` may be `xhat` itself when this is its last use, which
    saves a full-size temporary.
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
               momentum=0.1, eps=1e-5, relu=False):
    """Normalise each channel of (N, C) or (N, C, H, W) input; relu=True returns
    relu(batch_norm(x)) as one op (the pre-activation units' bn-relu).

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
    n = x.size // C
    cuda = kernels.active(x.data)
    if training:
        if n < 2:
            raise ValueError(f"batch_norm: training needs more than one value per channel, "
                             f"got input {x.shape}; use a larger batch or eval()")
        mean, var = (_statistics_cuda if cuda else _statistics)(x.data)
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += momentum * mean
        if running_var is not None:
            running_var *= 1 - momentum
            running_var += momentum * var * (n / (n - 1))
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation needs running_mean and running_var")
        mean = xp.asarray(running_mean, dtype=x.dtype)
        var = xp.asarray(running_var, dtype=x.dtype)
    inv_std = 1 / xp.sqrt(var + eps)
    w = weight.data if weight is not None else xp.ones(C, dtype=x.dtype)
    b = bias.data if bias is not None else xp.zeros(C, dtype=x.dtype)
    forward, backward_of = ((_forward_cuda, _backward_cuda) if cuda else (_forward, _backward))
    out = forward(x.data, mean, inv_std, w, b, relu)

    def backward(g):
        gx, gw, gb = backward_of(g, x.data, out, mean, inv_std, w, training, relu)
        return gx, (gw if weight is not None else None), (gb if bias is not None else None)
    return Tensor._from_op(out, (x, weight, bias), backward,
                           "batch_norm_relu" if relu else "batch_norm")


def _channels(a, ndim):
    """A (C,) array shaped to broadcast over (N, C[, H, W])."""
    return a.reshape((1, -1) + (1,) * (ndim - 2))


def _image(a, x):
    """A (C,) array written out as one whole image, (1, C[, H, W]): combined with a slice of
    x it broadcasts over the images only, and NumPy's loops run over C*H*W contiguous values
    of both arrays. With the (1, C, 1, 1) shape NumPy's inner loop is one image row against
    one number, which its fast (SIMD) loops do not take: up to twice as slow here. Below
    IMAGE_FROM values in x, writing the image out costs more than it saves."""
    if x.size < IMAGE_FROM:
        return _channels(a, x.ndim)
    image = array_module(x).empty((1,) + x.shape[1:], dtype=x.dtype)
    image[...] = _channels(a, x.ndim)   # (xp.broadcast_to costs ~30 us of Python per call)
    return image


def _statistics(x):
    """Per-channel mean and biased variance, in two passes: the mean, then the squares about
    it (no E[x^2] - E[x]^2 cancellation). Each slice of the batch is summed on its own, on
    every core (minran/parallel.py), and the C-long partial sums are added in slice order."""
    xp = array_module(x)
    n = x.size // x.shape[1]
    parts = parallel.slices(x)
    mean = parallel.total(parallel.run(lambda s: _per_channel(xp, x[s]), parts)) / n
    mean = mean.astype(x.dtype, copy=False)
    m = _image(mean, x)

    def squares(s):
        centred = x[s] - m      # one slice at a time: the temporary stays in the cache
        return _per_channel(xp, centred, centred)
    return mean, (parallel.total(parallel.run(squares, parts)) / n).astype(x.dtype, copy=False)


def _forward(x, mean, inv_std, w, b, relu):
    """out = w * (x - mean) / std + b, computed as out = x * a + c with a = w / std and
    c = b - mean * a: one multiply and one add per value (PyTorch's CPU batch norm folds it
    the same way), then the ReLU in place; slice by slice on every core."""
    xp = array_module(x)
    a = inv_std * w
    a, c = _image(a, x), _image(b - mean * a, x)
    out = xp.empty_like(x)

    def normalise(s):
        o = out[s]
        xp.multiply(x[s], a, out=o)
        o += c
        if relu:
            xp.maximum(o, 0, out=o)
    parallel.run(normalise, parallel.slices(x))
    return out


def _backward(g, x, out, mean, inv_std, w, training, relu):
    """The input, weight and bias gradients in two passes over each slice of the batch.

    With gr the gradient reaching the normalisation (g, or g where the ReLU let it through),
    gb = sum(gr) and gw = sum(gr * xhat) over the n values of each channel, and

        gx = w / std * (gr - gb / n - xhat * gw / n)        (lesson 7 writes it out plainly)

    The first pass takes the two sums (from x - mean, one slice at a time: x-hat is never
    stored) and leaves gr in gx; the second turns gx into the input gradient in place, as
    gr * (w / std) + (x - mean) * k + c with k and c per channel.
    """
    xp = array_module(g)
    parts = parallel.slices(x)
    m = _image(mean, x)
    gx = xp.empty_like(x)

    def sums(s):
        gr = xp.multiply(g[s], out[s] > 0, out=gx[s]) if relu else g[s]
        return _per_channel(xp, gr), _per_channel(xp, gr, x[s] - m)
    partial = parallel.run(sums, parts)
    g_sum = parallel.total([p[0] for p in partial])                 # = the bias gradient
    g_xhat_sum = parallel.total([p[1] for p in partial]) * inv_std  # = the weight gradient
    scale = inv_std * w
    n = x.size // x.shape[1]
    k = _image(-scale * inv_std * g_xhat_sum / n, x)
    c = _image(-scale * g_sum / n, x)
    scale = _image(scale, x)

    def input_gradient(s):
        o = xp.multiply(gx[s] if relu else g[s], scale, out=gx[s])   # in place with the ReLU
        if training:
            centred = x[s] - m
            centred *= k
            o += centred
            o += c
    parallel.run(input_gradient, parts)
    return gx, g_xhat_sum, g_sum


def _layout(x):
    """N, C and HW as the kernels see them; (N, C) input is HW = 1."""
    return x.shape[0], x.shape[1], x.size // (x.shape[0] * x.shape[1]) if x.size else 1


def _statistics_cuda(x):
    xp = array_module(x)
    N, C, HW = _layout(x)
    mean, var = xp.empty(C, dtype=x.dtype), xp.empty(C, dtype=x.dtype)
    CUDA.launch("batch_norm_statistics", kernels.contiguous(x), mean, var, N, C, HW, blocks=C)
    return mean, var


def _forward_cuda(x, mean, inv_std, w, b, relu):
    N, C, HW = _layout(x)
    out = array_module(x).empty(x.shape, dtype=x.dtype)
    CUDA.launch("batch_norm_forward", kernels.contiguous(x), *_per_channel_arrays(x, mean, inv_std, w, b),
                out, out.size, C, HW, int(relu), threads=out.size)
    return out


def _backward_cuda(g, x, out, mean, inv_std, w, training, relu):
    xp = array_module(g)
    N, C, HW = _layout(x)
    g, x = kernels.contiguous(g), kernels.contiguous(x)
    mean, inv_std, w = _per_channel_arrays(x, mean, inv_std, w)
    g_sum, g_xhat_sum = xp.empty(C, dtype=x.dtype), xp.empty(C, dtype=x.dtype)
    CUDA.launch("batch_norm_backward_sums", g, x, out, mean, inv_std, g_sum, g_xhat_sum, N, C,
                HW, int(relu), blocks=C)
    gx = xp.empty(x.shape, dtype=x.dtype)
    CUDA.launch("batch_norm_backward_input", g, x, out, mean, inv_std, w, g_sum, g_xhat_sum, gx,
                gx.size, C, HW, float(N * HW), int(training), int(relu), threads=gx.size)
    return gx, g_xhat_sum, g_sum


def _per_channel_arrays(x, *arrays):
    """The (C,) arrays a kernel reads, contiguous and in x's dtype."""
    return [kernels.contiguous(a.astype(x.dtype, copy=False)) for a in arrays]
