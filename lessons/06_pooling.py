"""Lesson 6: pooling as a loop over the kernel's offsets, and where its gradient goes.

Files: minran/functional/pooling.py, minran/nn/layers.py (MaxPool2d),
       minran/reference/pooling.py (the plain version: one window at a time)
Paper: the soft mask branch goes down by max pooling 3x3, stride 2, pad 1 (Sec. 3.3).
"""
import numpy as np

import minran.functional as F
from minran import Tensor, nn, reference

x = Tensor(np.array([[[[1.0, 5.0, 2.0, 2.0],
                       [3.0, 4.0, 2.0, 2.0],
                       [0.0, 0.0, -1.0, -3.0],
                       [0.0, 0.0, -2.0, -4.0]]]]), requires_grad=True)
y = F.max_pool2d(x, 2)
y.backward(np.ones(y.shape))
print("max pool 2x2:\n", y.data[0, 0])
print("gradient: only each window's winner gets it, ties go to the first:\n", x.grad.data[0, 0])

# The plain version, window by window (minran/reference/pooling.py), agrees:
plain = reference.pooling.max_pool2d_backward(np.ones((1, 1, 2, 2)), x.data, 2)
print("== the plain version's gradient:", np.array_equal(x.grad.data, plain))

# NumPy's max_pool2d keeps no argmax for its backward. Its forward is one np.maximum per
# kernel offset over every window at once; recording which offset won would cost a masked
# copy per offset, slower in NumPy than finding the winners again in the backward: the first
# offset in row order whose value equals the window's maximum. Its CUDA twin (lessons 17 and
# 18) does write an argmax: a thread walking its own window has the winner in hand, writing
# it costs one int per output, and the backward's threads read it instead of rescanning
# windows. Both pick the same winner. Finding it again, offset by offset, for the windows above:
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
# 0. Write max pooling's backward yourself: fill in lessons/exercises/06_max_pool_backward.py,
#    then run `python -m lessons.check 06` (from the repository's root).
# 1. Why does max pooling pad with -inf and not 0? Pool an all-negative image both ways.
# 2. Change the tie rule to "last maximum wins" in pooling.py: which test fails?
