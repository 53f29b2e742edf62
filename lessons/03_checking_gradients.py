"""Lesson 3: a hand-written backward is trusted only after finite differences agree with it.

Files: minran/gradcheck.py
Paper: none: this is why you can trust the rest of minran.

The central difference (f(x + eps) - f(x - eps)) / (2 eps) approximates a derivative with an
error of order eps^2, in float64. gradcheck does this for every element of every input and
compares with backward, against a random cotangent so errors cannot cancel.
"""
import numpy as np

import minran.functional as F
from minran import GradcheckError, Tensor, gradcheck

x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 5, 5)), requires_grad=True)

# By hand, one element of max pooling's input:
eps, index = 1e-6, (0, 1, 2, 2)
f = lambda: F.max_pool2d(x, 3, stride=2, padding=1).data.sum()  # noqa: E731
x.data[index] += eps
plus = f()
x.data[index] -= 2 * eps
minus = f()
x.data[index] += eps
F.max_pool2d(x, 3, stride=2, padding=1).sum().backward()
print(f"element {index}: numeric {(plus - minus) / (2 * eps):.6f}, analytic {x.grad.data[index]:.6f}")

# minran's gradcheck does every element of every input:
print("gradcheck(max_pool2d):", gradcheck(lambda t: F.max_pool2d(t, 3, 2, 1), x))

# And it catches a wrong backward: the derivative of x^2 is 2x, not x.
wrong = lambda t: Tensor._from_op(t.data ** 2, (t,), lambda g: (g * t.data,), "bad_square")  # noqa
try:
    gradcheck(wrong, Tensor(np.array([1.0, 2.0]), requires_grad=True))
except GradcheckError as error:
    print("caught:", error)

# Property-based testing: hypothesis draws the shapes, strides and paddings you would not
# think of (a 1x1 input with padding 1, a stride larger than the kernel...). See
# tests/test_ops.py; here one drawn case, if hypothesis is installed (pip install -e ".[test]").
try:
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=5, deadline=None)
    @given(st.integers(1, 6), st.integers(1, 3), st.integers(1, 3))
    def check(size, kernel, stride):
        if kernel <= size:
            t = Tensor(np.random.default_rng(size).standard_normal((1, 1, size, size)), requires_grad=True)
            gradcheck(lambda t: F.avg_pool2d(t, kernel, stride), t)
    check()
    print("hypothesis: 5 drawn avg_pool2d cases passed")
except ImportError:
    print("(hypothesis not installed: skipped the property-based part)")

# Exercises
# 1. Make eps 1e-2 and 1e-10: which way does gradcheck fail, and why (truncation vs rounding)?
# 2. Why must gradcheck run in float64? Try a float32 input.
# 3. Break the backward of F.relu (minran/functional/activation.py) and run pytest.
