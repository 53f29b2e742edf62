"""The kernels' block-strided loops, each run more than once: sizes drawn so that every loop
`for (k = threadIdx.x; k < count; k += MINRAN_BLOCK)` goes round at least twice (the other
tests' maps fit in one block, so those loops ran once and a bug in the stride could pass).

    normalization.cu  batch_norm_statistics (two loops) and batch_norm_backward_sums loop
                      over the N * H * W values of a channel;
    attention.cu      spatial_normalize_forward (three loops) and _backward (two) loop over
                      the H * W pixels of a map.
Every other loop in the kernels runs over a kernel window, a channel count or a class count,
which test_kernel_ops.py already draws above one."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minran.functional as F
from minran import backend
from minran.cuda import kernels

from .tiers import DTYPES, TIERS, assert_twins_agree, normal, on, tolerance

seeds = st.integers(0, 2**16)
dtypes = st.sampled_from(DTYPES)


@pytest.mark.parametrize("tier", TIERS)
@settings(max_examples=10)
@given(st.integers(1, 2), st.integers(1, 2), st.integers(16, 33), st.integers(17, 33), seeds,
       dtypes)
def test_spatial_normalize_over_maps_larger_than_a_block(tier, N, C, H, W, seed, dtype):
    assert H * W > kernels.BLOCK   # each thread of the map's block visits two to five pixels
    x = normal((N, C, H, W), seed, dtype) * 2 + 3
    assert_twins_agree(tier, F.spatial_normalize, [x], seed=seed)


def assert_batch_norm_twins_agree(tier, shape, training, relu, seed, dtype):
    """Output, gradients and (in training) the running statistics, kernel against NumPy."""
    C = shape[1]
    x = normal(shape, seed, dtype) * 3 + 1
    w, b = normal(C, seed + 1, dtype), normal(C, seed + 2, dtype)
    running = {}

    def op(x, w, b):
        where = "numpy" if kernels.mode() == "off" else tier
        with on(where) as put:
            rm, rv = put(np.linspace(-1, 1, C).astype(dtype)), put(np.linspace(0.5, 2, C).astype(dtype))
        running[where] = (rm, rv)
        return F.batch_norm(x, w, b, rm, rv, training, relu=relu)
    assert_twins_agree(tier, op, [x, w, b], seed=seed)
    for got, want in zip(running[tier], running["numpy"]):   # updated in place in training
        np.testing.assert_allclose(backend.to_numpy(got), want, **tolerance(dtype))


@pytest.mark.parametrize("tier", TIERS)
@settings(max_examples=10)
@given(st.integers(2, 3), st.integers(1, 3), st.integers(12, 18), st.integers(11, 18),
       st.booleans(), st.booleans(), seeds, dtypes)
def test_batch_norm_over_channels_larger_than_a_block(tier, N, C, H, W, training, relu, seed,
                                                      dtype):
    assert N * H * W > kernels.BLOCK   # the per-channel sums go round two to four times
    assert_batch_norm_twins_agree(tier, (N, C, H, W), training, relu, seed, dtype)


@pytest.mark.parametrize("tier", TIERS)
@settings(max_examples=5)
@given(st.integers(kernels.BLOCK + 1, 3 * kernels.BLOCK), st.integers(1, 3), st.booleans(),
       seeds, dtypes)
def test_batch_norm_of_features_over_a_batch_larger_than_a_block(tier, N, C, training, seed,
                                                                 dtype):
    """(N, C) input, as before the classifier: the channel's count is N itself."""
    assert_batch_norm_twins_agree(tier, (N, C), training, False, seed, dtype)
