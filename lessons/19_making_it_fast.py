"""Lesson 19: making it fast: every core on the CPU, few launches on the GPU, and a CUDA graph.

Files: minran/parallel.py (threads and slices), minran/optim/flat.py (flat parameters),
       minran/step.py and minran/step.cu (one training step, its totals in one launch),
       minran/step_counts.py (what a step asks of a GPU, counted),
       minran/graph.py (the step as a CUDA graph), minran/cuda/standin.py (a GPU posing on
       the CPU, which counts), minran/cuda/blas.py (cuBLAS called directly)
Paper: -

The other lessons keep the plain idea in front. This one gathers what makes the same ideas
fast, and measures each. Everything here runs on the CPU: the GPU parts run on minran's
stand-in GPU (minran/cuda/standin.py), which takes minran's `--device gpu` path with NumPy
memory posing as GPU memory and counts everything a real GPU would be asked to do.
"""
import time

import numpy as np

import minran
import minran.functional as F
from minran import Tensor, backend, parallel
from minran.cuda import standin
from minran.graph import GraphStep
from minran.models import attention56
from minran.optim import SGD
from minran.step import TrainingStep

rng = np.random.default_rng(0)

# 1. On the CPU: every core. NumPy lets go of Python's lock inside its loops, so a few
# threads can run NumPy on different slices of one batch at the same moment. conv2d (and
# batch norm, pooling, the elementwise ops) cut the batch into slices of about 1 MiB of work
# each (parallel.slices). The cut depends on the shapes alone, never on the number of
# threads, so the answer does not either:
big = Tensor(rng.standard_normal((64, 3, 16, 16)))
w = Tensor(rng.standard_normal((4, 3, 3, 3)))
with parallel.using(1):
    one = F.conv2d(big, w, padding=1).data
with parallel.using(4):
    four = F.conv2d(big, w, padding=1).data
slices = len(parallel.slices(big.data, axis_bytes=8 * 27 * 256))
print(slices, "slices; 1 thread == 4 threads, bit for bit:", np.array_equal(one, four))

# 2. Flat parameters. An optimiser step updates every parameter tensor: Attention-92 has
# 584 of them. One by one, that is 584 kernel launches on a GPU (and 584 times a handful of
# small NumPy calls on a CPU). optim/flat.py packs them into one buffer (each parameter keeps
# its shape and name: it is a view into the buffer) and their gradients into another, which
# the ops write straight into, so the step is one pass: one launch. The same numbers:
def sgd_steps(flat):
    minran.manual_seed(0)
    net = minran.nn.Sequential(minran.nn.Conv2d(3, 4, 3, padding=1), minran.nn.BatchNorm2d(4),
                               minran.nn.ReLU(), minran.nn.GlobalAvgPool(), minran.nn.Linear(4, 3))
    opt = SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4,
              flat=flat)
    for _ in range(3):
        loss = F.cross_entropy(net(Tensor(big.data[:8].astype(np.float32))), np.arange(8) % 3)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.data.copy() for p in net.parameters()]


same_sgd = all(np.array_equal(a, b) for a, b in zip(sgd_steps(True), sgd_steps(False)))
print("flat SGD == SGD parameter by parameter, bit for bit:", same_sgd)
with standin.device(kernels="count") as gpu:
    params = [Tensor(backend.cupy.zeros(10, np.float32), requires_grad=True) for _ in range(584)]
    for p in params:
        p.grad = Tensor(backend.cupy.ones(10, np.float32))
    per_tensor, flat_opt = SGD(params, lr=0.1, flat=False), None
    start = gpu.snapshot()
    per_tensor.step()
    launches_per_tensor = gpu.since(start).launches["kernel:sgd_update"]
    flat_opt = SGD(params, lr=0.1)
    for p in params:
        p.grad = Tensor(p._grad_slot)   # an op would have written it there
    start = gpu.snapshot()
    flat_opt.step()
    launches_flat = gpu.since(start).launches["kernel:sgd_update"]
print(f"SGD over 584 parameter tensors: {launches_per_tensor} launches one by one, "
      f"{launches_flat} over the flat buffer")

# 3. What one training step asks of a GPU. Count it on the stand-in, first with minran's
# kernels switched off (every op as plain CuPy array code, as lesson 17 writes ops), then
# with them on (the .cu twin of each op, batch norm's statistics and running statistics in
# one launch each way, the products as one cuBLAS call each, the step's totals in one).
def launches_of_one_step(kernels_on):
    from minran.cuda import kernels
    with standin.device(kernels="count") as gpu, kernels.use("auto" if kernels_on else "off"):
        minran.manual_seed(0)
        model = attention56().to(device="gpu")
        step = TrainingStep(model, SGD(model.parameters(), lr=0.1, momentum=0.9))
        x = rng.standard_normal((8, 3, 32, 32)).astype(np.float32)
        y = rng.integers(0, 10, 8)
        step(backend.cupy.asarray(x), backend.cupy.asarray(y))   # a first step warms up
        start = gpu.snapshot()
        step(backend.cupy.asarray(x), backend.cupy.asarray(y))
        return gpu.since(start)


plain, mine = launches_of_one_step(False), launches_of_one_step(True)
print(f"\nAttention-56, batch 8, one training step on the stand-in GPU:\n"
      f"{'':<32}{'kernels off':>12}{'kernels on':>12}")
for source in ("kernel", "cupy", "cublas"):
    print(f"{'  launches: ' + source:<32}{plain.by_source()[source]:>12,}"
          f"{mine.by_source()[source]:>12,}")
print(f"{'  GPU launches in all':<32}{plain.gpu_launches:>12,}{mine.gpu_launches:>12,}")
print(f"{'  device calls from Python':<32}{plain.device_calls:>12,}{mine.device_calls:>12,}")
print(f"{'  host reads (waits)':<32}{plain.host_reads:>12,}{mine.host_reads:>12,}")
# `python benchmarks/launches.py --arch attention92 --batch 64` prints the same table for
# the paper's network; tests/test_gpu_step.py holds it under 1,500 launches and calls.

# 4. Why a GPU waits for Python. Every launch is issued by the host: Python works out the
# arguments and calls the driver, a few microseconds each. Time the host's side of one step
# (the stand-in with kernels="count" runs no kernel and no product, so what is left is the
# issuing, plus the stand-in's own bookkeeping, which CuPy does faster):
with standin.device(kernels="count"):
    minran.manual_seed(0)
    model = attention56().to(device="gpu")
    step = TrainingStep(model, SGD(model.parameters(), lr=0.1, momentum=0.9))
    x = rng.standard_normal((8, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    step(backend.cupy.asarray(x), backend.cupy.asarray(y))
    start = time.perf_counter()
    for _ in range(3):
        step(backend.cupy.asarray(x), backend.cupy.asarray(y))
    eager_ms = (time.perf_counter() - start) / 3 * 1000

    # 5. A CUDA graph. The GPU can record a stream's work instead of running it (a capture)
    # and replay the record with one call. GraphStep records one step (after a warm-up
    # step), then for every batch copies it into the buffers the record reads and replays:
    replay = GraphStep(step, x.shape, x.dtype, y.dtype)
    with replay.stream:
        replay(x, y)   # warm-up
        replay(x, y)   # capture, and the first replay
        start = time.perf_counter()
        for _ in range(3):
            replay(x, y)
        graph_ms = (time.perf_counter() - start) / 3 * 1000
print(f"\nthe host's side of a step: eager {eager_ms:.0f} ms ({eager_ms * 1000 / mine.gpu_launches:.0f}"
      f" us per launch); replayed as a graph {graph_ms:.1f} ms (three device calls: two copies"
      f" of the batch and the launch of the graph)")
# A GPU that needs less time for a step's work than the host needs to issue it waits for
# Python: with the graph, it does not. What the record froze is exactly what it was given:
# the learning rate therefore lives in device memory (SGD._lr_array), which the kernel reads
# at every replay, and the batch always in the same buffers (GraphStep.x, .y).

# The replay is the eager step, to the last bit: a tiny network in float64, its kernels run
# through the emulator of lesson 18, four steps each way with the lr cut after two.
def four_steps(graph):
    with standin.device(kernels="emulate"):
        minran.manual_seed(0)
        model = attention56(widths=(4, 8, 8, 8)).to(device="gpu", dtype=np.float64)
        opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
        step = TrainingStep(model, opt)
        replay = GraphStep(step, (2, 3, 16, 16), np.float64, np.int64) if graph else None
        stream = replay.stream if graph else backend.cupy.cuda.Stream.null
        losses = []
        with stream:
            for i in range(4):
                x = np.random.default_rng(i).standard_normal((2, 3, 16, 16))
                y = np.array([i % 10, (i + 3) % 10])
                loss = (replay(x, y) if graph else
                        step(backend.cupy.asarray(x), backend.cupy.asarray(y)))[0]
                losses.append(loss.get().item())
                opt.lr = 0.1 if i < 1 else 0.01
        return losses


eager_losses, graph_losses = four_steps(False), four_steps(True)
print("graph replay == eager step, four losses bit for bit:", graph_losses == eager_losses)

# Exercises
# 1. Count the launches of step 3 with --widths 4,8,8,8 and with the full width: which grow
#    with the width, and which with the depth only?
# 2. Give SGD a Python number as the lr inside the kernel (sgd.cu) and run the replay check:
#    which step goes wrong first, and why?
# 3. benchmarks/launch_cost.py times the launcher alone (the device call stubbed out): how
#    much of the eager step's host time above is the launcher's?
