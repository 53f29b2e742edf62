"""Max and average pooling, written as a loop over the kh*kw offsets of the window.

Each offset (i, j) picks one strided view `x[:, :, i::s, j::s]` of the padded input: the
window values of every output pixel at once. The backward adds into the same views.
"""
from ..tensor import Tensor
from ._util import check_ndim, pair
from .conv import output_size


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


def _windows(xpad, kernel, stride, Ho, Wo):
    """Yield (k, view) for every kernel offset; view has the output's shape."""
    (kh, kw), (sh, sw) = kernel, stride
    for i in range(kh):
        for j in range(kw):
            yield i * kw + j, (slice(None), slice(None),
                               slice(i, i + sh * Ho, sh), slice(j, j + sw * Wo, sw))


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """Padding counts as -inf. Ties send the gradient to the first maximum in row order."""
    kernel, stride, padding, Ho, Wo = _pool_setup("max_pool2d", x, kernel_size, stride, padding)
    xp = x.xp
    (ph, pw) = padding
    xpad = x.data
    if ph or pw:
        xpad = xp.pad(x.data, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-xp.inf)
    views = list(_windows(xpad, kernel, stride, Ho, Wo))
    out = xpad[views[0][1]].copy()
    argmax = xp.zeros(out.shape, dtype=xp.int32)  # which offset won, saved for backward
    for k, view in views[1:]:
        candidate = xpad[view]
        better = candidate > out  # strict: an equal later value does not take over
        xp.copyto(out, candidate, where=better)
        xp.copyto(argmax, k, where=better)

    def backward(g):
        gpad = xp.zeros(xpad.shape, dtype=g.dtype)
        for k, view in views:
            gpad[view] += g * (argmax == k)
        return (gpad[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]],)
    return Tensor._from_op(out, (x,), backward, "max_pool2d")


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Padding counts as zeros and every window divides by kh*kw (PyTorch's default)."""
    kernel, stride, padding, Ho, Wo = _pool_setup("avg_pool2d", x, kernel_size, stride, padding)
    xp = x.xp
    (ph, pw) = padding
    xpad = xp.pad(x.data, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x.data
    views = list(_windows(xpad, kernel, stride, Ho, Wo))
    area = kernel[0] * kernel[1]
    out = xp.zeros((x.shape[0], x.shape[1], Ho, Wo), dtype=x.dtype)
    for _, view in views:
        out += xpad[view]
    out /= area

    def backward(g):
        gpad = xp.zeros(xpad.shape, dtype=g.dtype)
        for _, view in views:
            gpad[view] += g / area
        return (gpad[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]],)
    return Tensor._from_op(out, (x,), backward, "avg_pool2d")


def global_avg_pool(x):
    """(N, C, H, W) -> (N, C): the mean of each feature map."""
    check_ndim("global_avg_pool", x, 4, "(N, C, H, W)")
    N, C, H, W = x.shape

    def backward(g):
        return (x.xp.broadcast_to((g / (H * W))[:, :, None, None], x.shape).copy(),)
    return Tensor._from_op(x.data.mean(axis=(2, 3)), (x,), backward, "global_avg_pool")
