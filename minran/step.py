"""One training step: forward, loss, backward, SGD, and the epoch's running totals.

    step = TrainingStep(model, optimizer)
    step.start_epoch(iteration)
    loss, logits = step(x, y)            # device arrays: reading them waits for the GPU
    loss_sum, correct, images, next_step, first_bad, bad_loss = step.totals   # now and then

This is the whole of what the trainer does per batch. It is written once, here, so that the
GPU can run it as a CUDA graph (graph.py) and so that what one step asks of a GPU can be
counted (step_counts.py). The totals stay on the device and are updated by the
step itself (one launch on the GPU, step.cu), so that watching the training (the mean loss,
the accuracy, a loss that stops being a number) costs the host no wait.
"""
import numpy as np

from . import backend
from . import functional as F
from .cuda import kernels
from .tensor import Tensor

CUDA = kernels.Source(__file__)   # step.cu: the totals' update as one launch


class TrainingStep:
    """forward, cross-entropy, backward and the optimiser's update for one batch, then the
    batch added into `totals` (see the module's docstring)."""

    LOSS_SUM, CORRECT, IMAGES, NEXT_STEP, FIRST_BAD, BAD_LOSS = range(6)

    def __init__(self, model, optimizer):
        self.model, self.optimizer = model, optimizer
        self.totals = optimizer.params[0].xp.zeros(6, dtype=np.float64)
        self.start_epoch(1)

    def start_epoch(self, next_step):
        """Totals from zero, numbering the steps from `next_step` (the run's iteration after
        the step, so that a loss that stops being a number is reported with it)."""
        self.totals.fill(0)
        self.totals[self.NEXT_STEP] = next_step
        self.totals[self.FIRST_BAD] = -1

    def __call__(self, x, y):
        x = x if isinstance(x, Tensor) else Tensor(x)
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        add_to_totals(self.totals, loss.data, logits.data, y)
        return loss.data, logits.data


def add_to_totals(totals, loss, logits, labels):
    """totals += this batch (the layout: step.cu), without reading anything back."""
    if kernels.active(logits):
        N, K = logits.shape
        CUDA.launch("step_totals", kernels.contiguous(loss.reshape(1)),
                    kernels.contiguous(logits),
                    kernels.contiguous(labels.astype(np.int64, copy=False)), totals, N, K,
                    blocks=1)
        return
    xp = backend.array_module(logits)
    totals[0] += loss * len(labels)
    totals[1] += (logits.argmax(axis=1) == labels).sum()
    totals[2] += len(labels)
    bad = (totals[4] < 0) & ~xp.isfinite(loss)
    totals[4] = xp.where(bad, totals[3], totals[4])
    totals[5] = xp.where(bad, loss, totals[5])
    totals[3] += 1


class Progress:
    """A step's totals as the host last saw them, read without waiting for the GPU: each
    `update()` starts a copy of the totals into host memory and returns the one the previous
    update started, once it has arrived (None until one has). `final()` waits for them.
    On the CPU the totals are simply there."""

    def __init__(self, totals, stream=None):
        self.totals, self.stream = totals, stream
        self.gpu = backend.is_device_array(totals)
        if self.gpu:
            cupy = backend.cupy
            pinned = cupy.cuda.alloc_pinned_memory(totals.nbytes)   # for a copy in flight
            self.host = np.frombuffer(pinned, dtype=totals.dtype, count=totals.size)
            self.event = self.latest = None

    def update(self):
        if not self.gpu:
            return self.totals.copy()
        if self.event is not None and self.event.done:
            self.latest, self.event = self.host.copy(), None
        if self.event is None:
            stream = self.stream or backend.cupy.cuda.get_current_stream()
            self.totals.get(stream=stream, out=self.host)
            self.event = stream.record()
        return self.latest

    def final(self):
        if not self.gpu:
            return self.totals.copy()
        if self.event is not None:
            self.event.synchronize()
        self.event = None
        self.latest = backend.to_numpy(self.totals)   # on the current stream: it waits
        return self.latest
