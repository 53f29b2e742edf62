"""Exercise 8: the weights of bilinear interpolation along one axis.

Fill in `interpolation_matrix`, then check it against minran's from the repository's root:

    python -m lessons.check 08

Return the (size_out, size_in) matrix A whose row o holds the weight output pixel o gives
each input pixel, so that resizing one axis is A @ x. Output pixel o samples the input at

    s = o * (size_in - 1) / (size_out - 1)           align_corners=True (0 if size_out == 1)
    s = max((o + 0.5) * size_in / size_out - 0.5, 0) align_corners=False

and blends its two neighbours i0 = floor(s) and i0 + 1 with weights 1 - (s - i0) and s - i0;
past the last pixel the last pixel stands in for the missing neighbour (lesson 8).
"""
import numpy as np


def interpolation_matrix(size_in, size_out, align_corners):
    raise NotImplementedError("interpolation_matrix")
