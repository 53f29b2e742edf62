"""The label noise of the paper's Table 5.

Transition matrix Q with the clean ratio r on its diagonal and (1 - r) / (K - 1) elsewhere:
each label stays with probability r and otherwise becomes one of the other K - 1 classes,
chosen uniformly. The paper's "noise level" is 1 - r.
"""
import numpy as np


def corrupt_labels(labels, noise_rate, num_classes, rng):
    if not 0 <= noise_rate <= 1:
        raise ValueError(f"label noise rate must be in [0, 1], got {noise_rate}")
    labels = np.asarray(labels)
    flip = rng.random(len(labels)) < noise_rate
    # Adding 1..K-1 (mod K) reaches every other class with equal probability.
    shift = rng.integers(1, num_classes, len(labels))
    return np.where(flip, (labels + shift) % num_classes, labels).astype(labels.dtype)
