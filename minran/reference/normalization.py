"""Batch normalisation by the textbook: per channel, normalise, scale and shift.

The fast version, minran/functional/normalization.py, folds the normalisation and the scale
into one multiply and one add per value, fuses the ReLU in, never stores x-hat, and works
slice by slice of the batch on every core; its CUDA twin does the same per thread.
"""
import numpy as np


def _batch_statistics(x, c):
    """Channel c's mean, biased variance and count, over the batch (and the map, for
    (N, C, H, W) input)."""
    v = x[:, c].reshape(-1)
    mean = v.sum() / v.size
    return mean, ((v - mean) ** 2).sum() / v.size, v.size


def batch_norm(x, weight, bias, running_mean, running_var, training, momentum=0.1, eps=1e-5,
               relu=False):
    """y = weight * (x - mean) / sqrt(var + eps) + bias, channel by channel, then the ReLU if
    asked. Training: the batch's mean and biased variance, and running_mean and running_var
    (changed in place) move `momentum` of the way to the batch's mean and unbiased variance.
    Evaluation: the running statistics. weight and bias may be None (1 and 0)."""
    out = np.zeros(x.shape, dtype=x.dtype)
    C = x.shape[1]
    for c in range(C):
        if training:
            mean, var, n = _batch_statistics(x, c)
            if running_mean is not None:
                running_mean[c] = (1 - momentum) * running_mean[c] + momentum * mean
            if running_var is not None:
                running_var[c] = (1 - momentum) * running_var[c] + momentum * var * n / (n - 1)
        else:
            mean, var = running_mean[c], running_var[c]
        y = (x[:, c] - mean) / np.sqrt(var + eps)
        y = y * (1.0 if weight is None else weight[c]) + (0.0 if bias is None else bias[c])
        out[:, c] = np.maximum(y, 0) if relu else y
    return out


def batch_norm_backward(g, x, weight, bias, training, running_mean=None, running_var=None,
                        eps=1e-5, relu=False):
    """(gx, gw, gb) for output gradient g. With gr the gradient reaching the normalisation
    (g where the ReLU let it through), xhat = (x - mean) / std and n values per channel:

        gb = sum(gr)        gw = sum(gr * xhat)
        gx = w / std * (gr - gb / n - xhat * gw / n)     in training, where mean and std
                                                           depend on x
        gx = w / std * gr                                 in evaluation (they are constants)

    gw and gb are None when weight and bias are."""
    gx = np.zeros(x.shape, dtype=x.dtype)
    C = x.shape[1]
    gw, gb = np.zeros(C, dtype=x.dtype), np.zeros(C, dtype=x.dtype)
    for c in range(C):
        if training:
            mean, var, n = _batch_statistics(x, c)
        else:
            mean, var = running_mean[c], running_var[c]
        std = np.sqrt(var + eps)
        w = 1.0 if weight is None else weight[c]
        xhat = (x[:, c] - mean) / std
        gr = g[:, c]
        if relu:
            gr = gr * (w * xhat + (0.0 if bias is None else bias[c]) > 0)
        gb[c] = gr.sum()
        gw[c] = (gr * xhat).sum()
        if training:
            gx[:, c] = w / std * (gr - gb[c] / n - xhat * gw[c] / n)
        else:
            gx[:, c] = w / std * gr
    return gx, (gw if weight is not None else None), (gb if bias is not None else None)
