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


def forward_backward(tier, fn, inputs, seed=0, v_dtype=None):
    """fn(*inputs) and the gradient of <v, fn> for every input (v drawn from `seed`, rounded
    to `v_dtype` when given), on `tier`, as NumPy arrays: [output, grad of input 0, ...]."""
    with on(tier) as put:
        tensors = [Tensor(put(a), requires_grad=True) for a in inputs]
        out = fn(*tensors)
        v = np.random.default_rng(seed).standard_normal(out.shape).astype(v_dtype or out.dtype)
        out.backward(put(v.astype(out.dtype)))
        return [backend.to_numpy(out.data)] + [backend.to_numpy(t.grad.data) for t in tensors]


def normal(shape, seed, dtype):
    """Standard normal values of `dtype`, the same for the same seed in every tier."""
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def tolerance(dtype):
    """Kernels and NumPy add in different orders (and the GPU may fuse multiply-adds)."""
    return dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


# How much further from the float64 answer than its NumPy twin a float32 kernel may land, on
# a draw where the two twins differ by more than tolerance() allows.
AS_ACCURATE_WITHIN = 4


def assert_same_bits(got, want, err_msg=""):
    """Exact agreement, judged by the bits: 0.0 and -0.0 differ (np.testing.assert_array_equal
    takes them as equal, and a kernel that gets the sign of a zero wrong would pass it); a NaN
    must meet a NaN, whose payload and sign may differ (no two compilers promise those)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (
        f"{err_msg}: {got.dtype} {got.shape} against {want.dtype} {want.shape}")
    if got.dtype.kind == "f":
        bits = np.dtype(f"u{got.itemsize}")
        differ = (got.view(bits) != want.view(bits)) & ~(np.isnan(got) & np.isnan(want))
    else:
        differ = got != want
    if differ.any():
        shown = [f"  at {tuple(int(i) for i in where)}: {got[tuple(where)]!r} against "
                 f"{want[tuple(where)]!r}" for where in np.argwhere(differ)[:5]]
        raise AssertionError(f"{err_msg}: {int(differ.sum())} of {got.size} elements differ in "
                             f"their bits (got against wanted)\n" + "\n".join(shown))


def assert_twins_agree(tier, fn, inputs, exact=False, seed=0):
    got = forward_backward(tier, fn, inputs, seed)
    want = forward_backward("numpy", fn, inputs, seed)
    truth = None
    names = ["output"] + [f"gradient of input {i}" for i in range(len(inputs))]
    for i, (name, g, w) in enumerate(zip(names, got, want)):
        assert g.dtype == w.dtype and g.shape == w.shape, name
        if exact:
            assert_same_bits(g, w, err_msg=f"{name} on {tier}")
        elif g.dtype == np.float32 and not np.allclose(g, w, **tolerance(g.dtype)):
            # Some draws are ill-conditioned: a map whose spread is tiny beside its mean (one
            # drawn channel's three values were 4.403, 4.410, 4.490), a sum that cancels.
            # float32 rounding then moves *both* twins by more than a fixed tolerance (there,
            # 4% each, in opposite directions). On such a draw the kernel must be about as
            # close to the float64 answer, on the same float32 inputs and v, as NumPy is.
            if truth is None:
                truth = forward_backward("numpy", fn, [a.astype(np.float64) for a in inputs],
                                         seed, v_dtype=np.float32)
            kernel_error = np.abs(g - truth[i]).max()
            numpy_error = np.abs(w - truth[i]).max()
            assert kernel_error <= AS_ACCURATE_WITHIN * numpy_error, (
                f"{name} on {tier}: the kernel is {kernel_error:.3g} from the float64 answer, "
                f"its NumPy twin {numpy_error:.3g}; they differ by {np.abs(g - w).max():.3g}")
        else:
            np.testing.assert_allclose(g, w, err_msg=f"{name} on {tier}", **tolerance(g.dtype))
