"""Lesson 9: the pre-activation bottleneck residual unit.

Files: minran/models/residual_unit.py, minran/nn/layers.py, minran/nn/init.py
Paper: Sec. 3 builds everything from these units (He et al. 2016, "Identity Mappings").
"""
import numpy as np

import minran
from minran import Tensor
from minran.models import ResidualUnit

minran.manual_seed(0)
unit = ResidualUnit(64, 64)
print(unit)
C = 64
by_hand = 3 * C + 17 * C * C // 16   # BN 2C + C/2 + C/2, convs C^2/4 + 9C^2/16 + C^2/4
print("parameters:", unit.num_parameters(), "by hand:", by_hand)

down = ResidualUnit(64, 128, stride=2)
print("with a stride or a width change the shortcut is a projection:", down.shortcut)
x = Tensor(np.random.default_rng(0).standard_normal((2, 64, 16, 16)).astype(np.float32))
print("shapes:", x.shape, "->", down(x).shape)

# What identity shortcuts do to the signal's scale. A unit outputs x + F(x), and its branch
# F begins with a batch norm, so whatever x's scale, F(x) comes out with about unit variance
# (the Kaiming-initialised convs keep it through each relu). Branch and shortcut add, so the
# variance grows by about 1 per unit: linearly, and the std only as sqrt(1 + units). Nothing
# explodes or vanishes with depth, and every unit's branch still sees a normalised input.
h = x
variances = [float(x.data.var())]
stack = [ResidualUnit(64, 64) for _ in range(20)]
for u in stack:
    h = u(h)
    variances.append(float(h.data.var()))
for depth in (0, 5, 10, 20):
    print(f"after {depth:2d} units: variance {variances[depth]:5.2f} (1 + units = {1 + depth:2d}), "
          f"std {variances[depth] ** 0.5:.2f}")
added = np.diff(variances)
print(f"variance each unit added: {added.min():.2f} to {added.max():.2f}, mean {added.mean():.2f}")

# Exercises
# 1. Why is there no bias on any convolution? (What does the next BN do to a bias?)
# 2. Change kaiming_normal's 2.0 to 1.0 in minran/nn/init.py and rerun the stack: what does
#    each unit add now, and why half?
# 3. Remove the shortcut (return h alone) and rerun: the variance stays near 1. So why have
#    shortcuts at all? (Think of the gradient: d(x + F(x))/dx = 1 + dF/dx.)
