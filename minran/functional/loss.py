"""log-softmax and cross-entropy, both shifted by the row maximum so exp never overflows.
CUDA twin of cross_entropy: loss.cu.
Plain version of each op here, forward and backward: minran/reference/loss.py."""
from .. import backend
from ..backend import array_module
from ..cuda import kernels
from ..tensor import Tensor
from ._util import check_ndim

CUDA = kernels.Source(__file__)


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
    # Labels are checked on the host, where they are numbers already. Device labels are
    # checked once, where they enter the device (trainer.check_labels at load): reading them
    # back here would make every step wait for the GPU. The kernel turns a label outside
    # [0, K) into a NaN loss instead of reading outside its row.
    if N and not backend.is_device_array(labels) and (labels.min() < 0 or labels.max() >= K):
        raise ValueError(f"cross_entropy: labels must lie in [0, {K}), "
                         f"got range [{int(labels.min())}, {int(labels.max())}]")
    logp, loss = _cross_entropy(logits.data, labels)

    def backward(g):
        return (_cross_entropy_backward(g, logp, labels),)
    return Tensor._from_op(loss, (logits,), backward, "cross_entropy")


def _cross_entropy(z, labels):
    """log-softmax of each row, and the mean loss as a 0-d array of z's dtype."""
    xp = array_module(z)
    N, K = z.shape
    if kernels.active(z):
        labels = kernels.contiguous(labels.astype(xp.int64, copy=False))
        logp, losses = xp.empty((N, K), dtype=z.dtype), xp.empty(N, dtype=z.dtype)
        CUDA.launch("softmax_cross_entropy_forward", kernels.contiguous(z), labels, logp, losses,
                    N, K, threads=N)
        return logp, losses.mean().astype(z.dtype, copy=False)
    logp = _log_softmax(z, axis=1)
    return logp, xp.asarray(-logp[xp.arange(N), labels].mean(), dtype=z.dtype)


def _cross_entropy_backward(g, logp, labels):
    xp = array_module(logp)
    N, K = logp.shape
    if kernels.active(logp):
        grad = xp.empty((N, K), dtype=logp.dtype)
        CUDA.launch("softmax_cross_entropy_backward", kernels.contiguous(g.reshape(1)), logp,
                    kernels.contiguous(labels.astype(xp.int64, copy=False)), grad, N, K,
                    threads=N * K)
        return grad
    grad = xp.exp(logp)
    grad[xp.arange(N), labels] -= 1
    return grad * (g / N)
