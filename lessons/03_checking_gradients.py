"""Lesson 3: a hand-written backward is trusted only after finite differences agree with it.

Files: minran/gradcheck.py, minran/reference/ (the plain version of every op)
Paper: none: this is why you can trust the rest of minran.

The central difference (f(x + eps) - f(x - eps)) / (2 eps) approximates a derivative with an
error of order eps^2, in float64. gradcheck does this for every element of every input and
compares with backward, against a random cotangent so errors cannot cancel.
"""
import numpy as np

import minran.functional as F
from minran import GradcheckError, Tensor, gradcheck, reference

x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 5, 5)), requires_grad=True)


def pool_sum():
    return F.max_pool2d(x, 3, stride=2, padding=1).data.sum()


def numeric_derivative(index, eps=1e-6):
    """d pool_sum / d x[index] by central differences."""
    x.data[index] += eps
    plus = pool_sum()
    x.data[index] -= 2 * eps
    minus = pool_sum()
    x.data[index] += eps
    return (plus - minus) / (2 * eps)


# By hand, two elements of max pooling's input. Only a window's maximum gets gradient, one
# unit per window it wins. The 3x3 windows of stride 2 (padding 1) start at rows and columns
# -1, 1, 3, so row 1 and column 1 lie in two windows each, and x[0, 1, 1, 1] in four: make
# it its channel's largest value and it wins all four. The channel's smallest value wins none.
x.data[0, 1, 1, 1] = x.data[0, 1].max() + 1.0
F.max_pool2d(x, 3, stride=2, padding=1).sum().backward()
winner = (0, 1, 1, 1)
loser = (0, 1) + tuple(int(i) for i in np.unravel_index(x.data[0, 1].argmin(), (5, 5)))
checked = {}
for name, index in (("largest", winner), ("smallest", loser)):
    checked[name] = numeric_derivative(index), float(x.grad.data[index])
    print(f"{name} element {index}: numeric {checked[name][0]:.6f}, analytic {checked[name][1]:.6f}")
x.grad = None

# minran's gradcheck does every element of every input:
print("gradcheck(max_pool2d):", gradcheck(lambda t: F.max_pool2d(t, 3, 2, 1), x))

# And it catches a wrong backward: the derivative of x^2 is 2x, not x.
wrong = lambda t: Tensor._from_op(t.data ** 2, (t,), lambda g: (g * t.data,), "bad_square")  # noqa
try:
    gradcheck(wrong, Tensor(np.array([1.0, 2.0]), requires_grad=True))
except GradcheckError as error:
    print("caught:", error)

# The second oracle: every op's plain version in minran/reference/ (loops and textbook
# formulas, none of the speed-ups), which tests/test_reference.py holds every fast op equal
# to, forward and backward, and checks by finite differences in its turn. Max pooling's:
g = np.random.default_rng(1).standard_normal((2, 3, 3, 3))
fast = Tensor(x.data, requires_grad=True)
F.max_pool2d(fast, 3, 2, 1).backward(Tensor(g))
plain = reference.pooling.max_pool2d_backward(g, x.data, 3, 2, 1)
# (allclose, not equal: a pixel that wins several windows gets their gradients added in
# another order, which can change the last bit.)
print("max_pool2d's gradient == its plain version in minran/reference/pooling.py:",
      np.allclose(fast.grad.data, plain, rtol=1e-12, atol=1e-12))

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
