"""Lesson 4: broadcasting copies a value to many places, so its gradient sums them back.

Files: minran/functional/_util.py (unbroadcast), minran/functional/elementwise.py, minran/functional/shape.py
Paper: the batch-norm scale and the (1 + M) broadcast in the attention module rely on this.
"""
import numpy as np

from minran import Tensor, gradcheck
from minran.functional._util import unbroadcast

x = Tensor(np.ones((4, 3)), requires_grad=True)   # a batch of 4 rows
bias = Tensor(np.zeros(3), requires_grad=True)    # one bias, broadcast to every row
(x + bias).sum().backward()
print("bias.grad =", bias.grad.data, "(each bias was used by 4 rows)")

g = np.arange(24.0).reshape(2, 3, 4)
print("unbroadcast to (3, 1):\n", unbroadcast(g, (3, 1)))
print("check: same as summing axes 0 and 2:", np.allclose(unbroadcast(g, (3, 1))[:, 0], g.sum(axis=(0, 2))))

a = Tensor(np.random.default_rng(0).standard_normal((2, 1, 3)), requires_grad=True)
b = Tensor(np.random.default_rng(1).standard_normal((4, 1)), requires_grad=True)
print("gradcheck of a * b with shapes (2,1,3) and (4,1):", gradcheck(lambda a, b: a * b, a, b))

# Exercises
# 1. What does unbroadcast do for a gradient of shape (5,) and an input of shape ()?
# 2. Write sum(x, axis=1) by hand as x @ ones and check both gradients agree.
