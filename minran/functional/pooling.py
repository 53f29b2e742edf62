"""Max and average pooling, written as a loop over the kh*kw offsets of the window.

Each offset (i, j) picks one strided view `x[:, :, i::s, j::s]` of the padded input: the
window values of every output pixel at once. The backward adds into the same views. Max
pooling clips each view to the image instead of padding a copy of x, runs slice by slice of
the batch on every core, and keeps no argmax (its backward finds the winners again; lesson 6
does it by hand). The CUDA twin (pooling.cu) turns the loop inside out: one thread per output
pixel walks its window forward, and one thread per input pixel gathers from every window
that covers it.
Plain version of each op here, forward and backward: minran/reference/pooling.py.
"""
from .. import parallel
from ..backend import array_module
from ..cuda import kernels
from ..tensor import Tensor
from ._util import check_ndim, pair
from .conv import output_size

CUDA = kernels.Source(__file__)


def _pool_setup(op, x, kernel_size, stride, padding):
    check_ndim(op, x, 4, "(N, C, H, W)")
    kernel = pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None else pair(stride, "stride", op)
    padding = pair(padding, "padding", op)
    if min(kernel) < 1 or min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"{op}: kernel_size and stride must be >= 1 and padding >= 0, got "
                         f"kernel_size={kernel}, stride={stride}, padding={padding}")
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel {kernel}, "
                         f"or some windows would see only padding")
    N, C, H, W = x.shape
    if kernel[0] > H + 2 * padding[0] or kernel[1] > W + 2 * padding[1]:
        raise ValueError(f"{op}: kernel {kernel} is larger than the padded input "
                         f"{(H + 2 * padding[0], W + 2 * padding[1])} (input {x.shape})")
    Ho = output_size(H, kernel[0], stride[0], padding[0])
    Wo = output_size(W, kernel[1], stride[1], padding[1])
    return kernel, stride, padding, Ho, Wo


def _windows(kernel, stride, Ho, Wo):
    """Yield, for every kernel offset (i, j) in row order, the index for which `xpad[index]`
    is the strided slice holding that offset's value of every window, shaped like the output."""
    (kh, kw), (sh, sw) = kernel, stride
    for i in range(kh):
        for j in range(kw):
            yield (slice(None), slice(None), slice(i, i + sh * Ho, sh), slice(j, j + sw * Wo, sw))


def _geometry(x_shape, kernel, stride, padding, Ho, Wo):
    """The integers every pooling kernel takes: N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo."""
    return (*x_shape, *kernel, *stride, *padding, Ho, Wo)


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Padding counts as -inf. Ties send the gradient to the first maximum in row order."""
    kernel, stride, padding, Ho, Wo = _pool_setup("max_pool2d", x, kernel_size, stride, padding)
    geometry = _geometry(x.shape, kernel, stride, padding, Ho, Wo)
    forward, backward_of = ((_max_forward_cuda, _max_backward_cuda) if kernels.active(x.data)
                            else (_max_forward, _max_backward))
    out, saved = forward(x.data, geometry)   # saved: what that twin's backward needs

    def backward(g):
        return (backward_of(g, saved, geometry),)
    return Tensor._from_op(out, (x,), backward, "max_pool2d")


def _clipped_windows(geometry):
    """(out_index, x_index) for every kernel offset (i, j) in row order, without a padded
    copy of x: `x[x_index]` holds offset (i, j)'s value of the windows `out[out_index]`, the
    outputs for which that offset falls inside the image (elsewhere it is padding, -inf)."""
    N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo = geometry

    def inside(offset, pad, stride, size, out_size):
        first = max(0, -((offset - pad) // stride))   # ceil((pad - offset) / stride)
        last = min(out_size, (size - 1 - offset + pad) // stride + 1)
        start = first * stride + offset - pad
        return (slice(first, last), slice(start, start + (last - first - 1) * stride + 1, stride),
                last > first)
    windows = []
    for i in range(kh):
        rows_out, rows_x, rows_inside = inside(i, ph, sh, H, Ho)
        for j in range(kw):
            cols_out, cols_x, cols_inside = inside(j, pw, sw, W, Wo)
            if rows_inside and cols_inside:
                windows.append(((Ellipsis, rows_out, cols_out), (Ellipsis, rows_x, cols_x)))
    return windows


def _slices(x):
    """Slices of the batch for parallel.run, sized by what max pooling touches per image:
    x, and the output and gradient arrays and masks, together about twice x."""
    return parallel.slices(x, axis_bytes=2 * x.itemsize * (x.size // max(1, x.shape[0])))


def _max_forward(x, geometry):
    """The window maxima, one np.maximum per kernel offset, slice by slice of the batch on
    every core. No argmax is kept: the backward finds each window's first maximum again from
    x and the output, which the graph holds anyway. np.maximum passes a NaN on, as PyTorch
    does (the CUDA twin does the same)."""
    xp = array_module(x)
    N, C = geometry[:2]
    out = xp.full((N, C) + geometry[-2:], -xp.inf, dtype=x.dtype)   # padding is -inf
    windows = _clipped_windows(geometry)

    def pool(s):
        o, xs = out[s], x[s]
        for out_index, x_index in windows:
            view = o[out_index]
            xp.maximum(view, xs[x_index], out=view)
    parallel.run(pool, _slices(x))
    return out, (x, out)


def _max_backward(g, saved, geometry):
    """Each output's gradient goes to the first offset k, in row order, whose value equals
    the window's maximum: `free` marks the windows whose winner is not found yet. Padding
    never wins, and a NaN window has no winner (NaN equals nothing); the CUDA twin's argmax
    is the same winner, found the same way."""
    x, out = saved
    xp = array_module(g)
    gx = xp.zeros(x.shape, dtype=g.dtype)
    windows = _clipped_windows(geometry)

    def scatter(s):
        gs, os, xs, gxs = g[s], out[s], x[s], gx[s]
        free = xp.ones(os.shape, dtype=bool)
        for k, (out_index, x_index) in enumerate(windows):
            won = xp.equal(xs[x_index], os[out_index])
            won &= free[out_index]
            if k < len(windows) - 1:
                free[out_index] ^= won   # won implies free: this clears exactly the winners
            gxs[x_index] += gs[out_index] * won
    parallel.run(scatter, _slices(x))
    return gx


def _max_forward_cuda(x, geometry):
    xp = array_module(x)
    N, C = geometry[:2]
    out = xp.empty((N, C) + geometry[-2:], dtype=x.dtype)
    argmax = xp.empty(out.shape, dtype=xp.int32)
    CUDA.launch("max_pool2d_forward", kernels.contiguous(x), out, argmax, *geometry,
                threads=out.size)
    return out, argmax


def _max_backward_cuda(g, argmax, geometry):
    gx = array_module(g).empty(geometry[:4], dtype=g.dtype)
    CUDA.launch("max_pool2d_backward", kernels.contiguous(g), argmax, gx, *geometry,
                threads=gx.size)
    return gx


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Padding counts as zeros and every window divides by kh*kw (PyTorch's default)."""
    kernel, stride, padding, Ho, Wo = _pool_setup("avg_pool2d", x, kernel_size, stride, padding)
    geometry = _geometry(x.shape, kernel, stride, padding, Ho, Wo)
    forward, backward_of = ((_avg_forward_cuda, _avg_backward_cuda) if kernels.active(x.data)
                            else (_avg_forward, _avg_backward))

    def backward(g):
        return (backward_of(g, geometry),)
    return Tensor._from_op(forward(x.data, geometry), (x,), backward, "avg_pool2d")


def _avg_forward(x, geometry):
    xp = array_module(x)
    N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo = geometry
    xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    out = xp.zeros((N, C, Ho, Wo), dtype=x.dtype)
    for view in _windows((kh, kw), (sh, sw), Ho, Wo):
        out += xpad[view]
    out /= kh * kw
    return out


def _avg_backward(g, geometry):
    xp = array_module(g)
    N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo = geometry
    gpad = xp.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=g.dtype)
    for view in _windows((kh, kw), (sh, sw), Ho, Wo):
        gpad[view] += g / (kh * kw)
    return gpad[:, :, ph:ph + H, pw:pw + W]


def _avg_forward_cuda(x, geometry):
    out = array_module(x).empty(geometry[:2] + geometry[-2:], dtype=x.dtype)
    CUDA.launch("avg_pool2d_forward", kernels.contiguous(x), out, *geometry, threads=out.size)
    return out


def _avg_backward_cuda(g, geometry):
    gx = array_module(g).empty(geometry[:4], dtype=g.dtype)
    CUDA.launch("avg_pool2d_backward", kernels.contiguous(g), gx, *geometry, threads=gx.size)
    return gx


def global_avg_pool(x):
    """(N, C, H, W) -> (N, C): the mean of each feature map."""
    check_ndim("global_avg_pool", x, 4, "(N, C, H, W)")
    N, C, H, W = x.shape

    def backward(g):
        return (x.xp.broadcast_to((g / (H * W))[:, :, None, None], x.shape).copy(),)
    return Tensor._from_op(x.data.mean(axis=(2, 3)), (x,), backward, "global_avg_pool")
