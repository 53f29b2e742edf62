"""An answer to exercise 5: one strided copy per kernel offset, as minran's im2col does.

For offset (di, dj), the pixels every output reads are one strided view of the padded
input, xp[:, :, di : di + sh*Ho : sh, dj : dj + sw*Wo : sw], shaped (N, C, Ho, Wo): kh*kw
copies in all, instead of one per entry.
"""
import numpy as np


def im2col(x, kernel, stride, padding):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    N, C, H, W = x.shape
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.empty((N, C, kh, kw, Ho, Wo), dtype=x.dtype)
    for di in range(kh):
        for dj in range(kw):
            cols[:, :, di, dj] = xp[:, :, di:di + sh * Ho:sh, dj:dj + sw * Wo:sw]
    return cols.reshape(N, C * kh * kw, Ho * Wo)
