"""Lesson 5: convolution is a matrix product once every receptive field is a column.

Files: minran/functional/conv.py (im2col, col2im, conv2d), minran/functional/macs.py,
       minran/functional/conv.cu (the CUDA twins of im2col and col2im; lesson 18),
       minran/reference/conv.py (the plain version: the definition, in loops)
Paper: every 1x1 and 3x3 convolution of the residual units (Sec. 3, Fig. 2).
"""
import inspect

import numpy as np

import minran.functional as F
from minran import Tensor, reference

rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 6, 6))
w = rng.standard_normal((4, 3, 3, 3))

# The definition, one output element at a time: slow but obviously right. It is the plain
# version of conv2d in minran/reference/conv.py, which the tests hold the fast one equal to:
print(inspect.getsource(reference.conv.conv2d))
out = reference.conv.conv2d(x, w, padding=1)

cols = F.im2col(x, (3, 3), (1, 1), (1, 1))
print("im2col: input", x.shape, "-> columns", cols.shape, "(N, C*kh*kw, Ho*Wo)")
by_matmul = (w.reshape(4, -1) @ cols).reshape(2, 4, 6, 6)
print("loops == W @ im2col(x):", np.allclose(out, by_matmul))
print("im2col == its plain version, entry by entry:",
      np.array_equal(cols, reference.conv.im2col(x, (3, 3), (1, 1), (1, 1))))
print("loops == minran F.conv2d:", np.allclose(out, F.conv2d(Tensor(x), Tensor(w), padding=1).data))

# col2im is im2col's adjoint: <im2col(x), c> == <x, col2im(c)>, which is what backward needs.
c = rng.standard_normal(cols.shape)
print("adjoint check:", np.isclose((cols * c).sum(), (x * F.col2im(c, x.shape, (3, 3), (1, 1), (1, 1))).sum()))

# The backward needs col2im(W^T @ g) for the input gradient. For stride 1 the same thing is
# a convolution of g (padded by k - 1 - p) with the kernel flipped and its channel axes
# swapped: one im2col, a copy, instead of col2im's scattered adds. conv2d uses it on the CPU.
g = rng.standard_normal((2, 4, 6, 6))
by_col2im = F.col2im(w.reshape(4, -1).T @ g.reshape(2, 4, 36), x.shape, (3, 3), (1, 1), (1, 1))
flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).copy()
print("col2im(W^T g) == conv2d(g, flipped W):",
      np.allclose(by_col2im, F.conv2d(Tensor(g), Tensor(flipped), padding=1).data))

# conv2d does this for slices of a few images at a time, on every core at once, with the
# same answer on any number of threads: lesson 19 shows how.

with F.counting_macs() as macs:
    F.conv2d(Tensor(x), Tensor(w), padding=1)
print("multiply-accumulates:", macs, "= 2*4*6*6 outputs x 27")

# Exercises
# 0. Write im2col yourself: fill in lessons/exercises/05_im2col.py, then run
#    `python -m lessons.check 05` (from the repository's root) until it agrees with minran.
# 1. Why does conv2d skip im2col for a 1x1 stride-1 convolution? (Most of the network's are.)
# 2. How much memory does im2col take for a 64-channel 32x32 batch of 64 and a 3x3 kernel?
#    (conv2d never holds all of it at once on the CPU: lesson 19.)
