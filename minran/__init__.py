"""minran: a minimal deep-learning library that builds the Residual Attention Network.

Read it in this order: tensor.py (the graph and reverse mode), functional/ (every op with
its backward), gradcheck.py (how each backward is proven), nn/ and optim/ (layers and SGD),
models/ (the network of the paper), data/ and trainer.py (CIFAR-10 end to end).
"""
from . import backend
from .gradcheck import GradcheckError, gradcheck
from .tensor import Tensor, is_grad_enabled, no_grad
from . import functional, nn, optim  # noqa: E402
from .nn.init import manual_seed

__version__ = "0.1.0"

__all__ = ["Tensor", "no_grad", "is_grad_enabled", "gradcheck", "GradcheckError",
           "functional", "nn", "optim", "backend", "manual_seed"]


def __getattr__(name):
    # models, data and trainer load on first use, keeping `import minran` light.
    import importlib
    if name in ("models", "data", "trainer", "visualize", "plots"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'minran' has no attribute {name!r}")
