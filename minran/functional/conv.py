"""2-D convolution as im2col plus one matrix product.

im2col copies every receptive field of the (padded) input into a column, so convolution
becomes `W (Cout, Cin*kh*kw) @ cols (N, Cin*kh*kw, Ho*Wo)`. Its backward is two more matrix
products, and col2im adds each column back where it came from (the adjoint of im2col).
Both have a CUDA twin in conv.cu; the matrix products run on BLAS or cuBLAS.
"""
from ..backend import array_module
from ..cuda import kernels
from ..tensor import Tensor
from ._util import check_ndim, check_same, pair
from .profile import count_macs


def output_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


CUDA = kernels.Source(__file__)


def _geometry(x_shape, kernel, stride, padding):
    """The integers every im2col/col2im kernel takes: N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    N, C, H, W = x_shape
    return (N, C, H, W, kh, kw, sh, sw, ph, pw,
            output_size(H, kh, sh, ph), output_size(W, kw, sw, pw))


def im2col(x, kernel, stride, padding):
    """(N, C, H, W) -> (N, C*kh*kw, Ho*Wo), one loop step per kernel offset."""
    xp = array_module(x)
    N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo = _geometry(x.shape, kernel, stride, padding)
    if kernels.active(x):
        cols = xp.empty((N, C * kh * kw, Ho * Wo), dtype=x.dtype)
        CUDA.launch("im2col", kernels.contiguous(x), cols, N, C, H, W, kh, kw, sh, sw, ph, pw,
                    Ho, Wo, threads=cols.size)
        return cols
    if ph or pw:
        x = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = xp.empty((N, C, kh, kw, Ho, Wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = x[:, :, i:i + sh * Ho:sh, j:j + sw * Wo:sw]
    return cols.reshape(N, C * kh * kw, Ho * Wo)


def col2im(cols, x_shape, kernel, stride, padding):
    """The adjoint of im2col: add every column entry back onto the pixel it was read from."""
    xp = array_module(cols)
    N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo = _geometry(x_shape, kernel, stride, padding)
    if kernels.active(cols):
        x = xp.empty(x_shape, dtype=cols.dtype)
        CUDA.launch("col2im", kernels.contiguous(cols), x, N, C, H, W, kh, kw, sh, sw, ph, pw,
                    Ho, Wo, threads=x.size)
        return x
    cols = cols.reshape(N, C, kh, kw, Ho, Wo)
    x = xp.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            x[:, :, i:i + sh * Ho:sh, j:j + sw * Wo:sw] += cols[:, :, i, j]
    return x[:, :, ph:ph + H, pw:pw + W]


def conv2d(x, w, b=None, stride=1, padding=0):
    """x (N, Cin, H, W), w (Cout, Cin, kh, kw), b (Cout,) -> (N, Cout, Ho, Wo)."""
    check_ndim("conv2d", x, 4, "(N, C, H, W)")
    check_ndim("conv2d", w, 4, "weight (Cout, Cin, kh, kw)")
    check_same("conv2d", x, w, b)
    stride, padding = pair(stride, "stride", "conv2d"), pair(padding, "padding", "conv2d")
    N, C, H, W = x.shape
    Cout, Cin, kh, kw = w.shape
    if C != Cin:
        raise ValueError(f"conv2d: input has {C} channels (shape {x.shape}) but the weight "
                         f"expects {Cin} (shape {w.shape})")
    if min(stride) < 1 or min(padding) < 0:
        raise ValueError(f"conv2d: stride must be >= 1 and padding >= 0, "
                         f"got stride={stride}, padding={padding}")
    if kh > H + 2 * padding[0] or kw > W + 2 * padding[1]:
        raise ValueError(f"conv2d: kernel {kh}x{kw} is larger than the padded input "
                         f"{H + 2 * padding[0]}x{W + 2 * padding[1]} (input {x.shape}, "
                         f"padding {padding}); use a smaller kernel or more padding")
    if b is not None and b.shape != (Cout,):
        raise ValueError(f"conv2d: bias must have shape ({Cout},), got {b.shape}")
    xp = x.xp
    Ho, Wo = output_size(H, kh, stride[0], padding[0]), output_size(W, kw, stride[1], padding[1])
    kernel = (kh, kw)
    # A 1x1, stride-1 convolution needs no im2col: the input already is the column matrix.
    pointwise = kernel == (1, 1) and stride == (1, 1) and padding == (0, 0)

    def columns():
        return x.data.reshape(N, C, H * W) if pointwise else im2col(x.data, kernel, stride, padding)
    w2 = w.data.reshape(Cout, Cin * kh * kw)
    out = xp.matmul(w2, columns()).reshape(N, Cout, Ho, Wo)
    if b is not None:
        out += b.data.reshape(1, Cout, 1, 1)
    count_macs("conv2d", N * Cout * Ho * Wo * Cin * kh * kw)

    def backward(g):
        # The columns are built again rather than kept from the forward pass: a 3x3 conv's
        # columns are 9 times its input, and keeping them for every conv until the backward
        # costs more memory than rebuilding them costs time (docs/BENCHMARKS.md).
        g2 = g.reshape(N, Cout, Ho * Wo)
        gw = xp.matmul(g2, columns().transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
        gx = None
        if x.requires_grad:
            gcols = xp.matmul(w2.T, g2)
            gx = gcols.reshape(x.shape) if pointwise else col2im(gcols, x.shape, kernel,
                                                                 stride, padding)
        gb = g.sum(axis=(0, 2, 3)) if b is not None else None
        return gx, gw, gb
    return Tensor._from_op(out, (x, w, b), backward, "conv2d")
