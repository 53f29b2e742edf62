"""log-softmax and cross-entropy, row by row, as the formulas read.

The fast version, minran/functional/loss.py, handles every row at once; its CUDA twin is
loss.cu. Both shift each row by its maximum first, as here, so exp never overflows.
"""
import numpy as np


def log_softmax(x, axis=-1):
    """log(exp(z_k) / sum_j exp(z_j)) = z_k - max - log(sum_j exp(z_j - max)), along `axis`."""
    z = np.moveaxis(x, axis, -1)
    out = np.zeros(z.shape, dtype=x.dtype)
    for index in np.ndindex(*z.shape[:-1]):
        row = z[index]
        shifted = row - row.max()
        out[index] = shifted - np.log(np.exp(shifted).sum())
    return np.moveaxis(out, -1, axis)


def log_softmax_backward(g, x, axis=-1):
    """d log p_k / d z_j = [k == j] - p_j, so gz = g - p * sum(g)."""
    p = np.exp(log_softmax(x, axis))
    return g - p * g.sum(axis=axis, keepdims=True)


def cross_entropy(logits, labels):
    """The batch mean of -log p(label)."""
    logp = log_softmax(logits, axis=1)
    return np.asarray(-sum(logp[n, labels[n]] for n in range(len(labels))) / len(labels),
                      dtype=logits.dtype)


def cross_entropy_backward(g, logits, labels):
    """(softmax - one-hot of the label) / N, times the loss's gradient g."""
    grad = np.exp(log_softmax(logits, axis=1))
    for n in range(len(labels)):
        grad[n, labels[n]] -= 1
    return grad * (g / len(labels))
