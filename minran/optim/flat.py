"""Parameters stored flat: every parameter a view into one buffer, and its gradient a view
into another, so that an optimiser step is one pass over one buffer.

Attention-92 has 584 parameter tensors. Updated one by one, an SGD step is 584 kernel
launches on a GPU (and 584 times five small NumPy calls on a CPU); over one flat buffer it is
one launch (one pass of each NumPy call). Nothing else changes: each parameter keeps its
shape, its name and its place in the model; only its memory moved.

The gradients come the same way: ops that compute a parameter's gradient write it straight
into the parameter's slot of the flat gradient buffer (`Tensor.grad_out()`), so no gradient
is copied either.
"""
from ..tensor import Tensor



class FlatParameters:
    """Pack `params` (all on one device, one dtype) into `data`; their gradients live in
    `grad`. `intact()` says whether every parameter still views `data` (Module.to() and
    load_state_dict of a new array would replace a parameter's array)."""

    def __init__(self, params):
        self.params = list(params)
        if not self.params:
            raise ValueError("FlatParameters: no parameters")
        first = self.params[0].data
        xp, dtype = self.params[0].xp, first.dtype
        for p in self.params:
            if p.xp is not xp or p.data.dtype != dtype:
                raise ValueError(f"FlatParameters: parameters on different devices or of "
                                 f"different dtypes ({p.device} {p.dtype} and "
                                 f"{self.params[0].device} {dtype}); move them together "
                                 f"with model.to(...) first")
        self.size = sum(p.size for p in self.params)
        self.data = xp.empty(self.size, dtype=dtype)
        self.grad = xp.zeros(self.size, dtype=dtype)
        self.offsets, offset = [], 0
        for p in self.params:
            view = self.data[offset:offset + p.size].reshape(p.shape)
            view[...] = p.data
            p.data = view
            p._grad_slot = self.grad[offset:offset + p.size].reshape(p.shape)
            p.grad = None
            self.offsets.append(offset)
            offset += p.size
        self.views = [p.data for p in self.params]
        self.slots = [p._grad_slot for p in self.params]

    def intact(self):
        return all(p.data is view and p._grad_slot is slot
                   for p, view, slot in zip(self.params, self.views, self.slots))

    def gather_grads(self):
        """True when every parameter's gradient is in its slot (copying one in where an op
        could not write it there, or where it was set by hand); False when some parameter
        has no gradient at all (then a flat step would move it with a stale one)."""
        for p in self.params:
            if p.grad is None:
                return False
            slot = p._grad_slot
            if p.grad.data is not slot:   # set by hand, or an op wrote its own array
                slot[...] = p.grad.data
                p.grad = Tensor(slot)
        return True
