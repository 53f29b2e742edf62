"""log-softmax and cross-entropy, both shifted by the row maximum so exp never overflows."""
from ..backend import array_module
from ..tensor import Tensor
from ._util import check_ndim


def _log_softmax(z, axis):
    xp = array_module(z)
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def log_softmax(x, axis=-1):
    y = _log_softmax(x.data, axis)

    def backward(g):
        return (g - x.xp.exp(y) * g.sum(axis=axis, keepdims=True),)
    return Tensor._from_op(y, (x,), backward, "log_softmax")


def cross_entropy(logits, labels):
    """Mean over the batch of -log softmax(logits)[label]; logits (N, K), labels (N,) ints."""
    check_ndim("cross_entropy", logits, 2, "logits (N, classes)")
    xp = logits.xp
    labels = labels.data if isinstance(labels, Tensor) else xp.asarray(labels)
    N, K = logits.shape
    if labels.shape != (N,) or labels.dtype.kind not in "iu":
        raise ValueError(f"cross_entropy: labels must be {N} integers for logits {logits.shape}, "
                         f"got shape {labels.shape} dtype {labels.dtype}")
    if N and (int(labels.min()) < 0 or int(labels.max()) >= K):
        raise ValueError(f"cross_entropy: labels must lie in [0, {K}), "
                         f"got range [{int(labels.min())}, {int(labels.max())}]")
    logp = _log_softmax(logits.data, axis=1)
    rows = xp.arange(N)
    loss = -logp[rows, labels].mean()

    def backward(g):
        grad = xp.exp(logp)
        grad[rows, labels] -= 1
        return (grad * (g / N),)
    return Tensor._from_op(xp.asarray(loss, dtype=logits.dtype), (logits,), backward,
                           "cross_entropy")
