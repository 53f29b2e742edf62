"""2-D convolution as im2col plus one matrix product.

im2col copies every receptive field of the (padded) input into a column, so convolution
becomes `W (Cout, Cin*kh*kw) @ cols (N, Cin*kh*kw, Ho*Wo)`. Its backward is two more matrix
products, and col2im adds each column back where it came from (the adjoint of im2col).
Both have a CUDA twin in conv.cu; the matrix products run on BLAS or cuBLAS.
Plain version of each op here, forward and backward: minran/reference/conv.py.
"""
from .. import parallel
from ..backend import array_module
from ..cuda import blas, kernels
from ..tensor import Tensor
from ._util import check_ndim, check_same, pair
from .macs import count_macs


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
        x = _pad(x, ph, pw)
    cols = xp.empty((N, C, kh, kw, Ho, Wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = x[:, :, i:i + sh * Ho:sh, j:j + sw * Wo:sw]
    return cols.reshape(N, C * kh * kw, Ho * Wo)


def _pad(x, ph, pw):
    """x with ph zero rows above and below and pw zero columns each side (what xp.pad does,
    without its per-call cost: convolution pads every slice of the batch)."""
    N, C, H, W = x.shape
    padded = array_module(x).zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=x.dtype)
    padded[:, :, ph:ph + H, pw:pw + W] = x
    return padded


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
    count_macs("conv2d", N * Cout * Ho * Wo * Cin * kh * kw)
    if kernels.active(x.data):
        return _conv2d_cuda(x, w, b, kernel, stride, padding, pointwise)

    def columns(images):
        """The column matrix of some images of x, (n, Cin*kh*kw, Ho*Wo)."""
        n = images.shape[0]
        return images.reshape(n, C, H * W) if pointwise else im2col(images, kernel, stride,
                                                                    padding)
    # The batch is cut into slices of a few images (parallel.py): each slice's columns are
    # built, used and dropped while they are still in the cache, on every core, and no
    # full-size column matrix ever exists (a 3x3 conv's is 9 times its input).
    parts = parallel.slices(x.data, axis_bytes=x.data.itemsize * (C * kh * kw + Cout) * Ho * Wo)
    w2 = w.data.reshape(Cout, Cin * kh * kw)
    out = xp.empty((N, Cout, Ho * Wo), dtype=x.dtype)

    def forward(s):
        xp.matmul(w2, columns(x.data[s]), out=out[s])
        if b is not None:
            out[s] += b.data.reshape(Cout, 1)
    parallel.run(forward, parts)
    # The input gradient of a stride-1 convolution is itself a convolution: of g, padded
    # by k - 1 - p, with the kernel flipped and its two channel axes swapped. That is one
    # im2col (a copy) where col2im is a scatter of adds, which NumPy does slowly; the GPU
    # keeps col2im, a gather kernel. (tests/test_fast_paths.py holds the two equal.)
    flipped = stride == (1, 1) and padding[0] < kh and padding[1] < kw and not pointwise

    def backward(g):
        # The columns are built again rather than kept from the forward pass: a 3x3 conv's
        # columns are 9 times its input, and keeping them for every conv until the backward
        # costs more memory than rebuilding them costs time (docs/BENCHMARKS.md).
        g2 = g.reshape(N, Cout, Ho * Wo)
        gx = xp.empty(x.shape, dtype=x.dtype) if x.requires_grad else None
        if flipped:
            w_flipped = w.data[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(Cin, Cout * kh * kw)
            g_padding = (kh - 1 - padding[0], kw - 1 - padding[1])

        def slice_backward(s):
            # The weight gradient transposed, cols @ g^T, (K, Cout): BLAS is up to 1.7 times
            # faster this way round than g @ cols^T at the network's shapes.
            gw_t = xp.matmul(columns(x.data[s]), g2[s].transpose(0, 2, 1)).sum(axis=0)
            if gx is None:
                return gw_t
            if pointwise:
                xp.matmul(w2.T, g2[s], out=gx[s].reshape(-1, C, H * W))
            elif flipped:
                g_cols = im2col(g2[s].reshape(-1, Cout, Ho, Wo), kernel, (1, 1), g_padding)
                xp.matmul(w_flipped, g_cols, out=gx[s].reshape(-1, C, H * W))
            else:
                gx[s] = col2im(xp.matmul(w2.T, g2[s]), gx[s].shape, kernel, stride, padding)
            return gw_t
        gw = parallel.total(parallel.run(slice_backward, parts)).T.reshape(w.shape)
        gb = g.sum(axis=(0, 2, 3)) if b is not None else None
        return gx, gw, gb
    return Tensor._from_op(out.reshape(N, Cout, Ho, Wo), (x, w, b), backward, "conv2d")


def _conv2d_cuda(x, w, b, kernel, stride, padding, pointwise):
    """The GPU's convolution: im2col (conv.cu) and cuBLAS products over the whole batch, each
    product one launch (cuda/blas.py), every gradient written where it is kept.

        out[n] = W @ cols[n]                      one strided-batched GEMM, W shared (stride 0)
        gx     = col2im(W^T @ g[n])               one GEMM, one gather (or straight into gx)
        gW     = sum over n of g[n] @ cols[n]^T   one GEMM per image in one launch, one sum
    """
    xp = x.xp
    N, C, H, W = x.shape
    Cout = w.shape[0]
    K = w.size // Cout
    _, _, _, _, kh, kw, sh, sw, ph, pw, Ho, Wo = _geometry(x.shape, kernel, stride, padding)
    w2 = w.data.reshape(Cout, K)

    data = kernels.contiguous(x.data)
    # The columns are kept for the backward, unlike on the CPU: rebuilding them would be one
    # more launch per 3x3 convolution (63 in Attention-92's step, whose launch budget is in
    # docs/KERNELS.md), and GPU memory holds them (9 times the input of each 3x3 conv).
    cols = data.reshape(N, C, H * W) if pointwise else im2col(data, kernel, stride, padding)
    out = xp.empty((N, Cout, Ho * Wo), dtype=x.dtype)
    blas.gemm(w2, cols, out)
    if b is not None:
        out += b.data.reshape(Cout, 1)

    def backward(g):
        g2 = kernels.contiguous(g).reshape(N, Cout, Ho * Wo)
        gx = None
        if x.requires_grad:
            if pointwise:
                gx = xp.empty(x.shape, dtype=x.dtype)
                blas.gemm(w2, g2, gx.reshape(N, C, H * W), trans_a=True)
            else:
                g_cols = xp.empty((N, K, Ho * Wo), dtype=x.dtype)
                blas.gemm(w2, g2, g_cols, trans_a=True)
                gx = col2im(g_cols, x.shape, kernel, stride, padding)
        gw = None
        if w.requires_grad:
            per_image = xp.empty((N, Cout, K), dtype=x.dtype)
            blas.gemm(g2, cols, per_image, trans_b=True)
            gw = w.grad_out()   # its slot in the flat gradient buffer, if it has one
            gw = xp.empty(w.shape, dtype=x.dtype) if gw is None else gw
            per_image.sum(axis=0, out=gw.reshape(Cout, K))
        gb = g.sum(axis=(0, 2, 3)) if b is not None else None
        return gx, gw, gb
    return Tensor._from_op(out.reshape(N, Cout, Ho, Wo), (x, w, b), backward, "conv2d")
