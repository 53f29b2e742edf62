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
    if training and n < 2:
        raise ValueError(f"batch_norm: training needs more than one value per channel, "
                         f"got input {x.shape}; use a larger batch or eval()")
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm: evaluation needs running_mean and running_var")
    w = weight.data if weight is not None else xp.ones(C, dtype=x.dtype)
    b = bias.data if bias is not None else xp.zeros(C, dtype=x.dtype)
    cuda = kernels.active(x.data)
    if training and cuda:   # statistics, running statistics and output: one launch
        out, mean, inv_std = _forward_training_cuda(x.data, w, b, running_mean, running_var,
                                                    eps, momentum, relu)
    else:
        if training:
            mean, var = _statistics(x.data)
            _update_running(running_mean, running_var, mean, var, momentum, n)
            inv_std = 1 / xp.sqrt(var + eps)
        else:
            mean = xp.asarray(running_mean, dtype=x.dtype)
            inv_std = 1 / xp.sqrt(xp.asarray(running_var, dtype=x.dtype) + eps)
        out = (_forward_cuda if cuda else _forward)(x.data, mean, inv_std, w, b, relu)
    backward_of = _backward_cuda if cuda else _backward

    def backward(g, partial=(None, None, None)):
        # The weight and bias gradients go straight into their slots (optim/flat.py), and
        # another gradient of x already waiting (`partial`, from the engine) is added in as
        # the input gradient is written.
        gw_out = weight.grad_out() if weight is not None and weight.requires_grad else None
        gb_out = bias.grad_out() if bias is not None and bias.requires_grad else None
        gx, gw, gb = backward_of(g, x.data, out, mean, inv_std, w, training, relu,
                                 gw_out, gb_out, partial[0])
        return (gx, _plus(gw, partial[1]) if weight is not None else None,
                _plus(gb, partial[2]) if bias is not None else None)
    backward.accumulates = True
    return Tensor._from_op(out, (x, weight, bias), backward,
                           "batch_norm_relu" if relu else "batch_norm")


def _update_running(running_mean, running_var, mean, var, momentum, n):
    """Move the running statistics toward the batch's (in place), as PyTorch does: the
    variance unbiased, n / (n - 1) times the batch's. The kernel does the same in its launch,
    in the same order of operations (normalization.cu)."""
    if running_mean is not None:
        running_mean *= 1 - momentum
        running_mean += momentum * mean
    if running_var is not None:
        running_var *= 1 - momentum
        running_var += momentum * var * (n / (n - 1))


def _plus(gradient, partial):
    return gradient if partial is None else gradient + partial


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


def _backward(g, x, out, mean, inv_std, w, training, relu, gw_out=None, gb_out=None,
              addend=None):
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
    g_sum, g_xhat_sum = _into(g_sum, gb_out), _into(g_xhat_sum, gw_out)
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
        if addend is not None:
            o += addend[s]
    parallel.run(input_gradient, parts)
    return gx, g_xhat_sum, g_sum


def _into(array, out):
    """array, written into `out` when one is given (a parameter's gradient slot)."""
    if out is None:
        return array
    out[...] = array
    return out


def _layout(x):
    """N, C and HW as the kernels see them; (N, C) input is HW = 1."""
    return x.shape[0], x.shape[1], x.size // (x.shape[0] * x.shape[1]) if x.size else 1


def _forward_training_cuda(x, w, b, running_mean, running_var, eps, momentum, relu):
    """(out, mean, 1/std) in one launch, the running statistics updated in it. Running
    statistics of another dtype than x (float64 ones for a float32 network, say) are updated
    with array code instead, from the variance the kernel also writes."""
    xp = array_module(x)
    N, C, HW = _layout(x)
    n = N * HW
    x = kernels.contiguous(x)
    out = xp.empty(x.shape, dtype=x.dtype)
    mean, var, inv_std = (xp.empty(C, dtype=x.dtype) for _ in range(3))
    running = (running_mean is not None and running_var is not None
               and running_mean.dtype == running_var.dtype == x.dtype
               and running_mean.flags.c_contiguous and running_var.flags.c_contiguous)
    w, b = _per_channel_arrays(x, w, b)
    CUDA.launch("batch_norm_forward_training", x, w, b, out, mean, var, inv_std,
                running_mean if running else mean, running_var if running else var, N, C, HW,
                float(eps), float(momentum), float(1 - momentum), n / (n - 1), int(running),
                int(relu), blocks=C)
    if not running:
        _update_running(running_mean, running_var, mean, var, momentum, n)
    return out, mean, inv_std


def _forward_cuda(x, mean, inv_std, w, b, relu):
    """Evaluation: one thread per element with the running statistics."""
    N, C, HW = _layout(x)
    out = array_module(x).empty(x.shape, dtype=x.dtype)
    CUDA.launch("batch_norm_forward", kernels.contiguous(x), *_per_channel_arrays(x, mean, inv_std, w, b),
                out, out.size, C, HW, int(relu), threads=out.size)
    return out


def _backward_cuda(g, x, out, mean, inv_std, w, training, relu, gw_out=None, gb_out=None,
                   addend=None):
    """One launch: the two sums (written where the weight and bias gradients are kept), then
    the input gradient, with `addend` added in when given."""
    xp = array_module(g)
    N, C, HW = _layout(x)
    g, x = kernels.contiguous(g), kernels.contiguous(x)
    mean, inv_std, w = _per_channel_arrays(x, mean, inv_std, w)
    g_sum = gb_out if gb_out is not None else xp.empty(C, dtype=x.dtype)
    g_xhat_sum = gw_out if gw_out is not None else xp.empty(C, dtype=x.dtype)
    gx = xp.empty(x.shape, dtype=x.dtype)
    add = addend is not None and addend.dtype == x.dtype
    CUDA.launch("batch_norm_backward", g, x, out, mean, inv_std, w,
                kernels.contiguous(addend) if add else g, g_sum, g_xhat_sum, gx, N, C, HW,
                int(training), int(relu), int(add), blocks=C)
    if addend is not None and not add:
        gx = gx + addend
    return gx, g_xhat_sum, g_sum


def _per_channel_arrays(x, *arrays):
    """The (C,) arrays a kernel reads, contiguous and in x's dtype."""
    return [kernels.contiguous(a.astype(x.dtype, copy=False)) for a in arrays]
