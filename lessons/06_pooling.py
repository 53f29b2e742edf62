"""Lesson 6: pooling as a loop over the kernel's offsets, and where its gradient goes.

Files: minran/functional/pooling.py, minran/nn/layers.py (MaxPool2d)
Paper: the soft mask branch goes down by max pooling 3x3, stride 2, pad 1 (Sec. 3.3).
"""
import numpy as np

import minran.functional as F
from minran import Tensor, nn

x = Tensor(np.array([[[[1.0, 5.0, 2.0, 2.0],
                       [3.0, 4.0, 2.0, 2.0],
                       [0.0, 0.0, -1.0, -3.0],
                       [0.0, 0.0, -2.0, -4.0]]]]), requires_grad=True)
y = F.max_pool2d(x, 2)
y.backward(np.ones(y.shape))
print("max pool 2x2:\n", y.data[0, 0])
print("gradient: only each window's winner gets it, ties go to the first:\n", x.grad.data[0, 0])

# max_pool2d keeps no argmax for its backward: it finds every window's winner again, the first
# offset in row order whose value equals the window's maximum. The same by hand, offset by
# offset, for the 2x2 windows above:
out, free, grad = y.data[0, 0], np.ones((2, 2), bool), np.zeros((4, 4))
for i in range(2):
    for j in range(2):
        won = (x.data[0, 0, i::2, j::2] == out) & free
        free &= ~won
        grad[i::2, j::2] += won
print("winners found again == the gradient above:", np.array_equal(grad, x.grad.data[0, 0]))

print("average pool:", F.avg_pool2d(Tensor(x.data), 2).data[0, 0].tolist())

# The mask's pooling: 32 -> 16 -> 8 -> 4, and odd sizes round up: 7 -> 4.
pool = nn.MaxPool2d(3, stride=2, padding=1)
for size in (32, 16, 8, 7):
    print(f"{size}x{size} -> {pool(Tensor(np.zeros((1, 1, size, size)))).shape[2]}")

# Exercises
# 1. Why does max pooling pad with -inf and not 0? Pool an all-negative image both ways.
# 2. Change the tie rule to "last maximum wins" in pooling.py: which test fails?
