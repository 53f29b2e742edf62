"""Lesson 18: a real CUDA kernel beside its NumPy twin, run on your CPU.

Files: minran/cuda/ (kernels.py, emulator.h, emulator.py, nvrtc.py, __main__.py),
       minran/functional/pooling.cu, minran/functional/common.cuh
Paper: none: the paper trained on GPUs; this is how minran's GPU code is written and proven.

On a GPU every named op of the network runs a hand-written kernel from the .cu file beside
its .py file. This lesson reads one (max pooling), works out how it is launched, and runs
the kernel's own CUDA source here, on the CPU, through minran's emulator: the system C++
compiler builds the .cu file with a header that gives CUDA's names (threadIdx, blockIdx,
__syncthreads, __shared__) a CPU meaning, each CUDA thread running as a fiber.
"""
import pathlib
import re
import tempfile

import numpy as np

import minran.functional as F
from minran import Tensor
from minran.cuda import emulator, kernels
from minran.functional import pooling

if emulator.unavailable_reason():   # the emulator needs a C++ compiler (g++ or $CXX)
    raise SystemExit(f"this lesson runs CUDA code on the CPU, but {emulator.unavailable_reason()}")

# 1. The kernel. NumPy's max_pool2d (pooling.py) loops over the kh*kw window offsets and
# handles every output pixel at once. The kernel turns that inside out: one thread per
# output pixel walks its own window. Here it is, read from pooling.cu:
source = pooling.CUDA.path.read_text()
kernel = re.search(r"template <typename T>\n__global__ void max_pool2d_forward.*?\n}\n",
                   source, re.S).group(0)
print(kernel)

# 2. The launch arithmetic. The op asks for one thread per output element; threads come in
# blocks of kernels.BLOCK, so the grid has ceil(n / BLOCK) blocks and the last block is
# partly idle (those threads return at once: `if (index >= N*C*Ho*Wo) return;`).
# global_index() (common.cuh) is blockIdx.x * blockDim.x + threadIdx.x, and the thread
# unflattens it into (n, c, oh, ow) with % and /, as NumPy's ravel order lays them out.
x = Tensor(np.random.default_rng(0).standard_normal((2, 8, 9, 9)).astype(np.float32),
           requires_grad=True)
N, C, H, W = x.shape
Ho = Wo = (H + 2 * 1 - 3) // 2 + 1     # 3x3 windows, stride 2, padding 1: 9 -> 5
n = N * C * Ho * Wo
blocks = -(-n // kernels.BLOCK)
print(f"{n} output pixels -> {blocks} blocks of {kernels.BLOCK} threads, "
      f"{blocks * kernels.BLOCK - n} of them idle")
for thread in (0, 300, n - 1):
    ow, oh = thread % Wo, thread // Wo % Ho
    c, image = thread // (Wo * Ho) % C, thread // (Wo * Ho * C)
    print(f"thread {thread} (block {thread // kernels.BLOCK}, threadIdx.x "
          f"{thread % kernels.BLOCK}) computes output (n={image}, c={c}, oh={oh}, ow={ow})")

# 3. Run it. Inside kernels.use("emulate") every op on NumPy arrays launches its CUDA twin
# through the emulator instead of running its NumPy code. The emulator watches every load
# and store of the kernel: two threads touching one element (one of them writing) with no
# __syncthreads() between them is a race, reported with both threads' names; so is a read
# or write past an array's end. And each launch runs three times, the threads (and blocks)
# in forward, reverse and shuffled order, whose results must agree to the bit.
plain = F.max_pool2d(x, 3, 2, 1)
plain.backward(np.ones(plain.shape, np.float32))
plain_grad = x.grad.data.copy()
x.grad = None
with kernels.use("emulate"):
    y = F.max_pool2d(x, 3, 2, 1)
    y.backward(np.ones(y.shape, np.float32))
same_out = np.array_equal(y.data, plain.data)
print("the CUDA kernel's output equals NumPy's max_pool2d exactly:", same_out)

# 4. The backward as a gather. The obvious backward is a scatter: each output thread adds
# its gradient to its window's winner, but windows overlap (3x3, stride 2), so two threads
# could add to one pixel at once and would need atomics, whose order (and so whose float
# sum) changes from run to run. max_pool2d_backward instead gives each INPUT pixel a
# thread, which visits the few windows that cover it and adds the gradient of those whose
# argmax points at it, in a fixed order: no atomics, the same answer every run. Which
# windows cover it? For kernel row i, the output row oh with oh * stride + i - pad == h, if
# that is a whole number inside the output: output_reading() in common.cuh, shared with
# col2im and avg_pool2d_backward, the other gathers.
same_grad = np.array_equal(x.grad.data, plain_grad)
print("the gather backward equals NumPy's gradient exactly:", same_grad)
assert same_out and same_grad

# 5. What the emulator catches. This block sum forgets the barrier between its rounds, so a
# thread can read its neighbour's slot before the neighbour has written it: the race check
# names the element and the two threads.
racy = """
template <typename T>
__global__ void block_total(const T* x, T* total) {
    __shared__ T partial[MINRAN_BLOCK];
    partial[threadIdx.x] = x[threadIdx.x];
    __syncthreads();
    for (int stride = MINRAN_BLOCK / 2; stride > 0; stride /= 2)
        if ((int)threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
        // missing: __syncthreads();
    if (threadIdx.x == 0) total[0] = partial[0];
}
"""
with tempfile.TemporaryDirectory() as folder:
    path = pathlib.Path(folder) / "racy.cu"
    path.write_text(racy)
    values, total = np.arange(kernels.BLOCK, dtype=np.float32), np.zeros(1, np.float32)
    try:
        with kernels.use("emulate"):
            kernels.Source(path).launch("block_total", values, total, blocks=1)
        caught = None
    except emulator.EmulatorError as error:
        caught = str(error)
print("the racy kernel:", caught)
assert caught and "depends on the order" in caught

# On a machine with NVRTC (pip install -e ".[test]"), `python -m minran.cuda` compiles every
# kernel for the A100 (sm_80) and the H100 (sm_90) and prints its registers; on a GPU, the
# same ops run these kernels through CuPy, checked by the same tests (tests/kernels/).

# Exercises
# 1. Put the barrier back in `racy` (inside the loop, after the `if`) and run the lesson:
#    what does the emulator say now, and what is the total?
# 2. In pooling.cu change `value >= best` to `value > best` and run
#    tests/kernels/test_kernel_ops.py. Which of two equal values does the first loop keep
#    now, and which loop decides who gets the gradient? The only trace left is the sign of a
#    zero: 0.0 and -0.0 are equal but not the same bits, and the exact tests compare bits
#    (tiers.assert_same_bits). Which test fails, and on which drawn inputs? Then put `>=`
#    back and make the second loop pick the LAST offset that equals the maximum (count k
#    down from kh * kw - 1): which test fails now?
# 3. avg_pool2d_backward is a gather too. For a 3x3 window with stride 2, at most how many
#    windows can cover one input pixel? Count them in the kernel's two loops.
