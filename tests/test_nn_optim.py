"""Modules, state dicts, SGD's update rule, schedules, and a small end-to-end learning test."""
import math

import numpy as np
import pytest

import minran
import minran.functional as F
from minran import Tensor, nn, optim
from minran import reference as R


def test_module_registry_and_state_dict_round_trip():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "1.weight", "1.bias"]
    assert [n for n, _ in model.named_buffers()] == ["1.running_mean", "1.running_var"]
    state = model.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    model(Tensor(np.random.default_rng(0).standard_normal((2, 3, 5, 5)).astype(np.float32)))
    assert not np.allclose(model[1].running_mean, 0)     # training updated the buffer in place
    model.load_state_dict(state)
    np.testing.assert_array_equal(model[1].running_mean, 0)
    with pytest.raises(KeyError, match="missing keys"):
        model.load_state_dict({})
    with pytest.raises(ValueError, match="shape"):
        model.load_state_dict({**state, "0.weight": np.zeros((1, 1, 1, 1))})


def test_train_eval_and_zero_grad():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm2d(2))
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    F.cross_entropy(model(Tensor((np.ones((4, 3)) * np.arange(4)[:, None]).astype(np.float32))),
                    np.array([0, 1, 0, 1])).backward()
    assert model[0].weight.grad is not None
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_to_dtype_keeps_parameter_objects():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    params = model.parameters()
    model.to(dtype=np.float64)
    assert model.parameters()[0] is params[0] and params[0].dtype == np.float64
    assert model[1].running_var.dtype == np.float64


def test_kaiming_init_scale_and_seed():
    minran.manual_seed(3)
    a = nn.Conv2d(64, 64, 3).weight.data
    minran.manual_seed(3)
    b = nn.Conv2d(64, 64, 3).weight.data
    np.testing.assert_array_equal(a, b)
    assert a.std() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.02)


# flat=False: the update parameter by parameter, which SGD also takes when its parameters
# cannot share one buffer (mixed dtypes or devices) or were moved after it was made.
@pytest.mark.parametrize("flat", [True, False])
@pytest.mark.parametrize("momentum, nesterov, wd", [(0, False, 0), (0.9, False, 0),
                                                    (0.9, True, 1e-4), (0.5, True, 0.1)])
def test_sgd_matches_the_reference_rule(momentum, nesterov, wd, flat):
    p = nn.Parameter(np.array([1.0, -2.0]))
    opt = optim.SGD([p], lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=wd,
                    flat=flat)
    grads = [np.array([0.5, 1.0]), np.array([-1.0, 0.25]), np.array([2.0, 2.0])]
    given = [g.copy() for g in grads]
    for g in grads:
        p.grad = Tensor(g)
        opt.step()
    expected, buffers = [np.array([1.0, -2.0])], [None]   # PyTorch's documented update
    for g in given:
        expected, buffers = R.sgd.sgd_step(expected, [g], buffers, 0.1, momentum, nesterov, wd)
    expected = expected[0]
    np.testing.assert_allclose(p.data, expected)
    for g, before in zip(grads, given):   # the caller's gradients are not the momentum's
        np.testing.assert_array_equal(g, before)


def test_sgd_state_round_trip_and_errors():
    p = nn.Parameter(np.ones(2))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = Tensor(np.ones(2))
    opt.step()
    state = opt.state_dict()
    q = nn.Parameter(np.ones(2))
    opt2 = optim.SGD([q], lr=0.5, momentum=0.9)
    opt2.load_state_dict(state)
    np.testing.assert_array_equal(opt2.buffers[0], opt.buffers[0])
    assert opt2.lr == 0.1
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)


def _after_one_momentum_step(flat=True):
    """An SGD with momentum after one step, its state_dict, and a copy of that state's buffer."""
    p = nn.Parameter(np.ones(2))
    opt = optim.SGD([p], lr=0.1, momentum=0.9, flat=flat)
    p.grad = Tensor(np.ones(2))
    opt.step()
    state = opt.state_dict()
    return opt, state, state["buffers"][0].copy()


@pytest.mark.parametrize("flat", [True, False])
def test_sgd_state_dict_is_a_snapshot(flat):
    # A checkpoint is the state at one moment: later steps must not reach into it.
    opt, state, saved = _after_one_momentum_step(flat)
    opt.step()
    np.testing.assert_array_equal(state["buffers"][0], saved)


@pytest.mark.parametrize("flat", [True, False])
def test_sgd_loaded_from_one_state_do_not_share_momentum(flat):
    _, state, saved = _after_one_momentum_step(flat)
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    opt_a = optim.SGD([a], lr=0.1, momentum=0.9, flat=flat)
    opt_b = optim.SGD([b], lr=0.1, momentum=0.9, flat=flat)
    opt_a.load_state_dict(state)
    opt_b.load_state_dict(state)
    a.grad = Tensor(np.ones(2))
    opt_a.step()
    np.testing.assert_array_equal(opt_b.buffers[0], saved)
    np.testing.assert_array_equal(state["buffers"][0], saved)


def test_cosine_schedule_ends_at_min_lr_and_stays():
    opt = optim.SGD([nn.Parameter(np.ones(1))], lr=1.0)
    c = optim.CosineSchedule(opt, 0.5, total=10, min_lr=0.1)
    assert c.lr_at(0) == pytest.approx(0.5) and c.lr_at(5) == pytest.approx(0.3)
    assert [c.lr_at(i) for i in (10, 11, 25)] == pytest.approx([0.1, 0.1, 0.1])  # not back up
    for _ in range(12):
        c.step()
    assert opt.lr == pytest.approx(0.1)
    assert optim.ConstantSchedule(opt, 0.25).lr_at(1000) == 0.25 and opt.lr == 0.25


def test_schedules():
    opt = optim.SGD([nn.Parameter(np.ones(1))], lr=1.0)
    s = optim.MultiStepSchedule(opt, 0.1, milestones=[2, 4])
    lrs = []
    for _ in range(6):
        lrs.append(opt.lr)
        s.step()
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    c = optim.CosineSchedule(opt, 1.0, total=4)
    assert [c.lr_at(i) for i in range(5)] == pytest.approx([1, 0.5 + 0.5 * math.cos(math.pi / 4), 0.5,
                                                            0.5 - 0.5 * math.cos(math.pi / 4), 0])
    c.load_state_dict({"iteration": 2})
    assert opt.lr == pytest.approx(0.5)


def test_two_layer_conv_net_learns_a_separable_task():
    # Bright-left versus bright-right images: a conv net must learn it in a few dozen steps.
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 64)
    x = rng.standard_normal((64, 1, 8, 8)) * 0.5
    x[y == 0, :, :, :4] += 1.0
    x[y == 1, :, :, 4:] += 1.0
    x = Tensor(x.astype(np.float32))
    minran.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1),
                          nn.GlobalAvgPool())
    opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    first = None
    for _ in range(40):
        loss = F.cross_entropy(model(x), y)
        first = first or loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    accuracy = (model(x).data.argmax(1) == y).mean()
    assert loss.item() < first / 2 and accuracy > 0.95
