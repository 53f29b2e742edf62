"""Every op's float64 finite-difference gradient check, run through its CUDA kernels on the
CPU emulator: the backward kernels against the forward kernels themselves, with no NumPy
twin involved."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minran.functional as F
from minran import Tensor, gradcheck
from minran.cuda import kernels

from ..helpers import randn

pytestmark = pytest.mark.emulated
seeds = st.integers(0, 2**16)
small_maps = st.tuples(st.integers(1, 2), st.integers(1, 2), st.integers(1, 4), st.integers(1, 5))


def check(fn, *inputs):
    with kernels.use("emulate"):
        assert gradcheck(fn, *inputs)


def distinct(shape, seed):
    """Values 0.1 apart, shuffled: no ties, so max pooling is differentiable everywhere."""
    values = np.random.default_rng(seed).permutation(int(np.prod(shape))) * 0.1
    return Tensor(values.reshape(shape).astype(np.float64), requires_grad=True)


@given(small_maps, st.integers(1, 2), st.tuples(st.integers(1, 3), st.integers(1, 3)),
       st.tuples(st.integers(1, 2), st.integers(1, 3)), st.tuples(st.integers(0, 1), st.integers(0, 2)),
       seeds)
def test_conv2d(shape, out_channels, kernel, stride, padding, seed):
    assume(kernel[0] <= shape[2] + 2 * padding[0] and kernel[1] <= shape[3] + 2 * padding[1])
    x, w = randn(shape, seed), randn((out_channels, shape[1]) + kernel, seed + 1)
    check(lambda x, w: F.conv2d(x, w, stride=stride, padding=padding), x, w)


@given(small_maps, st.tuples(st.integers(1, 3), st.integers(1, 3)),
       st.tuples(st.integers(1, 2), st.integers(1, 3)), st.booleans(), seeds)
def test_pooling(shape, kernel, stride, pad, seed):
    padding = (kernel[0] // 2, kernel[1] // 2) if pad else (0, 0)
    assume(kernel[0] <= shape[2] + 2 * padding[0] and kernel[1] <= shape[3] + 2 * padding[1])
    check(lambda x: F.max_pool2d(x, kernel, stride, padding), distinct(shape, seed))
    check(lambda x: F.avg_pool2d(x, kernel, stride, padding), randn(shape, seed))


@given(small_maps, st.integers(1, 6), st.integers(1, 6), st.booleans(), seeds)
def test_upsample_bilinear(shape, Ho, Wo, align_corners, seed):
    check(lambda x: F.upsample_bilinear(x, (Ho, Wo), align_corners), randn(shape, seed))


@given(st.integers(2, 3), st.integers(1, 3), st.sampled_from([(), (2, 3)]), st.booleans(),
       st.booleans(), seeds)
def test_batch_norm(N, C, spatial, training, relu, seed):
    x = randn((N, C) + spatial, seed, scale=2.0, shift=1.0)
    w, b = randn((C,), seed + 1), randn((C,), seed + 2)
    rm = np.random.default_rng(seed).standard_normal(C)
    rv = np.abs(np.random.default_rng(seed + 1).standard_normal(C)) + 0.5
    if relu:   # finite differences need every value away from the ReLU's kink
        y = F.batch_norm(x, w, b, rm.copy(), rv.copy(), training)
        assume(np.abs(y.data).min() > 1e-3)
    check(lambda x, w, b: F.batch_norm(x, w, b, rm.copy(), rv.copy(), training, relu=relu),
          x, w, b)


@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), seeds)
def test_pointwise(shape, seed):
    x = randn(shape, seed)
    x = Tensor(np.where(np.abs(x.data) < 0.01, 0.5, x.data), requires_grad=True)  # no kink
    check(F.relu, x)
    check(F.sigmoid, randn(shape, seed, scale=3.0))


@given(small_maps, st.booleans(), seeds)
def test_attention_ops(shape, residual, seed):
    check(lambda m, t: F.attention_combine(m, t, residual), randn(shape, seed),
          randn(shape, seed + 1))
    check(F.channel_normalize, randn(shape, seed, shift=0.5))
    assume(shape[2] * shape[3] > 1)
    check(F.spatial_normalize, randn(shape, seed, scale=2.0))


@given(st.integers(1, 6), st.integers(2, 5), seeds)
def test_cross_entropy(N, K, seed):
    labels = np.random.default_rng(seed).integers(0, K, N)
    check(lambda z: F.cross_entropy(z, labels), randn((N, K), seed, scale=3.0))
