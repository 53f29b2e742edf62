"""Batches for training and evaluation: shuffled each epoch, augmented on the host, and on
the GPU prepared one batch ahead in a background thread while the current step runs.

The thread only works on the host. The copy to the GPU is made by the thread that consumes
the batch, on its current stream, so that it is ordered with the work that uses it (a copy
made from the background thread would go to that thread's stream, which nothing orders with
the training's). With device="gpu" and copy=False the batches stay on the host, for a CUDA
graph to copy into its own buffers (graph.py)."""
import queue
import threading

import numpy as np

from .. import backend
from ..tensor import Tensor
from .augment import augment as augment_batch


class BatchIterator:
    def __init__(self, images, labels, batch_size, rng, shuffle=True, augment=False,
                 device="cpu", drop_last=False, prefetch=None, copy=True):
        if len(images) != len(labels):
            raise ValueError(f"BatchIterator: {len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels
        self.batch_size, self.rng, self.shuffle = batch_size, rng, shuffle
        self.augment, self.device, self.drop_last = augment, device, drop_last
        self.prefetch = device == "gpu" if prefetch is None else prefetch
        self.copy = copy

    def __len__(self):
        n = len(self.images) // self.batch_size
        return n if self.drop_last or len(self.images) % self.batch_size == 0 else n + 1

    def _prepare(self, index):
        x = self.images[index]
        if self.augment:
            x = augment_batch(x, self.rng)
        return np.ascontiguousarray(x), np.ascontiguousarray(self.labels[index])

    def _deliver(self, batch):
        """(Tensor(x), y), copied to the GPU here, in the consuming thread (see above)."""
        x, y = batch
        if self.device == "gpu" and self.copy:
            x, y = backend.to_device(x, "gpu"), backend.to_device(y, "gpu")
        return Tensor(x), y

    def _indices(self):
        order = self.rng.permutation(len(self.images)) if self.shuffle else np.arange(len(self.images))
        for i in range(len(self)):
            yield order[i * self.batch_size:(i + 1) * self.batch_size]

    def __iter__(self):
        if not self.prefetch:
            for index in self._indices():
                yield self._deliver(self._prepare(index))
            return
        # One batch ahead: the thread augments while the GPU computes.
        ready = queue.Queue(maxsize=2)
        done = object()
        stop = threading.Event()

        def work():
            try:
                for index in self._indices():
                    if stop.is_set():
                        return
                    ready.put(self._prepare(index))
                ready.put(done)
            except BaseException as error:  # hand it to the consumer
                ready.put(error)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        try:
            while True:
                item = ready.get()
                if item is done:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield self._deliver(item)
        finally:
            stop.set()
            while thread.is_alive():  # drain so the thread can finish its last put
                try:
                    ready.get(timeout=0.1)
                except queue.Empty:
                    pass
            thread.join()
