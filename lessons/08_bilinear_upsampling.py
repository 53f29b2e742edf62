"""Lesson 8: bilinear upsampling, its two corner conventions, and odd sizes.

Files: minran/functional/upsample.py, minran/functional/upsample.cu (its CUDA twin),
       minran/reference/upsample.py (the plain version: one output pixel at a time)
Paper: the soft mask goes back up by bilinear interpolation (Sec. 3.3); the authors' Caffe
Interp layer aligns corners: source = out * (in - 1) / (out - 1).
"""
import numpy as np

import minran.functional as F
from minran import Tensor, reference

print("align_corners=True, 2 -> 4 weights:\n", F.interpolation_matrix(2, 4, True).round(3))
print("align_corners=False, 2 -> 4 weights:\n", F.interpolation_matrix(2, 4, False).round(3))

x = Tensor(np.array([[[[0.0, 1.0], [2.0, 3.0]]]]), requires_grad=True)
corners, centres = F.upsample_bilinear(x, 3, True).data, F.upsample_bilinear(x, 3, False).data
print("2x2 -> 3x3:\n", corners[0, 0], "\nboth conventions agree here:", np.array_equal(corners, centres))
# Why they agree: where each output pixel samples the input. Half-pixel centres put the
# outer samples beyond the image, at -1/6 and 7/6; the first is clamped to 0, and past the
# last pixel the edge pixel repeats, so both land on the corners, as align_corners does.
for corner in (True, False):
    sources = [round(reference.upsample.source_coordinate(o, 2, 3, corner), 4) for o in range(3)]
    print(f"align_corners={corner}: sources", sources)

# Upsampling is A_y @ x @ A_x^T, so its backward is the transposes, A_y^T @ g @ A_x: no
# scatter, deterministic. Checked against the plain backward, which hands every output
# pixel's gradient to its four input pixels one at a time (minran/reference/upsample.py):
g = np.random.default_rng(0).standard_normal((1, 1, 5, 3))
F.upsample_bilinear(x, (5, 3)).backward(Tensor(g))
transposes = F.interpolation_matrix(2, 5, True).T @ g[0, 0] @ F.interpolation_matrix(2, 3, True)
print("backward == A_y^T @ g @ A_x:", np.allclose(x.grad.data[0, 0], transposes),
      "== the plain scatter:", np.allclose(x.grad.data, reference.upsample.upsample_bilinear_backward(
          g, x.shape, (5, 3), True)))

# The mask must return to the exact size it had before pooling: 28 -> 14 -> 7 and back.
m = Tensor(np.zeros((1, 1, 7, 7)))
print("7 -> 14 -> 28:", F.upsample_bilinear(F.upsample_bilinear(m, 14), 28).shape)
print("a 7x7 map pooled from 13x13 goes back by naming the size (a fixed 'x2' would give 14):",
      F.upsample_bilinear(m, 13).shape)

# Exercises
# 0. Write the weights yourself: fill in lessons/exercises/08_bilinear_weights.py, then run
#    `python -m lessons.check 08` (from the repository's root).
# 1. Check that every row of an interpolation matrix sums to 1. Why must it?
# 2. Downsample 9 -> 4 with both conventions and compare which input pixels are read.
