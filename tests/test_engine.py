"""The autodiff engine: graph walking, accumulation, no_grad, freeing, and gradcheck itself."""
import gc
import weakref

import numpy as np
import pytest

import minran
import minran.functional as F
from minran import GradcheckError, Tensor, gradcheck, no_grad
from minran.tensor import Tensor as T

from .helpers import randn


def test_tensor_basics():
    t = Tensor([[1, 2], [3, 4]])
    assert t.shape == (2, 2) and t.dtype == np.float32 and t.device == "cpu"
    assert isinstance(t.numpy(), np.ndarray)
    assert t.to(dtype="float64").dtype == np.float64
    labels = Tensor(np.array([1, 2]))
    assert labels.dtype.kind == "i"
    with pytest.raises(TypeError, match="floating-point"):
        Tensor(np.array([1, 2]), requires_grad=True)


def test_tensor_used_twice_accumulates():
    x = Tensor(np.array([3.0]), requires_grad=True)
    (x * x + x).backward(np.ones(1))   # d/dx (x^2 + x) = 2x + 1 = 7
    assert x.grad.data.tolist() == [7.0]


def test_shared_subgraph_diamond():
    x = Tensor(np.array([2.0]), requires_grad=True)
    h = x * 3          # shared by both branches
    y = h * h + h.exp()
    y.backward(np.ones(1))
    # dy/dx = (2h + e^h) * 3 with h = 6
    assert x.grad.data[0] == pytest.approx((12 + np.exp(6)) * 3)


def test_backward_twice_accumulates():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 2).sum().backward()
    (x * 2).sum().backward()
    assert x.grad.data.tolist() == [4.0, 4.0]


def test_broadcast_gradient_reduced_to_input_shape():
    x = Tensor(np.ones((3, 1)), requires_grad=True)
    b = Tensor(np.ones((4,)), requires_grad=True)
    (x + b).sum().backward()
    assert x.grad.shape == (3, 1) and x.grad.data.ravel().tolist() == [4, 4, 4]
    assert b.grad.shape == (4,) and b.grad.data.tolist() == [3, 3, 3, 3]


def test_scalar_operands_and_reflected_operators():
    x = Tensor(np.array([2.0]), requires_grad=True)
    y = 1 - 3 / x + 2 * x - (-x)
    y.backward(np.ones(1))
    assert y.data[0] == pytest.approx(1 - 1.5 + 4 + 2)
    assert x.grad.data[0] == pytest.approx(3 / 4 + 2 + 1)


def test_no_grad_records_nothing():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = x * 2
    assert not y.requires_grad and y._backward is None
    assert minran.is_grad_enabled()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_graph_is_freed_after_backward():
    x = Tensor(np.ones((10, 10)), requires_grad=True)
    h = x * 2
    ref = weakref.ref(h)
    y = (h * 3).sum()
    del h
    y.backward()
    gc.collect()
    assert ref() is None, "intermediate results must not outlive backward"
    assert y._parents == () and y._backward is None


def test_retain_graph_allows_second_backward():
    x = Tensor(np.ones(2), requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.data.tolist() == [4.0, 4.0]


def test_detach_and_retain_grad():
    x = Tensor(np.ones(2), requires_grad=True)
    h = (x * 2).retain_grad()
    d = h.detach()
    assert not d.requires_grad
    (h * 3).sum().backward()
    assert h.grad.data.tolist() == [3.0, 3.0] and x.grad.data.tolist() == [6.0, 6.0]


def test_deep_chain_does_not_hit_recursion_limit():
    x = Tensor(np.ones(1), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1.0
    y.backward(np.ones(1))
    assert x.grad.data[0] == 1.0


def test_backward_needs_scalar_or_grad():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar"):
        (x * 2).backward()
    with pytest.raises(ValueError, match="shape"):
        (x * 2).backward(np.ones(4))


# ---- gradcheck checks itself ---------------------------------------------------------------
def _square_with_wrong_backward(x):
    return T._from_op(x.data ** 2, (x,), lambda g: (g * x.data,), "bad_square")  # should be 2x


def test_gradcheck_fails_on_wrong_backward():
    x = randn((3, 2))
    with pytest.raises(GradcheckError, match=r"input 0 .* analytic .* numeric"):
        gradcheck(_square_with_wrong_backward, x)


def test_gradcheck_fails_on_slightly_wrong_backward():
    x = randn((4,))
    bad = lambda x: T._from_op(x.data * 3, (x,), lambda g: (g * 3.001,), "almost")  # noqa: E731
    with pytest.raises(GradcheckError):
        gradcheck(bad, x)


def test_gradcheck_fails_when_an_input_gets_no_gradient():
    x, y = randn((2,)), randn((2,), seed=1)
    ignores_y = lambda x, y: T._from_op(x.data * y.data, (x, y), lambda g: (g * y.data, None), "m")  # noqa
    with pytest.raises(GradcheckError, match="input 1"):
        gradcheck(ignores_y, x, y)


def test_gradcheck_needs_float64():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(F.relu, Tensor(np.ones(2, np.float32), requires_grad=True))


def test_gradcheck_passes_on_right_backward():
    assert gradcheck(lambda x: x * x, randn((3,)))


# ---- clear errors --------------------------------------------------------------------------
@pytest.mark.parametrize("call, message", [
    (lambda: F.conv2d(Tensor(np.ones((3, 8, 8))), Tensor(np.ones((4, 3, 3, 3)))), r"conv2d: expected a 4-D input"),
    (lambda: F.conv2d(Tensor(np.ones((1, 2, 8, 8))), Tensor(np.ones((4, 3, 3, 3)))), r"conv2d: input has 2 channels .* expects 3"),
    (lambda: F.conv2d(Tensor(np.ones((1, 3, 2, 2))), Tensor(np.ones((4, 3, 3, 3)))), r"conv2d: kernel 3x3 is larger than the padded input 2x2"),
    (lambda: F.conv2d(Tensor(np.ones((1, 3, 8, 2))), Tensor(np.ones((4, 3, 3, 5))), padding=(2, 1)), r"conv2d: kernel 3x5 is larger than the padded input 12x4"),
    (lambda: F.conv2d(Tensor(np.ones((1, 3, 8, 8))), Tensor(np.ones((4, 3, 3, 3))), stride=0), r"conv2d: stride must be >= 1"),
    (lambda: F.conv2d(Tensor(np.ones((1, 3, 8, 8), np.float32)), Tensor(np.ones((4, 3, 3, 3)))), r"conv2d: inputs have different dtypes"),
    (lambda: F.max_pool2d(Tensor(np.ones((1, 1, 2, 2))), 5), r"max_pool2d: .*larger than the padded input"),
    (lambda: F.max_pool2d(Tensor(np.ones((1, 1, 4, 4))), 2, padding=2), r"max_pool2d: padding .* at most half"),
    (lambda: F.max_pool2d(Tensor(np.ones((1, 1, 4, 4))), (4, 2), padding=(1, 2)), r"max_pool2d: padding \(1, 2\) must be at most half the kernel \(4, 2\)"),
    (lambda: F.avg_pool2d(Tensor(np.ones((1, 1, 9, 2))), (3, 5), padding=(0, 1)), r"avg_pool2d: kernel \(3, 5\) is larger than the padded input \(9, 4\)"),
    (lambda: F.avg_pool2d(Tensor(np.ones((1, 1, 4, 4))), 2, stride=-1), r"avg_pool2d: kernel_size and stride must be >= 1"),
    (lambda: Tensor(np.ones((2, 3))) + Tensor(np.ones((4,))), r"add: shapes \(2, 3\) and \(4,\) do not broadcast"),
    (lambda: Tensor(np.ones((2, 3))) @ Tensor(np.ones((2, 3))), r"matmul: shapes \(2, 3\) @ \(2, 3\)"),
    (lambda: F.linear(Tensor(np.ones((2, 3))), Tensor(np.ones((4, 5)))), r"linear: input has 3 features"),
    (lambda: F.cross_entropy(Tensor(np.ones((2, 3))), np.array([0, 3])), r"cross_entropy: labels must lie in \[0, 3\)"),
    (lambda: F.batch_norm(Tensor(np.ones((1, 2, 1, 1))), None, None, np.zeros(2), np.ones(2), True), r"batch_norm: training needs more than one value"),
    (lambda: F.batch_norm(Tensor(np.ones((4, 2))), None, None, np.zeros(3), np.ones(3), True), r"batch_norm: running_mean must have shape \(2,\)"),
    (lambda: F.attention_combine(Tensor(np.ones((1, 2, 4, 4))), Tensor(np.ones((1, 2, 8, 8)))), r"attention_combine: mask .* and trunk"),
    (lambda: F.upsample_bilinear(Tensor(np.ones((1, 2, 4, 4))), 0), r"upsample_bilinear: output size must be positive"),
])
def test_bad_input_gets_a_clear_error(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_mixing_devices_is_refused():
    from minran.functional._util import check_same

    class FakeGpu(Tensor):
        @property
        def device(self):
            return "gpu"
    with pytest.raises(ValueError, match=r"different devices \['cpu', 'gpu'\]"):
        check_same("add", Tensor(np.ones(2)), FakeGpu(np.ones(2)))


def test_gpu_device_without_cupy_says_so():
    if minran.backend.gpu_available():
        pytest.skip("a GPU is present")
    # Which of the two: CuPy missing, or CuPy installed without a usable driver or device.
    with pytest.raises(RuntimeError, match=r"device 'gpu' asked for, but CuPy (is not installed"
                                           r"|.*is installed but)"):
        Tensor(np.ones(2)).to("gpu")
