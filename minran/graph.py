"""The training step as a CUDA graph: recorded once, then replayed for every full batch.

A training step of Attention-92 is about 1,500 kernel launches (benchmarks/launches.py), and
each costs the host a few microseconds of Python before the GPU sees it: the GPU would wait
for Python most of the time. A CUDA graph records the launches of one step once, with the
memory and the numbers each was given, and replays all of them with one call.

What that asks of the step:
  - the batch must always be in the same memory: it is copied into static buffers (`x`,
    `y`) before each replay; augmentation happens on the host, outside the graph;
  - anything that changes from step to step must be read from device memory by the kernels,
    never passed as a Python number (a number is frozen into the graph when it is
    recorded): the learning rate lives in `optimizer._lr_array` (optim/sgd.py);
  - the memory the recorded step used must stay its own between replays: the warm-up and the
    capture allocate from a memory pool of their own, used by nothing else;
  - nothing may read the device during the capture (CUDA refuses; there is no such read in
    the step: labels are checked at load, progress is read between steps);
  - the batch must have the recorded shape: the last, smaller batch of an epoch runs eagerly,
    so iterations, schedule and results are exactly those of an eager run.

The first full batch runs eagerly (a warm-up: compiling kernels, creating cuBLAS's handle and
the momentum buffers happen then, outside the capture); the second is recorded and replayed;
every later one is only replayed. Work of the trainer's (learning-rate changes, reading the
progress totals, evaluation) runs on the same stream, `stream`, so it is ordered with the
replays.
"""
from . import backend
from .step import TrainingStep


class GraphStep:
    """A TrainingStep for batches of one shape, replayed as a CUDA graph (on CuPy, or on the
    stand-in GPU, which records and replays the same way: cuda/standin.py)."""

    def __init__(self, step, x_shape, x_dtype, y_dtype, stream=None):
        if not isinstance(step, TrainingStep):
            raise TypeError("GraphStep: give it a TrainingStep")
        cupy = backend.cupy
        self.step = step
        self.x = cupy.empty(x_shape, dtype=x_dtype)   # the static input buffers
        self.y = cupy.empty(x_shape[:1], dtype=y_dtype)
        # Capture needs a stream of its own (not the legacy default one); the trainer gives
        # the one it runs everything on.
        self.stream = stream if stream is not None else cupy.cuda.Stream(non_blocking=True)
        self.pool = cupy.cuda.MemoryPool()   # the recorded step's memory, and nothing else's
        self.graph = None
        self.replays = 0
        self._warmed = False
        self._outputs = None
        # The model, the optimiser's state and the totals were written on other streams (the
        # legacy default one, mostly): make sure all of that is done before this stream,
        # which nothing orders with them, reads any of it.
        cupy.cuda.runtime.deviceSynchronize()

    def fits(self, x):
        return tuple(x.shape) == tuple(self.x.shape)

    def __call__(self, x, y):
        """One step on the host batch (x, y), which must have the recorded shape; returns the
        step's (loss, logits) device arrays (overwritten by the next replay)."""
        cupy = backend.cupy
        if not self.fits(x):
            raise ValueError(f"GraphStep: a batch of shape {tuple(x.shape)}, but the step was "
                             f"recorded for {tuple(self.x.shape)}; run other shapes eagerly")
        with self.stream:
            self.x.set(x, stream=self.stream)
            self.y.set(y, stream=self.stream)
            if self.graph is None:
                with cupy.cuda.using_allocator(self.pool.malloc):
                    if not self._warmed:
                        self._warmed = True
                        return self.step(self.x, self.y)
                    self._capture()
            self.graph.launch(stream=self.stream)
            self.replays += 1
        return self._outputs

    def _capture(self):
        self.stream.begin_capture()
        try:
            outputs = self.step(self.x, self.y)
        except BaseException:
            try:
                self.stream.end_capture()
            except Exception:   # the capture was invalidated by the same error
                pass
            raise
        self.graph = self.stream.end_capture()
        self._outputs = outputs
