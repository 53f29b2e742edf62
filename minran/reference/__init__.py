"""The plain version of every op: loops or the textbook formula, one output at a time.

minran/functional/ holds the ops the network runs, with their speed-ups: the batch cut into
slices on every core, a strided view per window offset, batch norm folded and fused with its
ReLU, a CUDA twin beside each. Here is what each of them computes, written as you would
write it from the definition: no threads, no fusion, no slices, plain NumPy arrays in and
out, and every backward spelled out as its own function. One file per op file, with the
same names (`reference.conv.conv2d` is the plain `functional.conv.conv2d`), and each op
file's docstring names its reference.

The tests hold every fast op, forward and backward, equal to its reference over drawn shapes
and options in float64 (tests/test_reference.py), and check each reference's backward
against finite differences of its own forward, so neither can drift. The lessons read them.
Slow on purpose: use them on small arrays.
"""
from . import (activation, attention, conv, elementwise, linear, loss, normalization, pooling,
               sgd, shape, upsample)

__all__ = ["activation", "attention", "conv", "elementwise", "linear", "loss", "normalization",
           "pooling", "sgd", "shape", "upsample"]
