"""Checking a hand-written backward against central finite differences, in float64.

For a random cotangent v, the analytic gradient of <v, f(x)> must match
(<v, f(x + eps e_i)> - <v, f(x - eps e_i)>) / (2 eps) for every element i of every input.
A random v (not all ones) keeps errors from cancelling when outputs are summed.
"""
import numpy as np

from .tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    pass


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-5, rtol=1e-4, seed=0):
    """Raise GradcheckError naming the worst element if any gradient is wrong; else True."""
    checked = [(i, t) for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    for i, t in checked:
        if t.dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {t.dtype}; finite differences need "
                            f"float64 (use .to(dtype='float64'))")
    out = fn(*inputs)
    xp = out.xp
    v = xp.asarray(np.random.default_rng(seed).standard_normal(out.shape))

    for _, t in checked:
        t.data = t.data.copy(order="C")  # contiguous, so the flat view below writes through
        t.grad = None
    out = fn(*inputs)
    out.backward(v)
    analytic = [t.grad.data.copy() if t.grad is not None else xp.zeros_like(t.data)
                for _, t in checked]

    def objective():
        with no_grad():
            return float((fn(*inputs).data * v).sum())

    for (index, t), a in zip(checked, analytic):
        numeric = xp.zeros_like(t.data)
        flat, nflat = t.data.reshape(-1), numeric.reshape(-1)
        for k in range(flat.size):
            original = float(flat[k])
            flat[k] = original + eps
            plus = objective()
            flat[k] = original - eps
            minus = objective()
            flat[k] = original
            nflat[k] = (plus - minus) / (2 * eps)
        error = xp.abs(a - numeric) - (atol + rtol * xp.abs(numeric))
        if float(error.max()) > 0:
            k = int(error.argmax())
            where = np.unravel_index(k, t.shape)
            raise GradcheckError(
                f"gradcheck: gradient of input {index} (shape {t.shape}) is wrong at {where}: "
                f"analytic {float(a.reshape(-1)[k]):.8g}, numeric "
                f"{float(numeric.reshape(-1)[k]):.8g}; {int((error > 0).sum())} of "
                f"{t.size} elements outside atol={atol}, rtol={rtol}")
    for _, t in checked:
        t.grad = None
    return True
