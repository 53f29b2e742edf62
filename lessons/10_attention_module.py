"""Lesson 10: the attention module: trunk, soft mask, and attention residual learning.

Files: minran/models/attention_module.py, minran/functional/attention.py, minran/functional/activation.py
Paper: Sec. 3.1 (Eq. 1 and 3), 3.3, Fig. 2; Table 3 (ARL vs NAL).

The trunk T processes features; the soft mask M in [0, 1] comes from a bottom-up top-down
branch of the same input. Naive attention learning outputs M * T: stacking modules
multiplies masks, and the features fade. Attention residual learning outputs (1 + M) * T:
M can only emphasise, and a stack keeps its signal and its gradient.
"""
import numpy as np

import minran
import minran.functional as F
from minran import Tensor
from minran.models import AttentionModule

minran.manual_seed(0)
module = AttentionModule(16, poolings=2)
x = Tensor(np.random.default_rng(0).standard_normal((2, 16, 16, 16)).astype(np.float32))
out, mask = module(x, return_mask=True)
print("trunk and mask shapes:", module.trunk(module.pre(x)).shape, mask.shape)
print(f"mask values lie in [{mask.data.min():.3f}, {mask.data.max():.3f}]")

# The deep-stack argument, numerically: 8 modules in a row, ARL against NAL.
for residual in (True, False):
    minran.manual_seed(1)
    stack = [AttentionModule(8, poolings=1, residual=residual) for _ in range(8)]
    h0 = Tensor(np.random.default_rng(1).standard_normal((4, 8, 8, 8)).astype(np.float32),
                requires_grad=True)
    h = h0
    for m in stack:
        # Bare combine steps, as in Eq. 1 and 3, to isolate the effect of stacking masks:
        h = F.attention_combine(m.soft_mask(h), h, residual=residual)
    (h * h).mean().backward()
    name = "ARL (1+M)*T" if residual else "NAL  M*T   "
    print(f"{name}: output std {h.data.std():.4f}, input-gradient norm {np.linalg.norm(h0.grad.data):.2e}")

# Exercises
# 1. Increase the stack to 16: how fast does NAL's signal shrink (roughly 0.5 per module?)
# 2. Try activation="channel" and "spatial" (Table 1): print each mask's range.
