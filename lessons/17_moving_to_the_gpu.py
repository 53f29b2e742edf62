"""Lesson 17: one source, two devices: the array module.

Files: minran/backend.py, minran/data/loader.py (prefetching), minran/__init__.py,
       minran/functional/pooling.py (the NumPy twin of the thread-per-output kernel)
Paper: none: the paper trained on GPUs; this is how minran is meant to follow.

Every op asks `xp = array_module(array)` and calls xp.matmul, xp.exp, ... so the same code
runs on NumPy arrays (CPU) and CuPy arrays (GPU). On the GPU the network's named ops go
further: each runs a hand-written CUDA kernel from the .cu file beside its .py file.

This lesson shows the switch itself, then the way of thinking a kernel needs (one thread
per output element), written in Python and checked against minran's NumPy op. Lesson 18
reads the real kernel and runs its CUDA source on this CPU, as every test run does.
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

# Thinking like a kernel. NumPy's max_pool2d (functional/pooling.py) loops over the kh*kw
# window offsets and handles every output pixel at once. A CUDA kernel turns this inside out:
# it launches one thread per output element, and thread number `tid` (blockIdx.x *
# blockDim.x + threadIdx.x in CUDA) unflattens its own (n, c, i, j), scans its window and
# writes one value and one argmax. No thread writes where another does, so no atomics.
def max_pool_thread(tid, x, out, argmax, k, s, p):
    N, C, H, W = x.shape
    Ho, Wo = out.shape[2:]
    if tid >= out.size:               # the last block is only partly used
        return
    j = tid % Wo
    i = tid // Wo % Ho
    c = tid // (Wo * Ho) % C
    n = tid // (Wo * Ho * C)
    best, best_k = -np.inf, 0
    for di in range(k):
        for dj in range(k):
            h, w = i * s - p + di, j * s - p + dj
            if 0 <= h < H and 0 <= w < W and x[n, c, h, w] > best:   # padding is -inf
                best, best_k = x[n, c, h, w], di * k + dj
    out[n, c, i, j], argmax[n, c, i, j] = best, best_k


out = np.empty((1, 2, 4, 4), np.float32)
argmax = np.empty(out.shape, np.int32)
threads_per_block = 128
blocks = (out.size + threads_per_block - 1) // threads_per_block   # the launch configuration
for tid in range(blocks * threads_per_block):                       # the GPU runs these at once
    max_pool_thread(tid, x.data, out, argmax, k=3, s=2, p=1)
same = np.array_equal(out, F.max_pool2d(x, 3, 2, 1).data)
print(f"{blocks} block of {threads_per_block} threads, one per output: equals minran's NumPy"
      " max_pool2d:", same)
assert same

# Exercises
# 0. Write max pooling's backward the way its kernel does: one thread per INPUT pixel, which
#    gathers from the windows that cover it (a gather, so no two threads write one place and
#    no atomics are needed). Fill in lessons/exercises/17_max_pool_backward_thread.py, then
#    run `python -m lessons.check 17` (from the repository's root).
# 1. Read backend.to_device: which copies happen when a batch moves to the GPU?
# 2. Find an op in minran/functional that would not run on CuPy as written.
