"""Exercise 5: im2col, the copy that turns a convolution into one matrix product.

Fill in `im2col`, then check it against minran's from the repository's root:

    python -m lessons.check 05

x is (N, C, H, W); kernel, stride and padding are pairs (kh, kw), (sh, sw), (ph, pw). The
result is (N, C*kh*kw, Ho*Wo), with Ho = (H + 2*ph - kh) // sh + 1 and Wo alike. Its row
(c*kh + di)*kw + dj, column i*Wo + j holds what kernel offset (di, dj) of output pixel (i, j)
reads: x[n, c, i*sh + di - ph, j*sw + dj - pw], or 0 where that lies in the padding.
Plain loops are fine. Lesson 5 shows a faster way (one strided copy per kernel offset).
"""
import numpy as np


def im2col(x, kernel, stride, padding):
    raise NotImplementedError("im2col")
