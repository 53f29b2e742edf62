"""Lesson 11: the soft mask branch drawn, level by level, and the module's p, t and r.

Files: minran/models/attention_module.py (AttentionModule, soft_mask)
Paper: Sec. 3.3 and Fig. 3 (the bottom-up top-down mask); Sec. 4.1 (p, t, r).

Lesson 10 used the attention module; this one opens it. Its mask branch is an hourglass:
max pooling takes the map down k times (bottom-up: each level sees a wider context), then
bilinear upsampling brings it back up k times (top-down) to the trunk's size, so each
position of the mask is computed from a wide region around it, not only its neighbours.
Skip connections carry each level's features across to the way up, where they are added
back in. Here it is for an attention module of stage 1 of Attention-56 (64 channels, 32x32
maps, k = 3), traced from the graph (lesson 1) of a real pass through it, so every shape
below is one the code made.
"""
import re

import numpy as np

from minran import Tensor
from minran.models import AttentionModule, ResidualUnit


def collapsed(module):
    """print(module), with each residual unit (lesson 9) written on one line."""
    return re.sub(r"ResidualUnit\(\n(?:.*\n)*?\s*\)", "ResidualUnit(bottleneck)", repr(module))


def made_in_order(root):
    """Every tensor of the graph that made `root`, inputs before results (lesson 2)."""
    order, seen, stack = [], set(), [root]
    while stack:
        node = stack[-1]
        waiting = [p for p in node._parents if p is not None and id(p) not in seen]
        if waiting:
            stack.extend(waiting)
            continue
        stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            order.append(node)
    return order


def trace(mask):
    """The mask branch's steps, read from the graph that made `mask`: (step, size). A unit's
    output is the add of its branch (ending in a conv) and its shortcut; a skip unit's output
    is added, on the way up, to an upsampled map."""
    def inputs(node):
        return [p for p in node._parents if p is not None]

    def adds_a_skip(node):
        return node._op == "add" and any(p._op == "upsample_bilinear" for p in inputs(node))
    order = made_in_order(mask)
    feeds = {}
    for node in order:
        for parent in inputs(node):
            feeds.setdefault(id(parent), []).append(node)
    names = {"max_pool2d": "max pool", "upsample_bilinear": "upsample", "sigmoid": "head, sigmoid: M"}
    steps = []
    for node in order:
        size = "x".join(map(str, node.shape[2:]))
        if node._op in names:
            steps.append((names[node._op], size))
        elif adds_a_skip(node):
            steps.append(("+ skip", size))
        elif node._op == "add" and any(p._op == "conv2d" for p in inputs(node)):
            skip = any(adds_a_skip(n) for n in feeds.get(id(node), []))
            steps.append(("skip unit" if skip else "unit", size))
    return steps


def drawn(steps, sizes):
    """The steps one per line, indented by level: down the hourglass and back up."""
    lines = [f"x{'':<24}{sizes[0]}"]
    for i, (step, size) in enumerate(steps):
        level = sizes.index(size)
        if step == "skip unit":
            note = "  --+ a skip, kept for the way up"
        elif step == "+ skip":
            note = "  <-+ the skip kept at this size"
        elif step == "unit" and size == sizes[-1] and steps[i - 1] == (step, size):
            note = "  (the lowest level's r more)"
        elif step == "upsample":
            note = "  (the size before this level's pooling)"
        else:
            note = ""
        lines.append(f"{'  ' * level}{step:<{25 - 2 * level}}{size:<7}{note}".rstrip())
    return "\n".join(lines)


module = AttentionModule(64, poolings=3)   # stage 1 of Attention-56: p = 1, t = 2, r = 1
print(collapsed(module))

# requires_grad: an op records itself only if an input needs a gradient, and the first
# pooling's only input is x.
x = Tensor(np.random.default_rng(0).standard_normal((1, 64, 32, 32)).astype(np.float32),
           requires_grad=True)
steps = trace(module.soft_mask(x))
path = [size for step, size in steps if step in ("max pool", "upsample")]
print("\nthe mask's size, pooling by pooling and back:", " -> ".join(["32x32"] + path))

# The whole branch, drawn from that graph. Going down, each level pools, runs r units and
# (except the lowest) keeps a skip: one more unit applied to that level's output. The lowest
# level runs r more units. Coming up, each level upsamples to the exact size the map had
# before that level's pooling, adds the skip kept at that size and runs r units; the last
# upsampling, back to the input's size, feeds the head (bn-relu-conv1x1-bn-relu-conv1x1)
# and the sigmoid. 64 channels throughout.
sizes = ["32x32", "16x16", "8x8", "4x4"]
drawing = drawn(steps, sizes)
print(drawing)

# Odd sizes: a 28x28 input goes 28 -> 14 -> 7 -> 4 and must come back 4 -> 7 -> 14 -> 28, so
# each upsampling names the size it returns to (a fixed "x2" would give 8, then fail to add
# the 7x7 skip).
odd = trace(AttentionModule(8, poolings=3).soft_mask(Tensor(np.zeros((1, 8, 28, 28), np.float32),
                                                              requires_grad=True)))
odd_path = [size for step, size in odd if step in ("max pool", "upsample")]
print("from 28x28:", " -> ".join(["28x28"] + odd_path))

# p, t and r: the module's three sizes (Sec. 4.1). p units before the split and p after the
# combine, t units in the trunk, r units between adjacent levels of the mask. They count as
# below; only the trunk's 2p + t units lie on the path from the module's input to its output
# through the trunk, 3 weight layers each: 12 layers for p, t = 1, 2 (lesson 12 adds them up).
print("\n(p, t, r)   k   units: trunk path 2p+t, mask branch; counted in the module")
counts = {}
for p, t, r in ((1, 2, 1), (2, 4, 3)):
    for k in (3, 2, 1):
        m = AttentionModule(4, poolings=k, p=p, t=t, r=r)
        built = sum(isinstance(u, ResidualUnit) for u in m.modules())
        mask_units = k * r + (k - 1) + r + (k - 1) * r   # down, skips, bottom, up
        counts[(p, t, r, k)] = (2 * p + t, mask_units, built)
        print(f"{(p, t, r)}   {k}   {2 * p + t:>2} + {mask_units:>2} = {2 * p + t + mask_units:>2}; "
              f"built: {built}")

# Exercises
# 0. Write the mask branch's loop yourself: fill in lessons/exercises/11_soft_mask.py, then run
#    `python -m lessons.check 11` (from the repository's root) until it agrees with minran.
# 1. Trace a stage 3 module (poolings=1) on an 8x8 map: where is its skip? Why has it none?
# 2. Attention-452 uses p, t, r = 2, 4, 3. How many residual units does one of its stage 1
#    modules hold, and how much deeper is its trunk path than Attention-236's (m = 6 too)?
# 3. The mask branch pools three times in stage 1 and once in stage 3. What size is the
#    smallest mask map in each stage of Attention-56? (Lesson 12 builds the network.)
