"""Lesson 2: reverse-mode automatic differentiation walks the graph backwards once.

Files: minran/tensor.py (backward, _topological_order), minran/functional/shape.py
Paper: none: this is how every gradient in the network is computed.

`backward()` puts the graph in topological order (every node after its inputs), then visits
it in reverse, handing each node's gradient to its `backward` closure and adding what comes
back into its parents' gradients. A tensor used twice gets both contributions.
"""
import os
import pathlib

import numpy as np

from minran import Tensor
from minran.plots import graph_svg
from minran.tensor import _topological_order

OUT = pathlib.Path(os.environ.get("MINRAN_LESSONS_OUT") or pathlib.Path(__file__).parent / "out")
OUT.mkdir(parents=True, exist_ok=True)

x = Tensor(np.array([3.0]), requires_grad=True)
h = x * x            # used twice below
y = h * 2 + h        # dy/dh = 3, dh/dx = 2x = 6, so dy/dx = 18

print("topological order:", [n._op or "leaf" for n in _topological_order(y)])
# Drawn before backward frees it: h feeds two ops, so two arrows leave it, and backward must
# add the gradients that come back along both. (The constant 2 needs no gradient, so the
# order above leaves it out.)
graph_svg(y, OUT / "02_graph.svg", names={"x": x, "h": h, "y": y})
print("the graph of y drawn in", OUT / "02_graph.svg")
y.backward(np.ones(1))
print("dy/dx =", x.grad.data, "(expected 18)")

# Gradients accumulate across calls, as in PyTorch: zero them between steps.
(x * 2).sum().backward()
print("after a second backward, x.grad =", x.grad.data, "(18 + 2)")

# The graph is freed as backward goes: each node drops its parents and saved arrays.
print("y still holds its parents?", bool(y._parents))

# Reductions send the gradient back to every element they summed.
m = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
m.mean(axis=1).sum().backward()
print("d(sum of row means)/dm =\n", m.grad.data)

# Exercises
# 1. Check the order printed above against the drawing in lessons/out/02_graph.svg.
# 2. Call y.backward(retain_graph=True) twice on a fresh y: what changes, and why is freeing
#    the default (think of 160,000 training steps)?
# 3. Why is _topological_order written with an explicit stack instead of recursion?
