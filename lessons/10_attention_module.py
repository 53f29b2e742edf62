"""Lesson 10: the attention module: trunk, soft mask, and attention residual learning.

Files: minran/models/attention_module.py, minran/functional/attention.py, minran/functional/activation.py,
       minran/functional/attention.cu, minran/functional/activation.cu (their CUDA twins),
       minran/reference/attention.py, minran/reference/activation.py (their plain versions)
Paper: Sec. 3.1 (Eq. 1 and 3), 3.3, Fig. 2; Table 3 (ARL vs NAL).

The trunk T processes features; the soft mask M in [0, 1] comes from a bottom-up top-down
branch of the same input. Naive attention learning outputs M * T: every module multiplies
each feature by a number between 0 and 1, so a stack of modules fades the features (and
their gradient) geometrically. Attention residual learning outputs (1 + M) * T: the gain is
between 1 and 2, so every trunk feature passes at least unchanged and the mask can only
emphasise. Bare combines in a stack then grow the signal (by at most 2 per module); in the
network the next residual unit's batch norm divides a scale away, but it cannot bring back
features that NAL's masks have driven to zero.

Every mask in this lesson is untrained: the modules are freshly initialised, nothing is
learned, and the numbers below show what stacking masks does to a signal, not how trained
networks compare. Lesson 16 trains networks both ways and compares them.
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

# The deep-stack argument, numerically, with untrained masks: 8 modules in a row, ARL
# against NAL. Bare combine steps, as in Eq. 1 and 3, with each module's input as its trunk
# (T = h), isolate what stacking masks does: every feature ends multiplied by the product of
# its 8 gains.
def rms(t):
    return float(np.sqrt((t.data.astype(np.float64) ** 2).mean()))


stacks = {}
for residual in (True, False):
    minran.manual_seed(1)
    stack = [AttentionModule(8, poolings=1, residual=residual) for _ in range(8)]
    h0 = Tensor(np.random.default_rng(1).standard_normal((4, 8, 8, 8)).astype(np.float32),
                requires_grad=True)
    h, gains = h0, []
    for m in stack:
        out = F.attention_combine(m.soft_mask(h), h, residual=residual)
        gains.append(rms(out) / rms(h))
        h = out
    (h * h).mean().backward()
    feature_gain = h.data / h0.data    # the product of the 8 masks' gains, feature by feature
    stacks["ARL" if residual else "NAL"] = dict(
        gains=gains, total=rms(h) / rms(h0), feature_gain=(float(feature_gain.min()), float(feature_gain.max())),
        grad_norm=float(np.linalg.norm(h0.grad.data)))
    name = "ARL (1+M)*T" if residual else "NAL  M*T   "
    print(f"{name}: RMS gain per untrained module {min(gains):.2f} to {max(gains):.2f}, over 8 "
          f"modules {rms(h) / rms(h0):.3g}; each feature's gain in [{feature_gain.min():.2g}, "
          f"{feature_gain.max():.2g}]; input-gradient norm {np.linalg.norm(h0.grad.data):.2e}")

# Exercises
# 1. Increase the stack to 16: how fast does NAL's signal shrink, and ARL's grow?
# 2. Try activation="channel" and "spatial" (Table 1): print each mask's range.
