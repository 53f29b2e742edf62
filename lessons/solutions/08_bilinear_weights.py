"""An answer to exercise 8: one row per output pixel, two weights per row."""
import math

import numpy as np


def interpolation_matrix(size_in, size_out, align_corners):
    A = np.zeros((size_out, size_in))
    for o in range(size_out):
        if align_corners:
            s = o * (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
        else:
            s = max((o + 0.5) * size_in / size_out - 0.5, 0.0)
        i0 = min(math.floor(s), size_in - 1)
        i1 = min(i0 + 1, size_in - 1)    # past the edge, both neighbours are the last pixel
        A[o, i0] += 1 - (s - i0)
        A[o, i1] += s - i0
    return A
