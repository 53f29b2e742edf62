"""Weight initialisation, drawn from one seedable generator so runs repeat exactly."""
import math

import numpy as np

_rng = np.random.default_rng(0)


def manual_seed(seed):
    """Seed the generator every layer's initial weights come from."""
    global _rng
    _rng = np.random.default_rng(seed)


def kaiming_normal(shape, fan_in, dtype=np.float32):
    """He et al. (2015): N(0, 2 / fan_in) keeps activations' scale through ReLU layers."""
    return (_rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(dtype)


def uniform(shape, bound, dtype=np.float32):
    return _rng.uniform(-bound, bound, shape).astype(dtype)
