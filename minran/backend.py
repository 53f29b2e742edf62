"""The one place that decides between NumPy (CPU) and CuPy (GPU).

Every op asks `array_module(array)` for `xp` and writes `xp.matmul(...)` instead of
`np.matmul(...)`, so the same source runs on both devices wherever the two libraries agree.
"""
import numpy as np

try:  # CuPy is optional: the CPU path must import and run without it.
    import cupy  # type: ignore
except Exception:  # ImportError, or a CuPy that finds no CUDA libraries
    cupy = None

DEVICES = ("cpu", "gpu")


def gpu_available():
    """True when CuPy imports and sees at least one CUDA device."""
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def array_module(array):
    """numpy for host arrays, cupy for device arrays."""
    if cupy is not None and isinstance(array, cupy.ndarray):
        return cupy
    return np


def device_of(array):
    return "gpu" if array_module(array) is not np else "cpu"


def check_device(device):
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}: use 'cpu' or 'gpu'")
    if device == "gpu" and not gpu_available():
        raise RuntimeError(
            "device 'gpu' asked for, but CuPy is not installed or sees no CUDA device: "
            "install the gpu extra (pip install -e '.[gpu]') on a machine with an NVIDIA GPU, "
            "or use device 'cpu'")
    return device


def to_device(array, device):
    """Copy an array to 'cpu' or 'gpu' (no copy when it is already there)."""
    check_device(device)
    if device == device_of(array):
        return array
    if device == "gpu":
        return cupy.asarray(array)
    return cupy.asnumpy(array)


def to_numpy(array):
    return array if isinstance(array, np.ndarray) else cupy.asnumpy(array)
