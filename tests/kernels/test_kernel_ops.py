"""Every kernel against its NumPy twin, forward and backward, on hypothesis-drawn shapes.

Each test runs on every tier in TIERS (the emulator on the CPU; the GPU when there is one).
Shapes are drawn with rectangular kernels, unequal strides and paddings, non-square and
odd sizes, one-element edges, and totals that are not multiples of the block size (and
span several blocks). Max pooling, im2col/col2im, average pooling, ReLU and the attention
combine must agree exactly, bit for bit (a zero's sign included: tiers.assert_same_bits);
the rest to rounding.
"""
import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

import minran.functional as F
from minran import Tensor, backend
from minran.cuda import kernels
from minran.optim import SGD

from .tiers import DTYPES, TIERS, assert_same_bits, assert_twins_agree, normal, on, tolerance

seeds = st.integers(0, 2**16)
dtypes = st.sampled_from(DTYPES)


@st.composite
def windows(draw, pooling):
    """(x shape, kernel, stride, padding) of a valid 2-D window op."""
    N, C = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    limit = (kernel[0] // 2, kernel[1] // 2) if pooling else (2, 2)
    padding = (draw(st.integers(0, limit[0])), draw(st.integers(0, limit[1])))
    assume(kernel[0] <= H + 2 * padding[0] and kernel[1] <= W + 2 * padding[1])
    return (N, C, H, W), kernel, stride, padding


def with_ties(shape, seed, dtype, ties):
    """Small integers when `ties` (so windows hold equal maxima), else normal values; with
    ties="signed zeros", about half of the zeros are -0.0 (so windows hold 0.0 and -0.0 in
    either order, and ReLU sees both)."""
    if not ties:
        return normal(shape, seed, dtype)
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, shape).astype(dtype)
    if ties == "signed zeros":
        x[(x == 0) & (rng.random(shape) < 0.5)] = -0.0
    return x


def with_specials(x, seed):
    """x with a few NaNs and infinities in it (a window holding them must agree too)."""
    x = x.copy()
    flat = x.reshape(-1)
    where = np.random.default_rng(seed).choice(flat.size, size=min(3, flat.size), replace=False)
    flat[where] = [np.nan, -np.inf, np.inf][:len(where)]
    return x


# ---- convolution ---------------------------------------------------------------------------
@pytest.mark.parametrize("tier", TIERS)
@given(windows(pooling=False), st.sampled_from([False, "signed zeros"]), seeds, dtypes)
def test_im2col_and_col2im_exact(tier, window, ties, seed, dtype):
    shape, kernel, stride, padding = window
    x = with_ties(shape, seed, dtype, ties)
    with on("numpy"):
        cols = F.im2col(x, kernel, stride, padding)
        back = F.col2im(cols, shape, kernel, stride, padding)
    with on(tier) as put:
        got_cols = backend.to_numpy(F.im2col(put(x), kernel, stride, padding))
        got_back = backend.to_numpy(F.col2im(put(cols), shape, kernel, stride, padding))
    assert_same_bits(got_cols, cols, "im2col")
    assert_same_bits(got_back, back, "col2im")


@pytest.mark.parametrize("tier", TIERS)
@given(windows(pooling=False), st.integers(1, 3), st.booleans(), seeds, dtypes)
def test_conv2d(tier, window, out_channels, bias, seed, dtype):
    shape, kernel, stride, padding = window
    x = normal(shape, seed, dtype)
    w = normal((out_channels, shape[1]) + kernel, seed + 1, dtype)
    inputs = [x, w] + ([normal(out_channels, seed + 2, dtype)] if bias else [])
    assert_twins_agree(tier, lambda x, w, *b: F.conv2d(x, w, *b, stride=stride, padding=padding),
                       inputs, seed=seed)


# ---- pooling -------------------------------------------------------------------------------
@pytest.mark.parametrize("tier", TIERS)
@given(windows(pooling=True), st.sampled_from([False, True, "signed zeros"]), st.booleans(),
       seeds, dtypes)
def test_max_pool2d_exact(tier, window, ties, specials, seed, dtype):
    """Ties go to the first maximum in row order; NaN propagates and its window passes no
    gradient back; a window of -inf values still sends its gradient to the first of them; a
    window whose maximum is zero, held as 0.0 and -0.0, gives the zero np.maximum gives."""
    shape, kernel, stride, padding = window
    x = with_ties(shape, seed, dtype, ties)
    if specials:
        x = with_specials(x, seed)
    assert_twins_agree(tier, lambda x: F.max_pool2d(x, kernel, stride, padding), [x],
                       exact=True, seed=seed)


@pytest.mark.parametrize("tier", TIERS)
@given(windows(pooling=True), st.sampled_from([False, "signed zeros"]), seeds, dtypes)
def test_avg_pool2d_exact(tier, window, ties, seed, dtype):
    shape, kernel, stride, padding = window
    assert_twins_agree(tier, lambda x: F.avg_pool2d(x, kernel, stride, padding),
                       [with_ties(shape, seed, dtype, ties)], exact=True, seed=seed)


# ---- upsampling ----------------------------------------------------------------------------
@pytest.mark.parametrize("tier", TIERS)
@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9),
       st.integers(1, 12), st.integers(1, 12), st.booleans(), seeds, dtypes)
def test_upsample_bilinear(tier, N, C, H, W, Ho, Wo, align_corners, seed, dtype):
    """Up and down, odd sizes, one-pixel inputs and outputs, both corner conventions."""
    assert_twins_agree(tier, lambda x: F.upsample_bilinear(x, (Ho, Wo), align_corners),
                       [normal((N, C, H, W), seed, dtype)], seed=seed)


# ---- batch norm ----------------------------------------------------------------------------
@pytest.mark.parametrize("tier", TIERS)
@given(st.integers(2, 4), st.integers(1, 5), st.sampled_from([(), (1, 1), (3, 5), (6, 7)]),
       st.booleans(), st.booleans(), seeds, dtypes)
def test_batch_norm(tier, N, C, spatial, training, relu, seed, dtype):
    shape = (N, C) + spatial
    x = normal(shape, seed, dtype) * 3 + 1
    w, b = normal(C, seed + 1, dtype), normal(C, seed + 2, dtype)
    stats = {}
    for where in (tier, "numpy"):
        rm, rv = np.linspace(-1, 1, C).astype(dtype), np.linspace(0.5, 2, C).astype(dtype)
        with on(where) as put:
            stats[where] = (put(rm), put(rv))
    running = {}

    def op(x, w, b):
        where = "numpy" if kernels.mode() == "off" else tier
        rm, rv = stats[where]
        running[where] = (rm, rv)
        return F.batch_norm(x, w, b, rm, rv, training, relu=relu)
    assert_twins_agree(tier, op, [x, w, b], seed=seed)
    for got, want in zip(running[tier], running["numpy"]):   # updated in place in training
        np.testing.assert_allclose(backend.to_numpy(got), want, **tolerance(dtype))


# ---- activations and the attention module's ops --------------------------------------------
shapes = st.lists(st.integers(1, 7), min_size=1, max_size=4).map(tuple)
maps = st.tuples(st.integers(1, 3), st.integers(1, 5), st.integers(1, 9), st.integers(1, 9))


@pytest.mark.parametrize("tier", TIERS)
@given(shapes, st.sampled_from([True, "signed zeros"]), seeds, dtypes)
def test_relu_exact(tier, shape, ties, seed, dtype):
    assert_twins_agree(tier, F.relu, [with_ties(shape, seed, dtype, ties)], exact=True, seed=seed)


@pytest.mark.parametrize("tier", TIERS)
@given(shapes, seeds, dtypes)
def test_sigmoid(tier, shape, seed, dtype):
    x = normal(shape, seed, dtype) * 20   # far into both tails
    assert_twins_agree(tier, F.sigmoid, [x], seed=seed)


@pytest.mark.parametrize("tier", TIERS)
@given(shapes, st.booleans(), st.sampled_from([False, "signed zeros"]), seeds, dtypes)
def test_attention_combine_exact(tier, shape, residual, ties, seed, dtype):
    m, t = with_ties(shape, seed, dtype, ties), with_ties(shape, seed + 1, dtype, ties)
    if ties:
        m[np.abs(m) == 1] = -1.0   # (1 + m) * t: zero times a signed t
    assert_twins_agree(tier, lambda m, t: F.attention_combine(m, t, residual), [m, t],
                       exact=True, seed=seed)


@pytest.mark.parametrize("tier", TIERS)
@given(maps, st.booleans(), seeds, dtypes)
def test_channel_normalize(tier, shape, zero_positions, seed, dtype):
    x = normal(shape, seed, dtype)
    if zero_positions:   # where the norm is clamped at eps
        x[..., 0, :] = 0
    assert_twins_agree(tier, F.channel_normalize, [x], seed=seed)


@pytest.mark.parametrize("tier", TIERS)
@given(maps, seeds, dtypes)
@example((1, 3, 3, 1), 100, np.float32)   # ill-conditioned: the twins differ by 7% (tiers.py)
def test_spatial_normalize(tier, shape, seed, dtype):
    assume(shape[2] * shape[3] > 1)   # a one-pixel map has no spread to normalise by
    x = normal(shape, seed, dtype) * 2 + 3
    assert_twins_agree(tier, F.spatial_normalize, [x], seed=seed)


@pytest.mark.parametrize("tier", TIERS)
@given(st.integers(1, 40), st.integers(1, 12), seeds, dtypes, st.booleans())
def test_cross_entropy(tier, N, K, seed, dtype, last_far_ahead):
    labels = np.random.default_rng(seed).integers(0, K, N)
    logits = normal((N, K), seed, dtype) * 10
    if last_far_ahead:  # exp overflows (float32 and float64) unless every logit's max is shifted out
        logits[:, -1] += 1000
    assert_twins_agree(tier, lambda z: F.cross_entropy(z, labels), [logits], seed=seed)


# ---- the optimiser -------------------------------------------------------------------------
@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("flat", [True, False])   # one launch over the flat buffer, or per array
@given(st.integers(1, 700), st.sampled_from([(0.0, False), (0.9, False), (0.9, True)]),
       st.sampled_from([0.0, 1e-4, 0.1]), seeds, dtypes)
def test_sgd_update(tier, flat, size, momentum_nesterov, weight_decay, seed, dtype):
    momentum, nesterov = momentum_nesterov
    results = {}
    for where in (tier, "numpy"):
        with on(where) as put:
            p = Tensor(put(normal(size, seed, dtype)), requires_grad=True)
            opt = SGD([p], lr=0.05, momentum=momentum, nesterov=nesterov,
                      weight_decay=weight_decay, flat=flat)
            assert (opt.flat is not None) == flat
            for step in range(3):   # the first step starts the momentum buffer
                p.grad = Tensor(put(normal(size, seed + step + 1, dtype)))
                opt.step()
            results[where] = (backend.to_numpy(p.data),
                              [backend.to_numpy(b) for b in opt.buffers if b is not None])
    np.testing.assert_allclose(results[tier][0], results["numpy"][0], **tolerance(dtype))
    assert len(results[tier][1]) == len(results["numpy"][1]) == (1 if momentum else 0)
    for got, want in zip(results[tier][1], results["numpy"][1]):
        np.testing.assert_allclose(got, want, **tolerance(dtype))


# ---- the switch ----------------------------------------------------------------------------
@pytest.mark.emulated
def test_the_switch_decides_which_twin_runs(monkeypatch):
    """'off' never launches; 'emulate' launches on NumPy arrays; 'auto' only on GPU arrays."""
    launched = []
    monkeypatch.setattr(kernels.Source, "launch",
                        lambda self, name, *a, **k: launched.append(name))
    x = Tensor(np.ones((1, 1, 4, 4), np.float32))
    for mode, expected in (("off", []), ("auto", []), ("emulate", ["max_pool2d_forward"])):
        launched.clear()
        with kernels.use(mode):
            F.max_pool2d(x, 2)   # (the stubbed launch leaves the output unwritten)
        assert launched == expected, mode


def test_gpu_arrays_take_the_kernel_path_unless_switched_off(monkeypatch):
    """What `train_cifar.py --device gpu` relies on: on device arrays every op launches its
    kernel by default (MINRAN_KERNELS=off or kernels.use('off') for the plain CuPy path)."""
    x = np.ones(3, np.float32)
    monkeypatch.setattr(backend, "device_of", lambda array: "gpu")
    assert kernels.mode() == "auto"
    assert kernels.active(x)
    with kernels.use("off"):
        assert not kernels.active(x)
    monkeypatch.setattr(backend, "device_of", lambda array: "cpu")
    assert not kernels.active(x)
    with kernels.use("emulate"):
        assert kernels.active(x)
    with pytest.raises(ValueError, match="mode must be one of"):
        with kernels.use("on"):
            pass


def test_arrays_with_cupys_flags_are_accepted():
    """CuPy's ndarray.flags has c_contiguous but no `writeable`: the argument check must not
    ask for it (this path cannot run without a GPU otherwise)."""
    class CupyLikeFlags:
        c_contiguous, f_contiguous, owndata = True, False, True
    array = np.zeros(4, np.float32)

    class CupyLikeArray:
        dtype, shape, strides, flags = array.dtype, array.shape, array.strides, CupyLikeFlags()
    param = kernels.Param("T*", "out")
    stub = CupyLikeArray()
    assert kernels._argument("k<float>", 0, param, stub, "float", "cpu") is stub


@pytest.mark.parametrize("tier", TIERS)
def test_batch_norm_statistics_survive_a_large_mean_in_float32(tier):
    """Values near 100 that differ by about 0.1: E[x^2] - E[x]^2 subtracts two numbers near
    10^4 whose float32 rounding is about 10^-3, as large as the variance itself; the kernel's
    two passes (the mean, then squares about it) keep the variance to 1e-3."""
    x = (100 + 0.1 * np.random.default_rng(0).standard_normal((64, 2, 8, 8))).astype(np.float32)
    truth = x.astype(np.float64).var(axis=(0, 2, 3))
    squares = (x * x).mean(axis=(0, 2, 3), dtype=np.float32)
    naive = squares - x.mean(axis=(0, 2, 3), dtype=np.float32) ** 2
    assert np.abs(naive / truth - 1).max() > 1e-2   # the formula the kernel must not use
    rv = np.zeros(2, np.float32)
    with on(tier) as put:
        running = put(rv)
        F.batch_norm(Tensor(put(x)), None, None, put(np.zeros(2, np.float32)), running, True,
                     momentum=1.0)
        unbiased = backend.to_numpy(running)
    n = x.size // 2
    np.testing.assert_allclose(unbiased * (n - 1) / n, truth, rtol=1e-3)


@pytest.mark.emulated
def test_an_ill_conditioned_draw_still_catches_a_kernel_that_is_off():
    """tiers.assert_twins_agree lets float32 twins differ where the draw is ill-conditioned,
    as long as the kernel is as close to the float64 answer as NumPy; a kernel 0.1% off
    everywhere is still caught on exactly that draw."""
    x = normal((1, 3, 3, 1), 100, np.float32) * 2 + 3   # test_spatial_normalize's example
    assert_twins_agree("emulated", F.spatial_normalize, [x], seed=100)

    def off(t):
        y = F.spatial_normalize(t)
        return y * Tensor(np.asarray(1.001 if kernels.active(t.data) else 1.0, dtype=t.dtype))
    with pytest.raises(AssertionError, match="from the float64 answer"):
        assert_twins_agree("emulated", off, [x], seed=100)


def test_exact_means_the_same_bits():
    """The exact comparison tells 0.0 from -0.0 (np.testing.assert_array_equal does not) and a
    NaN from a number, and lets NaNs of any payload or sign meet."""
    zeros, signed = np.array([0.0, 1.0], np.float32), np.array([-0.0, 1.0], np.float32)
    np.testing.assert_array_equal(zeros, signed)   # the blind spot
    with pytest.raises(AssertionError, match=r"(?s)1 of 2 elements differ.*at \(0,\).*-0\.0"):
        assert_same_bits(zeros, signed)
    quiet, other = np.float64(np.nan), np.array([0x7FF0000000000001], np.uint64).view(np.float64)
    assert_same_bits(np.array([quiet, 2.0]), np.array([-other[0], 2.0]))
    with pytest.raises(AssertionError, match="differ in their bits"):
        assert_same_bits(np.array([np.nan]), np.array([0.0]))
    with pytest.raises(AssertionError, match="differ in their bits"):
        assert_same_bits(np.array([3], np.int32), np.array([4], np.int32))


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_zero_keeps_the_sign_numpy_gives_it(tier, dtype):
    """Windows holding 0.0 then -0.0, and -0.0 then 0.0: of equal values max pooling keeps the
    later, as np.maximum(best, value) does; ReLU makes -0.0 into 0.0, and its gradient where
    x <= 0 is g times 0, -0.0 for a negative g. Both twins, bit for bit."""
    x = np.array([0.0, -0.0, -0.0, 0.0, -0.0, -0.0], dtype).reshape(1, 1, 6, 1)
    pool = lambda t: F.max_pool2d(t, (2, 1))   # noqa: E731
    assert_twins_agree(tier, pool, [x], exact=True)
    assert_twins_agree(tier, F.relu, [x.reshape(-1)], exact=True)
    with on(tier) as put:
        pooled = backend.to_numpy(pool(Tensor(put(x))).data).reshape(-1)
        t = Tensor(put(x.reshape(-1)), requires_grad=True)
        y = F.relu(t)
        y.backward(put(-np.ones(6, dtype)))
        relu, grad = backend.to_numpy(y.data), backend.to_numpy(t.grad.data)
    np.testing.assert_array_equal(np.signbit(pooled), [True, False, True])
    assert not np.signbit(relu).any() and np.signbit(grad).all()
