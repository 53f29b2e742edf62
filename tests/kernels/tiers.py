"""Running an op on a tier's kernels, or on plain NumPy, and getting NumPy arrays back."""
import contextlib

import numpy as np
import pytest

from minran import Tensor, backend
from minran.cuda import kernels

TIERS = [pytest.param("emulated", marks=pytest.mark.emulated, id="emulated"),
         pytest.param("gpu", marks=pytest.mark.gpu, id="gpu")]
DTYPES = [np.float32, np.float64]


@contextlib.contextmanager
def on(tier):
    """Kernels on `tier` ('emulated', 'gpu'), or 'numpy' for the plain path; yields a function
    that puts a NumPy array where that tier computes."""
    if tier == "numpy":
        with kernels.use("off"):
            yield lambda a: a
    elif tier == "emulated":
        with kernels.use("emulate"):
            yield lambda a: a
    else:
        with kernels.use("auto"):
            yield backend.cupy.asarray


def forward_backward(tier, fn, inputs, seed=0):
    """fn(*inputs) and the gradient of <v, fn> for every input (v drawn from `seed`), on
    `tier`, as NumPy arrays: [output, grad of input 0, ...]."""
    with on(tier) as put:
        tensors = [Tensor(put(a), requires_grad=True) for a in inputs]
        out = fn(*tensors)
        v = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
        out.backward(put(v))
        return [backend.to_numpy(out.data)] + [backend.to_numpy(t.grad.data) for t in tensors]


def tolerance(dtype):
    """Kernels and NumPy add in different orders (and the GPU may fuse multiply-adds)."""
    return dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


def assert_twins_agree(tier, fn, inputs, exact=False, seed=0):
    got = forward_backward(tier, fn, inputs, seed)
    want = forward_backward("numpy", fn, inputs, seed)
    names = ["output"] + [f"gradient of input {i}" for i in range(len(inputs))]
    for name, g, w in zip(names, got, want):
        assert g.dtype == w.dtype and g.shape == w.shape, name
        if exact:
            np.testing.assert_array_equal(g, w, err_msg=f"{name} on {tier}")
        else:
            np.testing.assert_allclose(g, w, err_msg=f"{name} on {tier}", **tolerance(g.dtype))
