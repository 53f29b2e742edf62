"""What one training step asks of a GPU, counted on the stand-in GPU (cuda/standin.py).

    with standin.device(kernels="count"):
        counts = count_step("attention92", 64)

`benchmarks/launches.py` prints these counts as a table, `tests/test_gpu_step.py` holds them
to their budgets, and lesson 19 reads them.
"""
import numpy as np

from . import backend
from .cuda import standin
from .graph import GraphStep
from .models import build_model
from .nn.init import manual_seed
from .optim import SGD, MultiStepSchedule
from .step import TrainingStep
from .tensor import Tensor


def count_step(arch, batch, dtype="float32", widths=None, graph=True, seed=0):
    """What one training step of `arch` at `batch` asks of the GPU, run on the stand-in
    (call it inside `standin.device()`): the counts of an eager step after a warm-up step,
    and, with graph=True, of a step replayed as a CUDA graph; plus the forward's graph ops."""
    def setup():
        manual_seed(seed)
        model = build_model(arch, widths=widths).to(device="gpu", dtype=np.dtype(dtype))
        model.train()
        optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                        weight_decay=1e-4)
        return model, optimizer, MultiStepSchedule(optimizer, 0.1, [64_000, 96_000])

    rng = np.random.default_rng(seed)
    size = 224 if arch.endswith("imagenet") else 32
    images = rng.standard_normal((batch, 3, size, size)).astype(dtype)
    labels = rng.integers(0, 10, batch)
    model, optimizer, schedule = setup()
    step = TrainingStep(model, optimizer)
    x, y = backend.cupy.asarray(images), backend.cupy.asarray(labels)
    step(x, y)   # warm-up: first-call work (momentum buffers, compiling) happens here
    schedule.step()
    forward = _forward_ops(model, x)
    before = standin._state.counts.copy()
    del x, y   # the trainer's batches come one at a time: the last one is gone by now
    x, y = backend.cupy.asarray(images), backend.cupy.asarray(labels)
    step(x, y)
    schedule.step()
    eager = _summary(standin._state.counts.since(before))
    replayed = None
    if graph:
        model, optimizer, schedule = setup()
        replay = GraphStep(TrainingStep(model, optimizer), images.shape, images.dtype,
                           labels.dtype)
        for _ in range(2):   # the warm-up, then the capture and its first replay
            replay(images, labels)
            schedule.step()
        before = standin._state.counts.copy()
        replay(images, labels)
        schedule.step()
        replayed = _summary(standin._state.counts.since(before))
    return {"arch": arch, "batch": batch, "dtype": dtype, "forward_ops": forward,
            "eager": eager, "graph": replayed}


def _forward_ops(model, x):
    """Graph ops one forward pass records, by op name (no device work is counted here)."""
    ops = {}
    real = Tensor._from_op

    def counting(cls, data, parents, backward, op):
        ops[op] = ops.get(op, 0) + 1
        return real.__func__(cls, data, parents, backward, op)
    saved = standin._state.counts.copy()
    Tensor._from_op = classmethod(counting)
    try:
        model(Tensor(x))
    finally:
        Tensor._from_op = real
        standin._state.counts.__dict__.update(saved.__dict__)
    return ops


def _summary(counts):
    sources = counts.by_source()
    inside = sum(n for label, n in counts.launches.items()
                 if label in ("cupy:matmul pointer arrays", "cupy:matmul operand copy"))
    return {"kernel": sources["kernel"], "cupy": sources["cupy"], "cupy_inside": inside,
            "cublas": sources["cublas"], "memory": sources["memory"],
            "gpu_launches": counts.gpu_launches, "device_calls": counts.device_calls,
            "allocations": counts.allocations, "new_memory": counts.new_memory,
            "host_waits": counts.host_reads + counts.synchronizations,
            "host_to_device": counts.host_to_device, "launches": dict(counts.launches)}
