"""Exercise 7: batch norm's backward, in training mode.

Fill in `batch_norm_backward`, then check it against minran's from the repository's root:

    python -m lessons.check 07

The forward, per channel c over its n = N*H*W values: mean and biased variance var of x,
xhat = (x - mean) / std with std = sqrt(var + eps), y = weight[c] * xhat + bias[c].
Given g = dL/dy (shaped like x, (N, C, H, W)), return (gx, gw, gb): the gradients of x,
weight and bias. gb and gw are sums over each channel's values; for gx remember that mean
and std depend on x too (lesson 7 derives the formula).
"""
import numpy as np


def batch_norm_backward(g, x, weight, eps=1e-5):
    raise NotImplementedError("batch_norm_backward")
