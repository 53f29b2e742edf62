"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay.

The update is PyTorch's, so a run here and a run there can be compared step for step:
    g = grad + weight_decay * p
    buf = g                      (first step)
    buf = momentum * buf + g     (later steps)
    g = g + momentum * buf       (Nesterov)   or   g = buf   (plain momentum)
    p = p - lr * g

`_update` below is that update for one array, as plainly as NumPy allows. By default the
parameters are packed into one flat buffer (flat.py), so a step is `_update` once over all
of them, or one launch of its CUDA twin (sgd.cu), instead of once per parameter tensor.

Plain version, parameter by parameter: minran/reference/sgd.py.
"""
import numpy as np

from .. import backend
from ..cuda import kernels
from ..tensor import no_grad
from .flat import FlatParameters

CUDA = kernels.Source(__file__)   # sgd.cu: the same update as one fused pass


class SGD:
    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0, flat=True):
        self.params = list(params)
        if not self.params:
            raise ValueError("SGD: got an empty parameter list")
        for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"SGD: {name} must be a finite number >= 0, got {value}")
        if nesterov and momentum <= 0:
            raise ValueError("SGD: Nesterov momentum needs momentum > 0")
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay
        self.flat = None
        if flat and len({(p.device, p.dtype) for p in self.params}) == 1:
            self.flat = FlatParameters(self.params)
        self.buffers = [None] * len(self.params)
        self._flat_buffer = None
        # The learning rate also lives in device memory, where the kernel reads it: a CUDA
        # graph replays a launch with the numbers it was captured with, so a Python number
        # would freeze the lr of the step that was captured (see minran/graph.py).
        self._lr_array = self.params[0].xp.zeros(1, dtype=self.params[0].dtype)
        self.lr = lr

    @property
    def lr(self):
        return self._lr

    @lr.setter
    def lr(self, value):
        if value != getattr(self, "_lr", None):   # a fill is a launch on the GPU
            self._lr_array.fill(value)
        self._lr = value

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        with no_grad():
            if type(self._lr_array) is not type(self.params[0].data):   # the model moved
                self._lr_array = self.params[0].xp.full(1, self._lr, dtype=self.params[0].dtype)
            if self.flat is not None and self.flat.intact() and self.flat.gather_grads():
                self._flat_step()
                return
            for i, p in enumerate(self.params):
                if p.grad is None:
                    continue
                self.buffers[i] = self._update(p.data, p.grad.data, self.buffers[i])

    def _flat_step(self):
        """`_update` once over the flat buffers. The momentum buffer is flat too; the
        per-parameter `buffers` (what state_dict saves) are views of it."""
        flat, first = self.flat, False
        if self.momentum and self._flat_buffer is None:
            started = [b is not None for b in self.buffers]
            if any(started) and not all(started):   # a mix: one by one, as without flat
                for i, p in enumerate(self.params):
                    self.buffers[i] = self._update(p.data, p.grad.data, self.buffers[i])
                return
            first = not any(started)
            self._flat_buffer = self.params[0].xp.empty_like(flat.data)
            for b, p, offset in zip(self.buffers, self.params, flat.offsets):
                if b is not None:   # loaded from a checkpoint
                    self._flat_buffer[offset:offset + p.size] = b.reshape(-1)
            self.buffers = [self._flat_buffer[o:o + p.size].reshape(p.shape)
                            for p, o in zip(self.params, flat.offsets)]
        if kernels.active(flat.data):
            CUDA.launch("sgd_update", flat.data, flat.grad,
                        self._flat_buffer if self.momentum else flat.data, self._lr_array,
                        flat.size, self.momentum, self.weight_decay, int(self.nesterov),
                        int(first), threads=flat.size)
        else:
            self._update(flat.data, flat.grad, None if first else self._flat_buffer,
                         out_buffer=self._flat_buffer)

    def _update(self, p, grad, buf, out_buffer=None):
        """PyTorch's update of one array p (in place); returns the momentum buffer."""
        if kernels.active(p):
            return self._update_cuda(p, grad, buf)
        g = grad
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            if buf is None:
                if out_buffer is not None:
                    out_buffer[...] = g
                    buf = out_buffer
                else:
                    buf = g.copy()
            else:
                buf *= self.momentum
                buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g   # in place: the Parameter object never changes
        return buf

    def _update_cuda(self, p, grad, buf):
        first = self.momentum and buf is None
        if first:
            buf = backend.array_module(p).empty_like(p)
        # Without momentum the kernel never touches its buffer argument: pass p itself.
        CUDA.launch("sgd_update", p, kernels.contiguous(grad), buf if self.momentum else p,
                    self._lr_array, p.size, self.momentum, self.weight_decay,
                    int(self.nesterov), int(bool(first)), threads=p.size)
        return buf if self.momentum else None

    def state_dict(self):
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay,
                "buffers": [None if b is None else backend.to_numpy(b).copy()
                            for b in self.buffers]}

    def load_state_dict(self, state):
        if len(state["buffers"]) != len(self.params):
            raise ValueError(f"SGD.load_state_dict: state has {len(state['buffers'])} momentum "
                             f"buffers, the optimiser has {len(self.params)} parameters")
        for i, (p, b) in enumerate(zip(self.params, state["buffers"])):   # before any change
            if b is not None and tuple(np.shape(b)) != tuple(p.shape):
                raise ValueError(f"SGD.load_state_dict: momentum buffer {i} has shape "
                                 f"{tuple(np.shape(b))} in the state, but its parameter has "
                                 f"shape {tuple(p.shape)}")
        self.lr, self.momentum = state["lr"], state["momentum"]
        self.nesterov, self.weight_decay = state["nesterov"], state["weight_decay"]
        # A copy: two optimisers loaded from one state must not share momentum buffers.
        buffers = [None if b is None else p.xp.array(b, dtype=p.dtype)
                   for p, b in zip(self.params, state["buffers"])]
        if self._flat_buffer is not None and all(b is not None for b in buffers):
            for view, b in zip(self.buffers, buffers):
                view[...] = b
        else:
            self._flat_buffer = None
            self.buffers = buffers
