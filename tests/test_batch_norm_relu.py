"""The fused batch-norm + ReLU op (the pre-activation units' bn-relu) on the plain NumPy
path: the same values and gradients as relu(batch_norm(x)), a float64 gradient check, and a
value worked by hand."""
import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

import minran.functional as F
from minran import Tensor, gradcheck
from minran.nn import BatchNorm2d

from .helpers import randn

seeds = st.integers(0, 2**16)


@given(st.integers(2, 4), st.integers(1, 4), st.sampled_from([(), (1, 1), (3, 2)]),
       st.booleans(), seeds)
def test_fused_equals_relu_of_batch_norm(N, C, spatial, training, seed):
    x = randn((N, C) + spatial, seed, scale=2.0)
    w, b = randn((C,), seed + 1), randn((C,), seed + 2)
    results = []
    for fused in (True, False):
        for t in (x, w, b):
            t.grad = None
        rm, rv = np.zeros(C), np.ones(C)
        out = F.batch_norm(x, w, b, rm, rv, training, relu=True) if fused else \
            F.relu(F.batch_norm(x, w, b, rm, rv, training))
        out.backward(np.random.default_rng(seed).standard_normal(out.shape))
        results.append([out.data, x.grad.data, w.grad.data, b.grad.data, rm, rv])
    for fused, plain in zip(*results):
        np.testing.assert_array_equal(fused, plain)


@given(st.integers(2, 3), st.integers(1, 3), st.sampled_from([(), (2, 3)]), st.booleans(),
       seeds)
def test_fused_gradcheck(N, C, spatial, training, seed):
    x = randn((N, C) + spatial, seed, scale=2.0, shift=1.0)
    w, b = randn((C,), seed + 1), randn((C,), seed + 2)
    rm, rv = np.full(C, 0.5), np.full(C, 2.0)
    assume(np.abs(F.batch_norm(x, w, b, rm.copy(), rv.copy(), training).data).min() > 1e-3)
    gradcheck(lambda x, w, b: F.batch_norm(x, w, b, rm.copy(), rv.copy(), training, relu=True),
              x, w, b)


def test_fused_known_values():
    # One channel, values 1, 3, 5, 7: mean 4, biased variance 5, so with weight 2 and bias
    # -1 the normalised values are 2 * (-3, -1, 1, 3) / sqrt(5) - 1 and the ReLU keeps only
    # the last two: 2/sqrt(5) - 1 = -0.106 -> 0, and 6/sqrt(5) - 1 = 1.683.
    x = Tensor(np.array([[1.0], [3.0], [5.0], [7.0]]), requires_grad=True)
    out = F.batch_norm(x, Tensor(np.array([2.0])), Tensor(np.array([-1.0])), None, None, True,
                       eps=0.0, relu=True)
    np.testing.assert_allclose(out.data[:, 0], [0, 0, 0, 6 / np.sqrt(5) - 1])
    assert out._op == "batch_norm_relu"


def test_the_layer_fuses_on_request():
    bn = BatchNorm2d(3).to(dtype=np.float64)
    x = randn((4, 3, 2, 2), 0)
    fused, plain = bn(x, relu=True), F.relu(bn(x))
    np.testing.assert_array_equal(fused.data, plain.data)
    assert fused._op == "batch_norm_relu" and bn(x)._op == "batch_norm"
    assert (fused.data == 0).any() and (fused.data >= 0).all()
