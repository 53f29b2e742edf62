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

# Identity shortcuts keep the signal: a stack of 20 units at initialisation barely changes scale.
h = x
stack = [ResidualUnit(64, 64) for _ in range(20)]
for u in stack:
    h = u(h)
print(f"input std {x.data.std():.2f}, after 20 units {h.data.std():.2f}")

# Exercises
# 1. Why is there no bias on any convolution? (What does the next BN do to a bias?)
# 2. Change kaiming_normal's 2.0 to 1.0 in minran/nn/init.py and rerun the stack.
