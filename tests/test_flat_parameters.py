"""Parameters packed flat (optim/flat.py), gradients written into their slots, and the
engine's protocol for ops that add a waiting gradient in themselves (tensor.py)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minran
import minran.functional as F
from minran import Tensor, nn, optim
from minran.cuda import kernels
from minran.gradcheck import gradcheck

from .kernels.tiers import assert_same_bits


def small_net(seed=0, dtype=np.float64):
    minran.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Conv2d(4, 4, 1, bias=True), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.GlobalAvgPool(), nn.Linear(4, 3))
    return net.to(dtype=dtype)


def batches(seed, n=4, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((5, 3, 6, 6)).astype(dtype), rng.integers(0, 3, 5))
            for _ in range(n)]


def train(flat, momentum, nesterov, weight_decay, seed=0, where="numpy"):
    """Four SGD steps of the small net; returns its parameters, the momentum buffers, and how
    many of the steps went over the flat buffer."""
    net = small_net(seed)
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=momentum, nesterov=nesterov,
                    weight_decay=weight_decay, flat=flat)
    flat_steps, real_flat_step = [], opt._flat_step

    def counted():
        flat_steps.append(1)
        real_flat_step()
    opt._flat_step = counted
    with kernels.use("emulate" if where == "emulated" else "off"):
        for i, (x, y) in enumerate(batches(seed)):
            opt.lr = 0.1 if i < 2 else 0.01   # a schedule's change, read by the kernel
            loss = F.cross_entropy(net(Tensor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return ([p.data.copy() for p in net.parameters()],
            [None if b is None else b.copy() for b in opt.buffers], len(flat_steps))


@given(st.sampled_from([(0.0, False), (0.9, False), (0.9, True)]), st.sampled_from([0.0, 1e-2]),
       st.integers(0, 100))
def test_a_flat_step_is_the_per_parameter_step_bit_for_bit(momentum_nesterov, weight_decay, seed):
    """One pass over the flat buffer does, element by element, exactly what one pass per
    parameter did: the same values, to the last bit."""
    momentum, nesterov = momentum_nesterov
    flat = train(True, momentum, nesterov, weight_decay, seed)
    plain = train(False, momentum, nesterov, weight_decay, seed)
    assert (flat[2], plain[2]) == (4, 0)   # each step over the flat buffer, and none
    assert len(flat[0] + flat[1]) == len(plain[0] + plain[1])
    for a, b in zip(flat[0] + flat[1], plain[0] + plain[1]):
        if a is None or b is None:
            assert a is None and b is None
        else:
            assert_same_bits(a, b)


@pytest.mark.emulated
def test_the_flat_kernel_step_agrees_with_the_numpy_step():
    """sgd_update over the flat buffer on the emulator, its lr read from device memory, and
    the lr changed after two steps: the kernel must see the change."""
    got = train(True, 0.9, True, 1e-4, where="emulated")
    want = train(False, 0.9, True, 1e-4)
    assert got[2] == 4 and len(got[0] + got[1]) == len(want[0] + want[1])
    for a, b in zip(got[0] + got[1], want[0] + want[1]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_parameters_view_one_buffer_and_their_gradients_are_written_in_place():
    net = small_net()
    before = [p.data.copy() for p in net.parameters()]
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    flat = opt.flat
    assert flat is not None and flat.size == sum(p.size for p in net.parameters())
    for p, b, offset in zip(net.parameters(), before, flat.offsets):
        assert_same_bits(p.data, b)   # packing moved nothing
        assert np.shares_memory(p.data, flat.data)
        assert p.data.__array_interface__["data"][0] == flat.data[offset:].ctypes.data
    x, y = batches(0)[0]
    F.cross_entropy(net(Tensor(x)), y).backward()
    for name, p in net.named_parameters():
        # conv, batch norm and linear write their gradients straight into the slot
        assert p.grad.data is p._grad_slot, name
    plain = small_net()
    F.cross_entropy(plain(Tensor(x)), y).backward()
    for p, q in zip(net.parameters(), plain.parameters()):
        assert_same_bits(p.grad.data, q.grad.data)


def test_gradients_accumulate_in_the_slot_across_backward_calls():
    net = small_net()
    optim.SGD(net.parameters(), lr=0.1)
    plain = small_net()
    x, y = batches(0)[0]
    for model in (net, plain):
        for _ in range(2):   # no zero_grad in between: the gradients add up
            F.cross_entropy(model(Tensor(x)), y).backward()
    for p, q in zip(net.parameters(), plain.parameters()):
        assert p.grad.data is p._grad_slot
        np.testing.assert_allclose(p.grad.data, q.grad.data, rtol=1e-12)


def test_a_parameter_used_twice_gets_the_sum_of_both_gradients():
    w = nn.Parameter(np.array([1.5, -2.0, 0.5]))
    optim.SGD([w], lr=0.1)
    x = Tensor(np.array([[1.0, 2.0, 3.0], [0.0, 1.0, -1.0]]))
    F.batch_norm(x, w, None, None, None, True).sum().backward()   # w through batch norm
    first = w.grad.data.copy()
    w.grad = None
    out = F.batch_norm(x, w, None, None, None, True) + F.batch_norm(x * 2, w, None, None,
                                                                    None, True)
    (out * Tensor(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))).sum().backward()
    plain = nn.Parameter(w.data.copy())
    ref = F.batch_norm(x, plain, None, None, None, True) + F.batch_norm(x * 2, plain, None,
                                                                        None, None, True)
    (ref * Tensor(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))).sum().backward()
    np.testing.assert_allclose(w.grad.data, plain.grad.data, rtol=1e-12)
    assert w.grad.data is w._grad_slot
    assert not np.allclose(first, w.grad.data)


def test_a_gradient_set_by_hand_is_used_and_a_missing_one_leaves_its_parameter_alone():
    a, b = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(2) * 5)
    opt = optim.SGD([a, b], lr=0.5)
    a.grad = Tensor(np.array([1.0, 2.0, 3.0]))   # not in the slot: copied there
    b.grad = Tensor(np.array([2.0, 2.0]))
    opt.step()
    np.testing.assert_array_equal(a.data, [0.5, 0.0, -0.5])
    np.testing.assert_array_equal(b.data, [4.0, 4.0])
    a.grad, b.grad = Tensor(np.array([1.0, 1.0, 1.0])), None
    opt.step()   # b has no gradient: it must not move (a flat pass would move it)
    np.testing.assert_array_equal(a.data, [0.0, -0.5, -1.0])
    np.testing.assert_array_equal(b.data, [4.0, 4.0])


def test_moving_the_model_after_the_optimiser_still_trains_it():
    net = small_net(dtype=np.float32)
    opt = optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net.to(dtype=np.float64)   # new arrays: the flat buffers no longer hold the parameters
    assert not opt.flat.intact()
    x, y = batches(0, dtype=np.float64)[0]
    before = [p.data.copy() for p in net.parameters()]
    F.cross_entropy(net(Tensor(x)), y).backward()
    opt.step()
    assert all(not np.array_equal(p.data, b) for p, b in zip(net.parameters(), before))
    assert all(p.grad.data.dtype == np.float64 for p in net.parameters())


def test_a_resumed_flat_optimiser_continues_exactly():
    """state_dict saves one momentum buffer per parameter; a new (flat) optimiser loaded
    from it continues bit for bit where the first would have gone."""
    data = batches(1, n=4)

    def run(steps, state=None, net=None):
        net = net or small_net()
        opt = optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                        weight_decay=1e-4)
        if state is not None:
            opt.load_state_dict(state)
        for x, y in steps:
            loss = F.cross_entropy(net(Tensor(x)), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return net, opt
    whole, _ = run(data)
    half, opt = run(data[:2])
    state = opt.state_dict()
    assert [b.shape for b in state["buffers"]] == [p.shape for p in half.parameters()]
    resumed = small_net()
    resumed.load_state_dict(half.state_dict())
    resumed, _ = run(data[2:], state=state, net=resumed)
    for p, q in zip(whole.parameters(), resumed.parameters()):
        assert_same_bits(p.data, q.data)


# ---- ops that take in a waiting gradient ------------------------------------------------------
@given(st.integers(0, 1000), st.booleans(), st.booleans())
def test_batch_norm_adding_the_other_gradient_of_its_input_passes_gradcheck(seed, relu, training):
    """x feeds batch norm and an identity path (a residual unit's shortcut): the engine
    hands batch norm x's waiting gradient, which it adds in as it writes its own."""
    from minran.functional import normalization
    handed = []
    real = normalization._backward

    def spy(*args, **kwargs):
        handed.append(args[-1] is not None)
        return real(*args, **kwargs)
    rng = np.random.default_rng(seed)
    x, w, b = (Tensor(a, requires_grad=True) for a in (
        rng.standard_normal((3, 2, 2, 3)) * 2 + 1, rng.standard_normal(2),
        rng.standard_normal(2)))
    rm, rv = np.zeros(2), np.ones(2) * 1.5

    def f(x, w, b):
        return F.batch_norm(x, w, b, rm.copy(), rv.copy(), training, relu=relu) * 3.0 + x * x + x
    normalization._backward = spy
    try:
        assert gradcheck(f, x, w, b)
    finally:
        normalization._backward = real
    assert handed == [True]   # the outer add's gradient of x reached batch norm first


@pytest.mark.parametrize("op_first", [True, False])
def test_an_op_that_has_no_gradient_for_an_input_gives_its_waiting_gradient_back(op_first):
    """An accumulating op returning None for an input must not lose what was waiting. Which
    of the two sums the engine visits first depends on their order in the add: in one the
    gradient of y is waiting when the op runs, in the other it is not yet there."""
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = x * 3.0
    waiting = []

    def backward(g, partial):
        waiting.append(partial[0] is not None)
        return (None,)
    backward.accumulates = True
    z = Tensor._from_op(y.data.copy(), (y,), backward, "nothing")
    (z.sum() + y.sum() if op_first else y.sum() + z.sum()).backward()
    np.testing.assert_array_equal(x.grad.data, [3.0, 3.0])
    assert waiting == [not op_first]


def test_sequential_runs_batch_norm_then_relu_as_the_fused_op():
    net = nn.Sequential(nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 2, 1), nn.ReLU())
    ops = []
    real = Tensor._from_op.__func__

    def recording(cls, data, parents, backward, op):
        ops.append(op)
        return real(cls, data, parents, backward, op)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32),
               requires_grad=True)
    Tensor._from_op = classmethod(recording)
    try:
        out = net(x)
    finally:
        Tensor._from_op = classmethod(real)
    assert ops == ["batch_norm_relu", "conv2d", "relu"]
    out.sum().backward()
    bn, conv = net[0], net[2]
    x2 = Tensor(x.data.copy(), requires_grad=True)
    plain = F.relu(F.conv2d(F.relu(F.batch_norm(x2, bn.weight, bn.bias, None, None, True)),
                            conv.weight, conv.bias))
    assert_same_bits(out.data, plain.data)
    plain.sum().backward()
    assert_same_bits(x.grad.data, x2.grad.data)
