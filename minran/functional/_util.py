"""Small helpers every op shares: turning inputs into tensors and checking them."""
import numbers

from ..tensor import Tensor


def as_tensor(value, like):
    """Tensors pass through; Python numbers become a constant of `like`'s dtype and device."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, numbers.Number):
        return Tensor(like.xp.asarray(value, dtype=like.dtype))
    return Tensor(like.xp.asarray(value))


def check_same(op, *tensors):
    """Ops never mix devices or float dtypes silently: say which and how to fix it."""
    ts = [t for t in tensors if t is not None]
    devices = {t.device for t in ts}
    if len(devices) > 1:
        raise ValueError(f"{op}: inputs are on different devices {sorted(devices)}, shapes "
                         f"{[t.shape for t in ts]}; move them with .to('cpu') or .to('gpu')")
    dtypes = {t.dtype for t in ts}   # dtype objects: str(dtype) costs ~10 us per call
    if len(dtypes) > 1:
        raise TypeError(f"{op}: inputs have different dtypes {sorted(map(str, dtypes))}, shapes "
                        f"{[t.shape for t in ts]}; convert them with .to(dtype=...)")


def check_ndim(op, t, ndim, layout):
    if t.ndim != ndim:
        raise ValueError(f"{op}: expected a {ndim}-D input {layout}, got shape {t.shape}")


def pair(value, name, op):
    """An int or a pair of ints -> a pair of ints."""
    if isinstance(value, int):
        return value, value
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, int) for v in value):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return value


def unbroadcast(grad, shape):
    """Sum a gradient back down to the shape its input had before NumPy broadcasting."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad
