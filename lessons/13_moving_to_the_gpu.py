"""Lesson 13: one source, two devices: the array module.

Files: minran/backend.py, minran/data/loader.py (prefetching), minran/__init__.py
Paper: none: the paper trained on GPUs; this is how minran is meant to follow.

Every op asks `xp = array_module(array)` and calls xp.matmul, xp.exp, ... so the same code
runs on NumPy arrays (CPU) and CuPy arrays (GPU). Where CuPy has no equivalent or is slow,
the GPU gets a hand-written CUDA kernel next to the NumPy version.

Status, honestly: minran's CUDA kernels are not written yet. The project had no GPU to run
them on, and a kernel nobody ran is not something to teach from. This lesson shows the
switch itself, and runs on the GPU only when CuPy finds one.
"""
import numpy as np

import minran.functional as F
from minran import Tensor, backend

x = Tensor(np.random.default_rng(0).standard_normal((1, 2, 8, 8)).astype(np.float32))
print("on the CPU, ops use:", x.xp.__name__)
print("a GPU here?", backend.gpu_available())
if backend.gpu_available():
    y = F.max_pool2d(x.to("gpu"), 3, 2, 1)
    print("the same max_pool2d on", y.device, "equals the CPU result:",
          np.allclose(y.numpy(), F.max_pool2d(x, 3, 2, 1).data))
else:
    print("no CuPy or no CUDA device: `pip install -e '.[gpu]'` on a machine with an NVIDIA GPU")

# Exercises
# 1. Read backend.to_device: which copies happen when a batch moves to the GPU?
# 2. Find an op in minran/functional that would not run on CuPy as written.
