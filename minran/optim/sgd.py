"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay.

The update is PyTorch's, so a run here and a run there can be compared step for step:
    g = grad + weight_decay * p
    buf = g                      (first step)
    buf = momentum * buf + g     (later steps)
    g = g + momentum * buf       (Nesterov)   or   g = buf   (plain momentum)
    p = p - lr * g
"""
import numpy as np

from .. import backend
from ..cuda import kernels
from ..tensor import no_grad

CUDA = kernels.Source(__file__)   # sgd.cu: the same update as one fused pass per parameter


class SGD:
    def __init__(self, params, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.params = list(params)
        if not self.params:
            raise ValueError("SGD: got an empty parameter list")
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0, "
                             f"got {lr}, {momentum}, {weight_decay}")
        if nesterov and momentum <= 0:
            raise ValueError("SGD: Nesterov momentum needs momentum > 0")
        self.lr, self.momentum, self.nesterov, self.weight_decay = lr, momentum, nesterov, weight_decay
        self.buffers = [None] * len(self.params)

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        with no_grad():
            for i, p in enumerate(self.params):
                if p.grad is None:
                    continue
                if kernels.active(p.data):
                    self._step_cuda(i, p)
                    continue
                g = p.grad.data
                if self.weight_decay:
                    g = g + self.weight_decay * p.data
                if self.momentum:
                    buf = self.buffers[i]
                    if buf is None:
                        buf = self.buffers[i] = g.copy()
                    else:
                        buf *= self.momentum
                        buf += g
                    g = g + self.momentum * buf if self.nesterov else buf
                p.data -= self.lr * g  # in place: the Parameter object never changes

    def _step_cuda(self, i, p):
        first = self.momentum and self.buffers[i] is None
        if first:
            self.buffers[i] = p.xp.empty_like(p.data)
        # Without momentum the kernel never touches its buffer argument: pass p itself.
        buf = self.buffers[i] if self.momentum else p.data
        CUDA.launch("sgd_update", p.data, kernels.contiguous(p.grad.data), buf, p.size, self.lr,
                    self.momentum, self.weight_decay, int(self.nesterov), int(bool(first)),
                    threads=p.size)

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
        self.buffers = [None if b is None else p.xp.array(b, dtype=p.dtype)
                        for p, b in zip(self.params, state["buffers"])]
