"""Exercise 6: where max pooling's gradient goes.

Fill in `max_pool2d_backward`, then check it against minran's from the repository's root:

    python -m lessons.check 06

x is the pooled input (N, C, H, W) and g the gradient of the output (N, C, Ho, Wo); kernel,
stride and padding are pairs. Return the input's gradient, shaped like x. Each output
pixel's gradient goes to one input pixel of its window: the first, in row order, whose value
equals the window's maximum (padding counts as -inf, so it never wins). A pixel that wins
several windows gets the sum of their gradients. Plain loops are fine.
"""
import numpy as np


def max_pool2d_backward(g, x, kernel, stride, padding):
    raise NotImplementedError("max_pool2d_backward")
