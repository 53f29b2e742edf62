"""The fully connected layer: y = x W^T + b, with W laid out (out, in) as in PyTorch.
Plain version of each op here, forward and backward: minran/reference/linear.py."""
from ..tensor import Tensor
from ._util import check_ndim, check_same
from .macs import count_macs


def linear(x, w, b=None):
    check_ndim("linear", x, 2, "(N, in_features)")
    check_ndim("linear", w, 2, "weight (out_features, in_features)")
    check_same("linear", x, w, b)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"linear: input has {x.shape[1]} features (shape {x.shape}) but the "
                         f"weight expects {w.shape[1]} (shape {w.shape})")
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"linear: bias must have shape ({w.shape[0]},), got {b.shape}")
    out = x.data @ w.data.T
    if b is not None:
        out = out + b.data
    count_macs("linear", x.shape[0] * w.shape[0] * w.shape[1])

    def backward(g):
        return g @ w.data, g.T @ x.data, (g.sum(axis=0) if b is not None else None)
    return Tensor._from_op(out, (x, w, b), backward, "linear")
