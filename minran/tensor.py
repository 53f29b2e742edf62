"""Tensor: an array plus the record of how it was made, so gradients can flow back.

Every op in `minran.functional` computes its output array and hands `Tensor._from_op` the
inputs it used and a `backward(grad)` closure that returns one gradient per input. Calling
`.backward()` on a result walks that graph in reverse topological order (reverse-mode
automatic differentiation) and frees it as it goes.
"""
import numpy as np

from . import backend, parallel

_grad_enabled = True


class no_grad:
    """Context manager: ops inside record no graph (for evaluation and optimiser updates).
    One object may be entered again inside itself: each exit restores what its enter found."""

    def __init__(self):
        self._previous = []

    def __enter__(self):
        global _grad_enabled
        self._previous.append(_grad_enabled)
        _grad_enabled = False

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._previous.pop()
        return False


def is_grad_enabled():
    return _grad_enabled


class Tensor:
    # Makes `ndarray + Tensor` call Tensor.__radd__ instead of NumPy broadcasting over it.
    __array_priority__ = 100
    # A parameter packed into a flat buffer (optim/flat.py) has its gradient's place ready:
    # `_grad_slot`, a view into the flat gradient buffer. `_slot_taken`: an op of the
    # backward in progress is writing there.
    _grad_slot = None
    _slot_taken = False

    def __init__(self, data, requires_grad=False, dtype=None):
        if isinstance(data, Tensor):
            data = data.data
        xp = backend.array_module(data)
        if dtype is None and not hasattr(data, "dtype"):
            dtype = np.float32  # Python numbers and lists become float32, as in PyTorch
        self.data = xp.asarray(data, dtype=dtype)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"Tensor: only floating-point tensors can require grad, "
                            f"got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad = None
        self._parents = ()
        self._backward = None
        self._op = None
        self._retain_grad = False

    # ---- building the graph -------------------------------------------------------------
    @classmethod
    def _from_op(cls, data, parents, backward, op):
        """Wrap an op's output; record the graph only if some input needs a gradient."""
        out = cls(data)
        if _grad_enabled and any(p is not None and p.requires_grad for p in parents):
            out.requires_grad = True
            out._parents = tuple(parents)
            out._backward = backward
            out._op = op
        return out

    @property
    def is_leaf(self):
        return self._backward is None

    def retain_grad(self):
        """Keep .grad on this intermediate result too (leaves always keep theirs)."""
        self._retain_grad = True
        return self

    # ---- reverse mode -------------------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's .grad that requires grad."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad (was it made "
                               "under no_grad, or from inputs that do not require grad?)")
        xp = self.xp
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward: grad can be implied only for a scalar output, "
                                   f"got shape {self.shape}; pass grad= of that shape")
            grad = xp.ones_like(self.data)
        else:   # a copy: the gradients that reach the leaves may be this very array
            grad = xp.array(grad.data if isinstance(grad, Tensor) else grad,
                            dtype=self.data.dtype, copy=True)
            if grad.shape != self.shape:
                raise ValueError(f"backward: grad has shape {grad.shape}, "
                                 f"but the tensor has shape {self.shape}")

        grads = {id(self): grad}
        for node in reversed(_topological_order(self)):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node.is_leaf or node._retain_grad:
                node._accumulate(g)
            if node.is_leaf:
                continue
            if getattr(node._backward, "accumulates", False):
                # The op adds the gradients its inputs already have into its own as it
                # writes them (batch norm: one launch fewer per residual unit on a GPU).
                partial = [grads.pop(id(p), None) if p is not None else None
                           for p in node._parents]
                parent_grads = node._backward(g, partial)
            else:
                partial, parent_grads = None, node._backward(g)
            for i, (parent, pg) in enumerate(zip(node._parents, parent_grads)):
                if pg is None and partial is not None:
                    pg = partial[i]   # nothing of its own for this input: give it back
                if parent is None or pg is None or not parent.requires_grad:
                    continue
                key = id(parent)
                # Not in place: pg may be the very array another branch still holds.
                grads[key] = (pg if key not in grads
                              else parallel.elementwise(xp.add, grads[key], pg))
            if not retain_graph:  # free the saved arrays as soon as they are used
                node._parents, node._backward = (), None

    def grad_out(self):
        """Where an op may write this tensor's gradient itself: its slot in a flat gradient
        buffer (optim/flat.py), when it has one and no gradient is there yet; else None,
        and the op makes a new array. Saves a copy per parameter per step."""
        if self._grad_slot is None or self.grad is not None or self._slot_taken:
            return None
        self._slot_taken = True
        return self._grad_slot

    def _accumulate(self, g):
        """The first gradient is adopted as it is (it is this backward's own array, which
        nothing changes afterwards); later ones are added. A parameter with a slot keeps its
        gradient there: adopted if an op wrote it there, copied in otherwise, and later
        gradients added in place (the slot belongs to this parameter alone)."""
        if g.shape != self.shape:
            raise RuntimeError(f"internal error: gradient of shape {g.shape} for a tensor "
                               f"of shape {self.shape} (op {self._op})")
        slot, self._slot_taken = self._grad_slot, False
        if slot is None:
            self.grad = Tensor(g) if self.grad is None else Tensor(self.grad.data + g)
        elif self.grad is None:
            if g is not slot:
                slot[...] = g
            self.grad = Tensor(slot)
        elif self.grad.data is slot:
            slot += g
        else:
            self.grad = Tensor(self.grad.data + g)

    def zero_grad(self):
        self.grad = None

    # ---- array facts --------------------------------------------------------------------
    @property
    def xp(self):
        return backend.array_module(self.data)

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return int(self.data.size)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return backend.device_of(self.data)

    def __len__(self):
        return self.shape[0]

    def numpy(self):
        return backend.to_numpy(self.data)

    def item(self):
        return float(self.numpy().reshape(-1)[0]) if self.size == 1 else _not_scalar(self)

    def to(self, device=None, dtype=None):
        """A copy on `device` and/or in `dtype` (a leaf: the graph does not follow)."""
        data = self.data if device is None else backend.to_device(self.data, device)
        if dtype is not None:
            data = data.astype(dtype, copy=False)
        return Tensor(data, requires_grad=self.requires_grad)

    def detach(self):
        return Tensor(self.data)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad else ""
        op = f", op={self._op}" if self._op else ""
        return f"Tensor({self.numpy()!r}, device={self.device}{grad}{op})"

    # ---- operators (the ops themselves live in minran.functional) -----------------------
    def __add__(self, other):
        return F.add(self, other)

    def __radd__(self, other):
        return F.add(other, self)

    def __sub__(self, other):
        return F.sub(self, other)

    def __rsub__(self, other):
        return F.sub(other, self)

    def __mul__(self, other):
        return F.mul(self, other)

    def __rmul__(self, other):
        return F.mul(other, self)

    def __truediv__(self, other):
        return F.div(self, other)

    def __rtruediv__(self, other):
        return F.div(other, self)

    def __neg__(self):
        return F.neg(self)

    def __matmul__(self, other):
        return F.matmul(self, other)

    def __rmatmul__(self, other):
        return F.matmul(other, self)

    def sum(self, axis=None, keepdims=False):
        return F.sum(self, axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return F.mean(self, axis, keepdims)

    def reshape(self, *shape):
        return F.reshape(self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int)
                         else shape)

    def transpose(self, *axes):
        return F.transpose(self, axes[0] if len(axes) == 1 and not isinstance(axes[0], int)
                           else (axes or None))

    @property
    def T(self):
        return F.transpose(self, None)

    def exp(self):
        return F.exp(self)

    def log(self):
        return F.log(self)

    def sqrt(self):
        return F.sqrt(self)

    def relu(self):
        return F.relu(self)

    def sigmoid(self):
        return F.sigmoid(self)


def _not_scalar(t):
    raise ValueError(f"item: only one-element tensors convert to a number, got shape {t.shape}")


def _topological_order(root):
    """Every node that leads to root, each after all its inputs (iterative: deep nets)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in node._parents:
            if parent is not None and parent.requires_grad and id(parent) not in visited:
                stack.append((parent, False))
    return order


from . import functional as F  # noqa: E402  (functional needs Tensor defined first)
