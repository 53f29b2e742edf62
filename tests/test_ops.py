"""Every op: a hypothesis-drawn float64 gradient check, its forward against an independent
reference written here from the op's definition (loops, one output element at a time), and
known values worked by hand.

Spatial ops draw every size per axis on its own: rectangular kernels, unequal strides and
paddings, non-square inputs. A square-only draw cannot see an index that uses the height
where the width belongs, and such bugs have survived here before (see docs/MUTATION.md).
"""
import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import minran.functional as F
from minran import Tensor, gradcheck

from .helpers import LOPSIDED, randn, windows

seeds = st.integers(0, 2**16)


# ---- elementwise and shape ops -------------------------------------------------------------
# Each op gets its own draws: sampled from one list, 25 draws left some ops untried.
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@given(mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3), seeds)
def test_binary_broadcasting_grad(op, shapes, seed):
    a, b = randn(shapes.input_shapes[0], seed), randn(shapes.input_shapes[1], seed + 1)
    if op == "div":
        b = Tensor(np.abs(b.data) + 0.5, requires_grad=True)  # keep away from 0
    fn = getattr(F, op)
    reference = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}[op]
    out = fn(a, b)
    assert out.shape == shapes.result_shape
    np.testing.assert_allclose(out.data, reference(a.data, b.data), rtol=1e-15)
    gradcheck(fn, a, b)


@pytest.mark.parametrize("op", ["neg", "exp", "log", "sqrt", "relu", "sigmoid"])
@given(st.lists(st.integers(1, 3), min_size=1, max_size=3), seeds)
def test_unary_grad(op, shape, seed):
    x = randn(shape, seed)
    if op in ("log", "sqrt"):
        x = Tensor(np.abs(x.data) + 0.5, requires_grad=True)
    if op == "relu":  # finite differences are undefined at the kink
        x = Tensor(np.where(np.abs(x.data) < 0.01, 0.5, x.data), requires_grad=True)
    # A forward and a backward wrong together (say neg returning x with gradient g) pass a
    # gradient check: the forward needs its own reference.
    reference = {"neg": lambda v: -v, "exp": math.exp, "log": math.log, "sqrt": math.sqrt,
                 "relu": lambda v: max(v, 0.0), "sigmoid": lambda v: 1 / (1 + math.exp(-v))}[op]
    expected = np.vectorize(reference)(x.data)
    np.testing.assert_allclose(getattr(F, op)(x).data, expected, rtol=1e-14, atol=1e-300)
    gradcheck(getattr(F, op), x)


@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), seeds, st.data())
def test_reductions_grad(shape, seed, data):
    x = randn(shape, seed)
    n = len(shape)
    # Axes counted from either end, as NumPy takes them: -1 is the last.
    either_end = st.integers(0, n - 1).flatmap(lambda a: st.sampled_from([a, a - n]))
    axis = data.draw(st.one_of(st.none(), either_end,
                               st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True)
                               .flatmap(lambda axes: st.tuples(*[st.sampled_from([a, a - n]) for a in axes]))))
    keepdims = data.draw(st.booleans())
    gradcheck(lambda x: F.sum(x, axis, keepdims), x)
    gradcheck(lambda x: F.mean(x, axis, keepdims), x)
    np.testing.assert_allclose(F.sum(x, axis, keepdims).data, x.data.sum(axis=axis, keepdims=keepdims))
    np.testing.assert_allclose(F.mean(x, axis, keepdims).data, x.data.mean(axis=axis, keepdims=keepdims))


def test_negative_axes_count_from_the_end():
    x = randn((2, 3, 4))
    np.testing.assert_allclose(F.sum(x, -2).data, x.data.sum(axis=1))
    gradcheck(lambda x: F.mean(x, (-1, 0)), x)
    gradcheck(lambda x: F.sum(x, -2, keepdims=True), x)


@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), seeds, st.data())
def test_reshape_transpose_grad(shape, seed, data):
    x = randn(shape, seed)
    axes = tuple(data.draw(st.permutations(range(len(shape)))))
    gradcheck(lambda x: F.transpose(x, axes) * Tensor(np.arange(x.size).reshape(
        np.array(x.shape)[list(axes)]) * 1.0), x)
    gradcheck(lambda x: F.reshape(x, (-1,)), x)
    np.testing.assert_array_equal(F.transpose(x, axes).data, np.transpose(x.data, axes))
    np.testing.assert_array_equal(F.reshape(x, (-1,)).data, x.data.ravel())


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(0, 2), seeds)
def test_matmul_grad(n, k, m, batch, seed):
    a = randn(((batch,) if batch else ()) + (n, k), seed)
    b = randn((k, m), seed + 1)
    gradcheck(F.matmul, a, b)
    np.testing.assert_allclose((a @ b).data, a.data @ b.data)


# ---- spatial ops: independent references and drawn windows ----------------------------------
def pad(x, padding, value=0.0):
    (ph, pw) = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def out_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def naive_conv2d(x, w, b, stride, padding):
    """The definition, one output element at a time."""
    (sh, sw), (ph, pw) = stride, padding
    N, C, H, W = x.shape
    Co, _, kh, kw = w.shape
    xp = pad(x, padding)
    out = np.zeros((N, Co, out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)))
    for n, o, i, j in np.ndindex(out.shape):
        patch = xp[n, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
        out[n, o, i, j] = (patch * w[o]).sum() + (b[o] if b is not None else 0)
    return out


def naive_im2col(x, kernel, stride, padding):
    """Row (c, di, dj), column (i, j): the input pixel kernel offset (di, dj) of output (i, j) reads."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    N, C, H, W = x.shape
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    xp = pad(x, padding)
    cols = np.zeros((N, C * kh * kw, Ho * Wo))
    for n, c, di, dj, i, j in np.ndindex(N, C, kh, kw, Ho, Wo):
        cols[n, (c * kh + di) * kw + dj, i * Wo + j] = xp[n, c, i * sh + di, j * sw + dj]
    return cols


def naive_col2im(cols, x_shape, kernel, stride, padding):
    """Each column entry added back onto the input pixel naive_im2col read it from."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    N, C, H, W = x_shape
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    for n, c, di, dj, i, j in np.ndindex(N, C, kh, kw, Ho, Wo):
        xp[n, c, i * sh + di, j * sw + dj] += cols[n, (c * kh + di) * kw + dj, i * Wo + j]
    return xp[:, :, ph:ph + H, pw:pw + W]


def naive_max_pool2d(x, g, kernel, stride, padding):
    """Output and input gradient (for output gradient g): padding is -inf, and each window's
    gradient goes to its first maximum in row order."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    N, C, H, W = x.shape
    xp = pad(x, padding, -np.inf)
    out = np.zeros((N, C, out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)))
    gx = np.zeros(xp.shape)
    for n, c, i, j in np.ndindex(out.shape):
        best, where = -np.inf, None
        for di, dj in np.ndindex(kh, kw):
            if xp[n, c, i * sh + di, j * sw + dj] > best:
                best, where = xp[n, c, i * sh + di, j * sw + dj], (i * sh + di, j * sw + dj)
        out[n, c, i, j] = best
        gx[(n, c) + where] += g[n, c, i, j]
    return out, gx[:, :, ph:ph + H, pw:pw + W]


def naive_avg_pool2d(x, g, kernel, stride, padding):
    """Output and input gradient: padding is zeros and every window divides by kh * kw."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    N, C, H, W = x.shape
    xp = pad(x, padding)
    out = np.zeros((N, C, out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)))
    gx = np.zeros(xp.shape)
    for n, c, i, j in np.ndindex(out.shape):
        rows, cols = slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)
        out[n, c, i, j] = xp[n, c, rows, cols].sum() / (kh * kw)
        gx[n, c, rows, cols] += g[n, c, i, j] / (kh * kw)
    return out, gx[:, :, ph:ph + H, pw:pw + W]


# LOPSIDED (helpers.py): height and width padding differ, and a kernel wider than tall.
LOPSIDED_T = ((5, 3), (3, 2), (2, 1), (0, 1))
# Stride 1 takes the convolution's flipped-kernel input gradient, which pads g by k - 1 - p
# per axis: unequal paddings there too (one draw in nine has stride 1 on both axes).
LOPSIDED_STRIDE_1 = ((4, 5), (2, 3), (1, 1), (1, 2))


# ---- convolution ---------------------------------------------------------------------------
@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), windows(), st.booleans(), seeds)
@example(2, 2, 3, LOPSIDED, True, 0)
@example(1, 2, 2, LOPSIDED_T, False, 1)
@example(2, 2, 1, LOPSIDED_STRIDE_1, False, 2)
def test_conv2d_grad_and_reference(N, Cin, Cout, window, bias, seed):
    (H, W), (kh, kw), stride, padding = window
    x, w = randn((N, Cin, H, W), seed), randn((Cout, Cin, kh, kw), seed + 1)
    b = randn((Cout,), seed + 2) if bias else None
    out = F.conv2d(x, w, b, stride, padding)
    np.testing.assert_allclose(out.data, naive_conv2d(x.data, w.data, None if b is None else b.data, stride, padding),
                               rtol=1e-12, atol=1e-12)
    gradcheck(lambda x, w, *b: F.conv2d(x, w, b[0] if b else None, stride, padding),
              x, w, *([b] if bias else []))


@given(st.integers(1, 2), st.integers(1, 2), st.integers(1, 3), seeds)
def test_pointwise_conv2d_reference(N, Cin, Cout, seed):
    # 1x1, stride 1, no padding skips im2col: its own path, its own check (non-square input).
    x, w = randn((N, Cin, 3, 5), seed), randn((Cout, Cin, 1, 1), seed + 1)
    np.testing.assert_allclose(F.conv2d(x, w).data, naive_conv2d(x.data, w.data, None, (1, 1), (0, 0)),
                               rtol=1e-12, atol=1e-12)
    gradcheck(F.conv2d, x, w)


def test_multiply_accumulates_are_counted_by_hand():
    # conv: every output element (N * Cout * Ho * Wo) costs Cin * kh * kw; linear: N * out * in.
    x, w = Tensor(np.ones((2, 3, 5, 4))), Tensor(np.ones((4, 3, 3, 2)))
    with F.counting_macs() as outer:
        F.conv2d(x, w, stride=(2, 1), padding=(1, 0))            # Ho = 3, Wo = 3
        with F.counting_macs() as inner:
            F.linear(Tensor(np.ones((5, 7))), Tensor(np.ones((6, 7))))
        F.conv2d(x, w, stride=(2, 1), padding=(1, 0))            # counts add up
    assert inner == {"linear": 5 * 6 * 7}
    assert outer == {"conv2d": 2 * (2 * 4 * 3 * 3) * (3 * 3 * 2)}


def test_conv2d_known_value():
    # A 3x3 image of 1..9 and a 2x2 kernel [[1, 0], [0, -1]]: each output is x[i,j] - x[i+1,j+1],
    # which is always 1 - 5 = -4 ... computed by hand: 1-5, 2-6, 4-8, 5-9.
    x = Tensor(np.arange(1, 10, dtype=np.float64).reshape(1, 1, 3, 3))
    w = Tensor(np.array([[[[1.0, 0.0], [0.0, -1.0]]]]))
    np.testing.assert_array_equal(F.conv2d(x, w).data, [[[[-4.0, -4.0], [-4.0, -4.0]]]])
    # With padding 1 and stride 2 the windows start at padded (0,0), (0,2), (2,0), (2,2):
    # out[0,0] = pad - x[0,0] = -1; out[0,1] = pad - x[0,2] = -3; out[1,0] = pad - x[2,0] = -7;
    # out[1,1] = x[1,1] - x[2,2] = 5 - 9 = -4.
    np.testing.assert_array_equal(F.conv2d(x, w, stride=2, padding=1).data,
                                  [[[[-1.0, -3.0], [-7.0, -4.0]]]])
    b = Tensor(np.array([10.0]))
    np.testing.assert_array_equal(F.conv2d(x, w, b).data, [[[[6.0, 6.0], [6.0, 6.0]]]])


@given(windows(), seeds)
@example(LOPSIDED, 0)
@example(LOPSIDED_T, 1)
def test_im2col_and_col2im_against_references(window, seed):
    (H, W), kernel, stride, padding = window
    r = np.random.default_rng(seed)
    x = r.standard_normal((2, 3, H, W))
    cols = F.im2col(x, kernel, stride, padding)
    np.testing.assert_array_equal(cols, naive_im2col(x, kernel, stride, padding))
    c = r.standard_normal(cols.shape)
    back = F.col2im(c, x.shape, kernel, stride, padding)
    np.testing.assert_allclose(back, naive_col2im(c, x.shape, kernel, stride, padding), rtol=1e-12, atol=1e-12)
    # col2im is im2col's adjoint: <im2col(x), c> = <x, col2im(c)>.
    assert np.isclose((cols * c).sum(), (x * back).sum())


# ---- pooling -------------------------------------------------------------------------------
@given(st.integers(1, 2), st.integers(1, 2), windows(pool=True), st.booleans(), st.booleans(), seeds)
@example(2, 2, LOPSIDED, False, False, 0)
@example(1, 2, LOPSIDED, True, False, 0)
@example(1, 2, LOPSIDED_T, False, True, 3)
def test_max_pool2d_against_reference(N, C, window, ties, default_stride, seed):
    (H, W), kernel, stride, padding = window
    stride_arg = None if default_stride else stride
    stride = kernel if default_stride else stride
    r = np.random.default_rng(seed)
    # Small integers make ties, where the first maximum in row order must win.
    data = r.integers(-2, 3, (N, C, H, W)).astype(np.float64) if ties else r.standard_normal((N, C, H, W))
    x = Tensor(data, requires_grad=True)
    out = F.max_pool2d(x, kernel, stride_arg, padding)
    g = r.standard_normal(out.shape)
    expected, expected_grad = naive_max_pool2d(data, g, kernel, stride, padding)
    np.testing.assert_array_equal(out.data, expected)
    out.backward(Tensor(g))
    np.testing.assert_allclose(x.grad.data, expected_grad, rtol=1e-12, atol=1e-12)
    if not ties:  # finite differences need each window's maximum to be unique
        gradcheck(lambda x: F.max_pool2d(x, kernel, stride_arg, padding), Tensor(data, requires_grad=True))


@given(st.integers(1, 2), st.integers(1, 2), windows(pool=True), st.booleans(), seeds)
@example(2, 2, LOPSIDED, False, 0)
@example(1, 2, LOPSIDED_T, False, 1)
def test_avg_pool2d_against_reference(N, C, window, default_stride, seed):
    (H, W), kernel, stride, padding = window
    stride_arg = None if default_stride else stride
    stride = kernel if default_stride else stride
    r = np.random.default_rng(seed)
    x = Tensor(r.standard_normal((N, C, H, W)), requires_grad=True)
    out = F.avg_pool2d(x, kernel, stride_arg, padding)
    g = r.standard_normal(out.shape)
    expected, expected_grad = naive_avg_pool2d(x.data, g, kernel, stride, padding)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)
    out.backward(Tensor(g))
    np.testing.assert_allclose(x.grad.data, expected_grad, rtol=1e-12, atol=1e-12)
    gradcheck(lambda x: F.avg_pool2d(x, kernel, stride_arg, padding), Tensor(x.data, requires_grad=True))


def test_max_pool2d_known_values_and_ties():
    x = Tensor(np.array([[[[1.0, 5.0, 2.0, 2.0],
                           [3.0, 4.0, 2.0, 2.0],
                           [0.0, 0.0, -1.0, -3.0],
                           [0.0, 0.0, -2.0, -4.0]]]]), requires_grad=True)
    out = F.max_pool2d(x, 2)
    np.testing.assert_array_equal(out.data, [[[[5.0, 2.0], [0.0, -1.0]]]])
    out.backward(np.ones((1, 1, 2, 2)))
    # Ties (the 2s and the 0s) send the whole gradient to the first maximum in row order.
    np.testing.assert_array_equal(x.grad.data, [[[[0, 1, 1, 0], [0, 0, 0, 0],
                                                  [1, 0, 1, 0], [0, 0, 0, 0]]]])
    # Padding counts as -inf, so an all-negative corner window still returns its value.
    neg = Tensor(-np.arange(1.0, 5.0).reshape(1, 1, 2, 2))
    np.testing.assert_array_equal(F.max_pool2d(neg, 3, 2, 1).data, [[[[-1.0]]]])


def test_avg_pool2d_known_values():
    x = Tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    np.testing.assert_array_equal(F.avg_pool2d(x, 2).data, [[[[2.5, 4.5], [10.5, 12.5]]]])
    # Padding counts as zeros and the divisor stays 9: corner = (0+1+4+5)/9.
    assert F.avg_pool2d(x, 3, 2, 1).data[0, 0, 0, 0] == pytest.approx(10 / 9)


@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), seeds)
def test_global_avg_pool_grad(N, C, H, W, seed):
    x = randn((N, C, H, W), seed)
    np.testing.assert_allclose(F.global_avg_pool(x).data, x.data.mean(axis=(2, 3)))
    gradcheck(F.global_avg_pool, x)


# ---- batch norm ----------------------------------------------------------------------------
@given(st.integers(2, 3), st.integers(1, 3), st.sampled_from([0, 1, 3]), st.booleans(),
       st.booleans(), seeds)
def test_batch_norm_grad(N, C, HW, training, affine, seed):
    shape = (N, C) if HW == 0 else (N, C, HW, HW + 1)
    x = randn(shape, seed, scale=2.0, shift=1.0)
    rm, rv = np.random.default_rng(seed).standard_normal(C), np.abs(np.random.default_rng(seed).standard_normal(C)) + 0.5
    w, b = (randn((C,), seed + 1), randn((C,), seed + 2)) if affine else (None, None)
    # The forward and the running statistics against the definition, channel by channel.
    rm2, rv2 = rm.copy(), rv.copy()
    out = F.batch_norm(x, w, b, rm2, rv2, training, momentum=0.1, eps=1e-5).data
    for c in range(C):
        v = x.data[:, c]
        mean, var = (v.mean(), v.var()) if training else (rm[c], rv[c])
        expected = (v - mean) / math.sqrt(var + 1e-5)
        if affine:
            expected = expected * w.data[c] + b.data[c]
        np.testing.assert_allclose(out[:, c], expected, rtol=1e-10, atol=1e-12)
        if training:  # 0.9 old + 0.1 batch, with the unbiased variance
            assert rm2[c] == pytest.approx(0.9 * rm[c] + 0.1 * mean)
            assert rv2[c] == pytest.approx(0.9 * rv[c] + 0.1 * var * v.size / (v.size - 1))
        else:
            assert rm2[c] == rm[c] and rv2[c] == rv[c]
    gradcheck(lambda x, *wb: F.batch_norm(x, *(wb or (None, None)), rm.copy(), rv.copy(), training),
              x, *([w, b] if affine else []))


def test_batch_norm_known_values_and_running_update():
    x = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 16.0], [7.0, 16.0]])  # (N=4, C=2)
    rm, rv = np.zeros(2), np.ones(2)
    out = F.batch_norm(Tensor(x), Tensor(np.array([2.0, 1.0])), Tensor(np.array([0.5, 0.0])),
                       rm, rv, training=True, momentum=0.1, eps=0.0)
    # Channel 0: mean 4, biased var 5 -> (x - 4) / sqrt(5) * 2 + 0.5.
    np.testing.assert_allclose(out.data[:, 0], (x[:, 0] - 4) / np.sqrt(5) * 2 + 0.5)
    # Channel 1: mean 13, biased var 9 -> (+-3)/3 = +-1.
    np.testing.assert_allclose(out.data[:, 1], [-1, -1, 1, 1])
    # Running statistics: 0.9 * old + 0.1 * batch, variance unbiased (5 * 4/3, 9 * 4/3).
    np.testing.assert_allclose(rm, [0.4, 1.3])
    np.testing.assert_allclose(rv, [0.9 + 0.1 * 20 / 3, 0.9 + 0.1 * 12])
    # Evaluation uses the running statistics and changes nothing.
    ev = F.batch_norm(Tensor(x), None, None, rm, rv, training=False, eps=0.0)
    np.testing.assert_allclose(ev.data, (x - rm) / np.sqrt(rv))
    np.testing.assert_allclose(rm, [0.4, 1.3])


def test_batch_norm_float32_large_mean_keeps_precision():
    # A mean far above the spread: E[x^2] - E[x]^2 would lose every digit in float32.
    r = np.random.default_rng(0)
    x = (1e4 + r.standard_normal((64, 3, 4, 4))).astype(np.float32)
    out = F.batch_norm(Tensor(x), None, None, np.zeros(3, np.float32), np.ones(3, np.float32), True)
    np.testing.assert_allclose(out.data.std(axis=(0, 2, 3)), 1.0, rtol=1e-2)


# ---- bilinear upsampling -------------------------------------------------------------------
def source_coordinate(o, size_in, size_out, align_corners):
    """Where output pixel o samples the input, in input pixel units."""
    if align_corners:  # corner centres onto corner centres
        return o * (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
    return max((o + 0.5) * size_in / size_out - 0.5, 0.0)  # half-pixel centres, clamped at 0


def naive_upsample_bilinear(x, size, align_corners):
    """Each output pixel blends the four input pixels around its source point; beyond the
    last row or column the edge pixel repeats."""
    N, C, H, W = x.shape
    out = np.zeros((N, C) + tuple(size))
    for i, j in np.ndindex(*size):
        sy, sx = source_coordinate(i, H, size[0], align_corners), source_coordinate(j, W, size[1], align_corners)
        y0, x0 = min(int(sy), H - 1), min(int(sx), W - 1)
        y1, x1 = min(y0 + 1, H - 1), min(x0 + 1, W - 1)
        fy, fx = sy - y0, sx - x0
        out[:, :, i, j] = ((1 - fy) * ((1 - fx) * x[:, :, y0, x0] + fx * x[:, :, y0, x1])
                           + fy * ((1 - fx) * x[:, :, y1, x0] + fx * x[:, :, y1, x1]))
    return out


@given(st.integers(1, 2), st.integers(1, 2), st.integers(1, 5), st.integers(1, 5),
       st.integers(1, 9), st.integers(1, 9), st.booleans(), seeds)
@example(1, 2, 2, 3, 5, 4, True, 0)
@example(1, 2, 2, 3, 5, 4, False, 0)
def test_upsample_bilinear_grad_and_reference(N, C, H, W, Ho, Wo, align_corners, seed):
    x = randn((N, C, H, W), seed)
    np.testing.assert_allclose(F.upsample_bilinear(x, (Ho, Wo), align_corners).data,
                               naive_upsample_bilinear(x.data, (Ho, Wo), align_corners),
                               rtol=1e-12, atol=1e-12)
    gradcheck(lambda x: F.upsample_bilinear(x, (Ho, Wo), align_corners), x)


def test_upsample_bilinear_known_values():
    x = Tensor(np.array([[[[0.0, 1.0], [2.0, 3.0]]]]))
    # 2x2 -> 3x3: both conventions put the middle sample half-way (by hand).
    expected = [[0, 0.5, 1], [1, 1.5, 2], [2, 2.5, 3]]
    np.testing.assert_allclose(F.upsample_bilinear(x, 3, True).data[0, 0], expected)
    np.testing.assert_allclose(F.upsample_bilinear(x, 3, False).data[0, 0], expected)
    # 2x2 -> 4x4 tells them apart. align_corners=True: sources 0, 1/3, 2/3, 1.
    row = np.array([0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(F.upsample_bilinear(x, 4, True).data[0, 0],
                               row[None, :] + 2 * row[:, None])
    # align_corners=False: sources -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
    row = np.array([0, 0.25, 0.75, 1])
    np.testing.assert_allclose(F.upsample_bilinear(x, 4, False).data[0, 0],
                               row[None, :] + 2 * row[:, None])


def test_upsample_bilinear_odd_sizes_and_identity():
    x = randn((1, 2, 7, 7), 3, requires_grad=False)
    assert F.upsample_bilinear(x, (14, 14)).shape == (1, 2, 14, 14)
    assert F.upsample_bilinear(F.upsample_bilinear(x, 14), 28).shape == (1, 2, 28, 28)
    np.testing.assert_allclose(F.upsample_bilinear(x, 7, True).data, x.data)
    np.testing.assert_allclose(F.upsample_bilinear(x, 7, False).data, x.data)
    # align_corners=True keeps the corners exactly.
    y = F.upsample_bilinear(x, (13, 5), True).data
    np.testing.assert_allclose(y[..., [0, -1], :][..., [0, -1]], x.data[..., [0, -1], :][..., [0, -1]])


# ---- activations, linear and losses --------------------------------------------------------
def test_relu_sigmoid_known_values_and_stability():
    x = Tensor(np.array([-1000.0, -2.0, 0.0, 2.0, 1000.0]))
    np.testing.assert_array_equal(F.relu(x).data, [0, 0, 0, 2, 1000])
    with np.errstate(over="raise", invalid="raise"):  # exp never overflows
        s = F.sigmoid(x).data
    np.testing.assert_allclose(s, [0.0, 1 / (1 + np.e ** 2), 0.5, 1 / (1 + np.e ** -2), 1.0])
    assert s[0] >= 0 and s[-1] <= 1
    x32 = Tensor(np.array([-100.0, 100.0], np.float32))
    assert F.sigmoid(x32).dtype == np.float32
    # At the kink relu passes no gradient, as PyTorch's does (so runs compare step for step);
    # exact zeros are common: a zero-padded or zero-initialised input.
    kink = Tensor(np.array([-1.0, 0.0, 1.0]), requires_grad=True)
    F.relu(kink).backward(np.ones(3))
    np.testing.assert_array_equal(kink.grad.data, [0, 0, 1])


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.booleans(), seeds)
def test_linear_grad(N, fin, fout, bias, seed):
    x, w = randn((N, fin), seed), randn((fout, fin), seed + 1)
    b = randn((fout,), seed + 2) if bias else None
    np.testing.assert_allclose(F.linear(x, w, b).data, x.data @ w.data.T + (b.data if bias else 0))
    gradcheck(lambda x, w, *b: F.linear(x, w, *b), x, w, *([b] if bias else []))


@given(st.integers(1, 4), st.integers(1, 5), seeds)
def test_log_softmax_and_cross_entropy_grad(N, K, seed):
    logits = randn((N, K), seed, scale=3.0)
    labels = np.random.default_rng(seed).integers(0, K, N)
    # The definitions: log(exp(z_k) / sum_j exp(z_j)), and the batch mean of -log p(label).
    logp = np.array([[z_k - math.log(sum(math.exp(z_j) for z_j in row)) for z_k in row]
                     for row in logits.data])
    np.testing.assert_allclose(F.log_softmax(logits).data, logp, rtol=1e-12, atol=1e-12)
    assert F.cross_entropy(logits, labels).item() == pytest.approx(
        -sum(logp[n, labels[n]] for n in range(N)) / N, rel=1e-12)
    gradcheck(F.log_softmax, logits)
    gradcheck(lambda z: F.cross_entropy(z, labels), logits)


def test_cross_entropy_known_values_and_stability():
    # Equal logits: -log(1/K) whatever their size.
    z = Tensor(np.full((3, 4), 1e4))
    assert F.cross_entropy(z, np.array([0, 1, 3])).item() == pytest.approx(np.log(4))
    # One confident, correct row and one confident, wrong row (margin 1000): (0 + 1000) / 2.
    z = Tensor(np.array([[1000.0, 0.0], [1000.0, 0.0]]))
    assert F.cross_entropy(z, np.array([0, 1])).item() == pytest.approx(500.0)
    np.testing.assert_allclose(np.exp(F.log_softmax(Tensor(np.array([[0.0, np.log(3.0)]]))).data),
                               [[0.25, 0.75]])
    # Each row is shifted by its own maximum: a row far below another keeps its digits.
    rows = Tensor(np.array([[0.0, np.log(3.0)], [1000.0, 1000.0 + np.log(3.0)]]))
    np.testing.assert_allclose(np.exp(F.log_softmax(rows).data), [[0.25, 0.75], [0.25, 0.75]])
    assert F.cross_entropy(rows, np.array([1, 1])).item() == pytest.approx(-np.log(0.75))


# ---- the attention module's own ops --------------------------------------------------------
@given(st.lists(st.integers(1, 3), min_size=4, max_size=4), st.booleans(), seeds)
def test_attention_combine_grad(shape, residual, seed):
    m, t = randn(shape, seed), randn(shape, seed + 1)
    expected = (1 + m.data) * t.data if residual else m.data * t.data
    np.testing.assert_allclose(F.attention_combine(m, t, residual).data, expected)
    gradcheck(lambda m, t: F.attention_combine(m, t, residual), m, t)


def naive_channel_normalize(x, eps):
    """Each position's channel vector divided by its length (at least eps)."""
    out = np.zeros(x.shape)
    for n, i, j in np.ndindex(x.shape[0], *x.shape[2:]):
        v = x[n, :, i, j]
        out[n, :, i, j] = v / max(math.sqrt((v * v).sum()), eps)
    return out


def naive_spatial_normalize(x, eps):
    """Each channel's H x W map shifted to mean 0 and divided by its (biased) std."""
    out = np.zeros(x.shape)
    for n, c in np.ndindex(*x.shape[:2]):
        m = x[n, c]
        out[n, c] = (m - m.mean()) / math.sqrt(((m - m.mean()) ** 2).mean() + eps)
    return out


@given(st.integers(1, 2), st.integers(1, 4), st.integers(1, 3), st.integers(1, 4), seeds)
@example(2, 3, 2, 3, 0)
def test_channel_normalize_grad_and_reference(N, C, H, W, seed):
    x = randn((N, C, H, W), seed)
    y = F.channel_normalize(x).data
    np.testing.assert_allclose(y, naive_channel_normalize(x.data, 1e-12), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose((y ** 2).sum(axis=1), 1.0)
    gradcheck(F.channel_normalize, x)


@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(2, 4), seeds)
@example(2, 2, 3, 2, 0)
def test_spatial_normalize_grad_and_reference(N, C, H, W, seed):
    x = randn((N, C, H, W), seed, scale=2.0, shift=3.0)
    np.testing.assert_allclose(F.spatial_normalize(x).data, naive_spatial_normalize(x.data, 1e-5),
                               rtol=1e-10, atol=1e-12)
    y = F.spatial_normalize(x, eps=0.0).data
    np.testing.assert_allclose(y.mean(axis=(2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=(2, 3)), 1.0)
    gradcheck(F.spatial_normalize, x)


def test_channel_normalize_known_value():
    x = Tensor(np.array([3.0, 4.0]).reshape(1, 2, 1, 1))
    np.testing.assert_allclose(F.channel_normalize(x).data.ravel(), [0.6, 0.8])
    # Small but nonzero vectors still come out with norm 1 (hypothesis found x = 1.2e-3 came
    # out 7e-7 short when eps sat inside the square root); an all-zero position gives zeros.
    small = Tensor(np.array([-1.2e-3, 0.0, 0.0, 0.0]).reshape(2, 2, 1, 1), requires_grad=True)
    y = F.channel_normalize(small)
    np.testing.assert_array_equal(y.data.ravel(), [-1.0, 0.0, 0.0, 0.0])
    y.backward(Tensor(np.ones((2, 2, 1, 1))))
    assert np.isfinite(small.grad.data).all()
    np.testing.assert_allclose(small.grad.data.ravel()[2:], 1e12)  # clamped: y = x / eps
