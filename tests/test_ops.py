"""Every op: a hypothesis-drawn float64 gradient check, and known values for the forward."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import minran.functional as F
from minran import Tensor, gradcheck

from .helpers import randn

seeds = st.integers(0, 2**16)


# ---- elementwise and shape ops -------------------------------------------------------------
@given(mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3), seeds,
       st.sampled_from(["add", "sub", "mul", "div"]))
def test_binary_broadcasting_grad(shapes, seed, op):
    a, b = randn(shapes.input_shapes[0], seed), randn(shapes.input_shapes[1], seed + 1)
    if op == "div":
        b = Tensor(np.abs(b.data) + 0.5, requires_grad=True)  # keep away from 0
    fn = getattr(F, op)
    assert fn(a, b).shape == shapes.result_shape
    gradcheck(fn, a, b)


@given(st.lists(st.integers(1, 3), min_size=1, max_size=3), seeds,
       st.sampled_from(["neg", "exp", "log", "sqrt", "relu", "sigmoid"]))
def test_unary_grad(shape, seed, op):
    x = randn(shape, seed)
    if op in ("log", "sqrt"):
        x = Tensor(np.abs(x.data) + 0.5, requires_grad=True)
    if op == "relu":  # finite differences are undefined at the kink
        x = Tensor(np.where(np.abs(x.data) < 0.01, 0.5, x.data), requires_grad=True)
    gradcheck(getattr(F, op), x)


@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), seeds, st.data())
def test_reductions_grad(shape, seed, data):
    x = randn(shape, seed)
    axis = data.draw(st.one_of(st.none(), st.integers(0, len(shape) - 1),
                               st.lists(st.integers(0, len(shape) - 1), min_size=1,
                                        max_size=len(shape), unique=True).map(tuple)))
    keepdims = data.draw(st.booleans())
    gradcheck(lambda x: F.sum(x, axis, keepdims), x)
    gradcheck(lambda x: F.mean(x, axis, keepdims), x)
    np.testing.assert_allclose(F.mean(x, axis, keepdims).data, x.data.mean(axis=axis, keepdims=keepdims))


@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), seeds, st.data())
def test_reshape_transpose_grad(shape, seed, data):
    x = randn(shape, seed)
    axes = tuple(data.draw(st.permutations(range(len(shape)))))
    gradcheck(lambda x: F.transpose(x, axes) * Tensor(np.arange(x.size).reshape(
        np.array(x.shape)[list(axes)]) * 1.0), x)
    gradcheck(lambda x: F.reshape(x, (-1,)), x)
    assert F.transpose(x, axes).shape == tuple(np.array(shape)[list(axes)])


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.integers(0, 2), seeds)
def test_matmul_grad(n, k, m, batch, seed):
    a = randn(((batch,) if batch else ()) + (n, k), seed)
    b = randn((k, m), seed + 1)
    gradcheck(F.matmul, a, b)
    np.testing.assert_allclose((a @ b).data, a.data @ b.data)


# ---- convolution ---------------------------------------------------------------------------
def naive_conv2d(x, w, b, stride, padding):
    """The definition, one output element at a time: an independent reference."""
    N, C, H, W = x.shape
    Co, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    Ho, Wo = (H + 2 * padding - kh) // stride + 1, (W + 2 * padding - kw) // stride + 1
    out = np.zeros((N, Co, Ho, Wo))
    for n in range(N):
        for o in range(Co):
            for i in range(Ho):
                for j in range(Wo):
                    patch = xp[n, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
                    out[n, o, i, j] = (patch * w[o]).sum() + (b[o] if b is not None else 0)
    return out


@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 6),
       st.integers(1, 6), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
       st.integers(0, 2), st.booleans(), seeds)
def test_conv2d_grad_and_reference(N, Cin, Cout, H, W, kh, kw, stride, padding, bias, seed):
    assume(kh <= H + 2 * padding and kw <= W + 2 * padding)
    x, w = randn((N, Cin, H, W), seed), randn((Cout, Cin, kh, kw), seed + 1)
    b = randn((Cout,), seed + 2) if bias else None
    out = F.conv2d(x, w, b, stride, padding)
    if kh == kw:
        np.testing.assert_allclose(out.data, naive_conv2d(x.data, w.data, None if b is None else b.data, stride, padding),
                                   rtol=1e-12, atol=1e-12)
    gradcheck(lambda x, w, *b: F.conv2d(x, w, b[0] if b else None, stride, padding),
              x, w, *([b] if bias else []))


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


@given(st.integers(1, 5), st.integers(1, 5), st.integers(1, 3), st.integers(1, 2),
       st.integers(0, 1), seeds)
def test_col2im_is_the_adjoint_of_im2col(H, W, k, stride, padding, seed):
    assume(k <= H + 2 * padding and k <= W + 2 * padding)
    r = np.random.default_rng(seed)
    x = r.standard_normal((2, 3, H, W))
    cols = F.im2col(x, (k, k), (stride, stride), (padding, padding))
    c = r.standard_normal(cols.shape)
    back = F.col2im(c, x.shape, (k, k), (stride, stride), (padding, padding))
    assert np.isclose((cols * c).sum(), (x * back).sum())


# ---- pooling -------------------------------------------------------------------------------
pool_args = (st.integers(1, 2), st.integers(1, 3), st.integers(1, 7), st.integers(1, 7),
             st.integers(1, 3), st.one_of(st.none(), st.integers(1, 3)), st.integers(0, 1), seeds)


@given(*pool_args)
def test_max_pool2d_grad(N, C, H, W, k, stride, padding, seed):
    assume(padding <= k // 2 and k <= H + 2 * padding and k <= W + 2 * padding)
    x = randn((N, C, H, W), seed)
    out = F.max_pool2d(x, k, stride, padding)
    s = stride or k
    assert out.shape == (N, C, (H + 2 * padding - k) // s + 1, (W + 2 * padding - k) // s + 1)
    gradcheck(lambda x: F.max_pool2d(x, k, stride, padding), x)


@given(*pool_args)
def test_avg_pool2d_grad(N, C, H, W, k, stride, padding, seed):
    assume(padding <= k // 2 and k <= H + 2 * padding and k <= W + 2 * padding)
    gradcheck(lambda x: F.avg_pool2d(x, k, stride, padding), randn((N, C, H, W), seed))


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
    shape = (N, C) if HW == 0 else (N, C, HW, HW)
    x = randn(shape, seed, scale=2.0, shift=1.0)
    rm, rv = np.random.default_rng(seed).standard_normal(C), np.abs(np.random.default_rng(seed).standard_normal(C)) + 0.5
    w, b = (randn((C,), seed + 1), randn((C,), seed + 2)) if affine else (None, None)
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
@given(st.integers(1, 2), st.integers(1, 2), st.integers(1, 5), st.integers(1, 5),
       st.integers(1, 9), st.integers(1, 9), st.booleans(), seeds)
def test_upsample_bilinear_grad(N, C, H, W, Ho, Wo, align_corners, seed):
    gradcheck(lambda x: F.upsample_bilinear(x, (Ho, Wo), align_corners), randn((N, C, H, W), seed))


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


# ---- the attention module's own ops --------------------------------------------------------
@given(st.lists(st.integers(1, 3), min_size=4, max_size=4), st.booleans(), seeds)
def test_attention_combine_grad(shape, residual, seed):
    m, t = randn(shape, seed), randn(shape, seed + 1)
    expected = (1 + m.data) * t.data if residual else m.data * t.data
    np.testing.assert_allclose(F.attention_combine(m, t, residual).data, expected)
    gradcheck(lambda m, t: F.attention_combine(m, t, residual), m, t)


@given(st.integers(1, 2), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), seeds)
def test_channel_normalize_grad(N, C, H, W, seed):
    x = randn((N, C, H, W), seed)
    y = F.channel_normalize(x).data
    np.testing.assert_allclose((y ** 2).sum(axis=1), 1.0)
    gradcheck(F.channel_normalize, x)


@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(2, 4), seeds)
def test_spatial_normalize_grad(N, C, H, W, seed):
    x = randn((N, C, H, W), seed, scale=2.0, shift=3.0)
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
