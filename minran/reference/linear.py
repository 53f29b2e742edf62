"""The fully connected layer by its formula: out[n, o] = sum over i of x[n, i] * w[o, i] + b[o].

The fast version, minran/functional/linear.py, is one matrix product x @ w^T.
"""
import numpy as np


def linear(x, w, b=None):
    out = np.zeros((x.shape[0], w.shape[0]), dtype=x.dtype)
    for n, o in np.ndindex(*out.shape):
        out[n, o] = (x[n] * w[o]).sum() + (b[o] if b is not None else 0)
    return out


def linear_backward(g, x, w, b=None):
    """gx[n] = sum over o of g[n, o] * w[o]; gw[o] = sum over n of g[n, o] * x[n]; gb = sum
    over n of g. gb is None without a bias."""
    gx, gw = np.zeros(x.shape, dtype=x.dtype), np.zeros(w.shape, dtype=w.dtype)
    for n, o in np.ndindex(*g.shape):
        gx[n] += g[n, o] * w[o]
        gw[o] += g[n, o] * x[n]
    return gx, gw, (g.sum(axis=0) if b is not None else None)
