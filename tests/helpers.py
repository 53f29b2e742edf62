"""Shared test helpers: float64 tensors from drawn shapes, and the window geometries (size,
kernel, stride, padding) that every windowed op is tested over."""
import numpy as np
from hypothesis import strategies as st

from minran import Tensor


def randn(shape, seed=0, requires_grad=True, scale=1.0, shift=0.0):
    data = np.random.default_rng(seed).standard_normal(shape) * scale + shift
    return Tensor(data.astype(np.float64), requires_grad=requires_grad)


@st.composite
def windows(draw, pool=False):
    """Input size, kernel, stride and padding, each drawn per axis on its own; the input is
    at least as large as the kernel after padding. Pooling pads at most half the kernel."""
    kernel = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding = tuple(draw(st.integers(0, k // 2 if pool else 2)) for k in kernel)
    size = tuple(draw(st.integers(max(1, k - 2 * p), 7)) for k, p in zip(kernel, padding))
    return size, kernel, stride, padding


# The shapes that caught real bugs, always tried: height and width padding differ (col2im
# once cropped the width by the height's padding), and a kernel wider than tall (max
# pooling once numbered window offsets i * kh + j, which collide when kh < kw).
LOPSIDED = ((4, 5), (2, 3), (1, 2), (1, 0))
