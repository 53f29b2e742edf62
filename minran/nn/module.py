"""Module: a layer that owns parameters, buffers and sub-modules, found by attribute name."""
import contextlib
from collections import OrderedDict

import numpy as np

from .. import backend
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor a Module learns: it always requires grad."""

    def __init__(self, data, dtype=None):
        super().__init__(data, requires_grad=True, dtype=dtype)


class Module:
    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before "
                               f"assigning attributes")
        for table in (self._parameters, self._modules, self._buffers):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, array):
        """State that is saved and moved with the module but not learned (BN statistics)."""
        self._buffers[name] = array
        object.__setattr__(self, name, array)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    # ---- walking the tree ---------------------------------------------------------------
    def named_modules(self, prefix=""):
        yield prefix, self
        for name, module in self._modules.items():
            yield from module.named_modules(f"{prefix}.{name}" if prefix else name)

    def children(self):
        return iter(self._modules.values())

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_parameters(self):
        for prefix, module in self.named_modules():
            for name, p in module._parameters.items():
                yield (f"{prefix}.{name}" if prefix else name), p

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self):
        for prefix, module in self.named_modules():
            for name, b in module._buffers.items():
                yield (f"{prefix}.{name}" if prefix else name), b

    def num_parameters(self):
        return sum(p.size for p in self.parameters())

    # ---- modes and state ----------------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    @contextlib.contextmanager
    def evaluating(self):
        """eval() for the block; afterwards every module is back in its own mode, which need
        not be its parent's (a frozen batch norm inside a training model)."""
        modes = [(m, m.training) for m in self.modules()]   # parents before their children
        self.eval()
        try:
            yield self
        finally:
            for m, mode in modes:
                m.train(mode)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def state_dict(self):
        """Parameters and buffers as plain NumPy arrays (copies), keyed by dotted name."""
        state = OrderedDict((n, backend.to_numpy(p.data).copy()) for n, p in self.named_parameters())
        state.update((n, backend.to_numpy(b).copy()) for n, b in self.named_buffers())
        return state

    def load_state_dict(self, state, strict=True):
        own = dict(self.named_parameters())
        buffers = dict(self.named_buffers())
        missing = [k for k in list(own) + list(buffers) if k not in state]
        unexpected = [k for k in state if k not in own and k not in buffers]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        # Every entry is checked before any is written: a refused load changes nothing.
        targets = []
        for name, value in state.items():
            if name in own:
                target = own[name].data
            elif name in buffers:
                target = buffers[name]
            else:
                continue
            if tuple(np.shape(value)) != tuple(target.shape):
                raise ValueError(f"load_state_dict: {name} has shape {np.shape(value)} in the "
                                 f"state but {tuple(target.shape)} in the model")
            kind = getattr(value, "dtype", np.asarray(value).dtype).kind
            if kind not in "iuf":   # converted to the model's dtype; these would not be numbers
                raise ValueError(f"load_state_dict: {name} has dtype "
                                 f"{getattr(value, 'dtype', np.asarray(value).dtype)} in the "
                                 f"state; weights are real numbers (the model's {target.dtype})")
            targets.append((target, value))
        for target, value in targets:
            target[...] = backend.array_module(target).asarray(value, dtype=target.dtype)
        return self

    def to(self, device=None, dtype=None):
        """Move (or convert) every parameter and buffer in place; optimisers keep working
        because the Parameter objects stay the same."""
        for p in self.parameters():
            data = p.data if device is None else backend.to_device(p.data, device)
            p.data = data if dtype is None else data.astype(dtype, copy=False)
            p.grad = None
            p._grad_slot = None   # a flat gradient buffer (optim/flat.py) stays behind
        for module in self.modules():
            for name, b in list(module._buffers.items()):
                b = b if device is None else backend.to_device(b, device)
                module.register_buffer(name, b if dtype is None else b.astype(dtype, copy=False))
        return self

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        return lines[0] + ")" if len(lines) == 1 else "\n".join(lines) + "\n)"
