"""Lesson 8: bilinear upsampling, its two corner conventions, and odd sizes.

Files: minran/functional/upsample.py, minran/functional/upsample.cu (its CUDA twin)
Paper: the soft mask goes back up by bilinear interpolation (Sec. 3.3); the authors' Caffe
Interp layer aligns corners: source = out * (in - 1) / (out - 1).
"""
import numpy as np

import minran.functional as F
from minran import Tensor

print("align_corners=True, 2 -> 4 weights:\n", F.interpolation_matrix(2, 4, True).round(3))
print("align_corners=False, 2 -> 4 weights:\n", F.interpolation_matrix(2, 4, False).round(3))

x = Tensor(np.array([[[[0.0, 1.0], [2.0, 3.0]]]]))
corners, centres = F.upsample_bilinear(x, 3, True).data, F.upsample_bilinear(x, 3, False).data
print("2x2 -> 3x3:\n", corners[0, 0], "\nboth conventions agree here:", np.array_equal(corners, centres))

# Upsampling is A_y @ x @ A_x^T, so its backward is the transposes: no scatter, deterministic.
# The mask must return to the exact size it had before pooling: 28 -> 14 -> 7 and back.
m = Tensor(np.zeros((1, 1, 7, 7)))
print("7 -> 14 -> 28:", F.upsample_bilinear(F.upsample_bilinear(m, 14), 28).shape)
print("a 7x7 map pooled from 13x13 goes back by naming the size (a fixed 'x2' would give 14):",
      F.upsample_bilinear(m, 13).shape)

# Exercises
# 1. Check that every row of an interpolation matrix sums to 1. Why must it?
# 2. Downsample 9 -> 4 with both conventions and compare which input pixels are read.
