"""Lesson 1: a tensor is an array plus the record of how it was made.

Files: minran/tensor.py, minran/backend.py, minran/functional/elementwise.py,
       minran/plots.py (graph_svg draws the graph)
Paper: none yet: this is the machinery every later lesson stands on.

Every op in minran computes its output array and, if any input needs a gradient, remembers
its inputs (`_parents`), its name (`_op`) and a `backward` closure. That record is the
computational graph. `Tensor._from_op` in minran/tensor.py keeps it; the lesson prints it.
"""
import inspect
import os
import pathlib

import numpy as np

import minran
from minran import Tensor
from minran.plots import graph_svg

# Pictures go to lessons/out/ (MINRAN_LESSONS_OUT moves them elsewhere; the tests do).
OUT = pathlib.Path(os.environ.get("MINRAN_LESSONS_OUT") or pathlib.Path(__file__).parent / "out")
OUT.mkdir(parents=True, exist_ok=True)

print(inspect.getsource(Tensor._from_op))

a = Tensor(np.array([2.0, 3.0]), requires_grad=True)
b = Tensor(np.array([4.0, 5.0]), requires_grad=True)
c = a * b + a          # two ops: mul, then add

print("c =", c.data, "made by op", c._op)
print("its parents:", [p._op or "leaf" for p in c._parents])
print("the mul's parents are a and b:", c._parents[0]._parents[0] is a, c._parents[0]._parents[1] is b)

# The same record, drawn: a box per tensor, an arrow from each input to what it made.
graph_svg(c, OUT / "01_graph.svg", names={"a": a, "b": b, "c": c})
print("the graph of c drawn in", OUT / "01_graph.svg")

# Under no_grad nothing is recorded: evaluation and optimiser updates need no graph.
with minran.no_grad():
    d = a * b
print("under no_grad: requires_grad =", d.requires_grad, ", parents =", d._parents)

# The array module: numpy here, cupy for tensors on a GPU (minran/backend.py decides).
print("array module:", a.xp.__name__, ", device:", a.device, ", dtype:", a.dtype)

# Exercises
# 1. Build (a - b) / a, print the chain of _op names back to the leaves, and draw it with
#    graph_svg (minran/plots.py). Why does a appear once, with two arrows leaving it?
# 2. Why does Tensor set __array_priority__? Try np.ones(2) + a with it removed.
# 3. What dtype does Tensor([1, 2]) get, and why does minran refuse requires_grad on ints?
