"""Loading a state that does not match: a module's weights (missing, unexpected, wrong
shape, wrong dtype, under strict and non-strict rules) and an optimiser's momentum. A load
is either whole or refused, and a refused load leaves the model (or optimiser) exactly as it
was, whatever order the bad entry comes in."""
import re

import numpy as np
import pytest

from minran import Tensor, manual_seed, nn
from minran.optim import SGD


def model():
    manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
                         nn.ReLU(), nn.Linear(4, 2))


def snapshot(m):
    return {k: v.copy() for k, v in m.state_dict().items()}


def assert_unchanged(m, before):
    after = m.state_dict()
    assert list(after) == list(before)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)
        assert after[k].dtype == before[k].dtype, k


def other_values(state):
    """The same keys, shapes and dtypes, every value different."""
    return {k: (v + 1.5).astype(v.dtype) for k, v in state.items()}


KEYS = ["0.weight", "1.weight", "1.bias", "3.weight", "3.bias", "1.running_mean", "1.running_var"]


def test_a_matching_state_loads_whole_and_is_copied_not_shared():
    m = model()
    assert list(m.state_dict()) == KEYS
    new = other_values(m.state_dict())
    m.load_state_dict(new)
    assert_unchanged(m, new)
    new["0.weight"][...] = 7           # the model holds its own copy
    assert not (m.state_dict()["0.weight"] == 7).any()


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("bad_key", KEYS)
def test_a_wrong_shape_anywhere_is_refused_and_changes_nothing(strict, bad_key):
    """Whether the misfit is the first entry or the last, the entries before it must not
    have been written already."""
    m = model()
    before = snapshot(m)
    new = other_values(before)
    new[bad_key] = np.zeros(new[bad_key].shape + (1,), new[bad_key].dtype)
    with pytest.raises(ValueError, match=rf"{bad_key} has shape .* in the state but .* in the model"):
        m.load_state_dict(new, strict=strict)
    assert_unchanged(m, before)


@pytest.mark.parametrize("bad_key", KEYS)
def test_missing_and_unexpected_keys_strict_refuses_naming_them_and_changes_nothing(bad_key):
    m = model()
    before = snapshot(m)
    new = other_values(before)
    del new[bad_key]
    with pytest.raises(KeyError, match=rf"missing keys \['{bad_key}'\], unexpected keys \[\]"):
        m.load_state_dict(new)
    assert_unchanged(m, before)
    new = other_values(before)
    new["4.weight"] = np.zeros(3, np.float32)
    with pytest.raises(KeyError, match=r"missing keys \[\], unexpected keys \['4.weight'\]"):
        m.load_state_dict(new)
    assert_unchanged(m, before)


def test_non_strict_loads_what_fits_keeps_what_is_missing_and_ignores_the_rest():
    m = model()
    before = snapshot(m)
    new = other_values(before)
    del new["1.running_var"], new["3.bias"]
    new["extra.weight"] = np.ones(5, np.float32)
    m.load_state_dict(new, strict=False)
    after = m.state_dict()
    for k in KEYS:
        np.testing.assert_array_equal(after[k], before[k] if k in ("1.running_var", "3.bias")
                                      else new[k], err_msg=k)
    assert "extra.weight" not in after


def test_another_float_dtype_is_converted_to_the_models_own():
    """A float64 state (a gradcheck's model) into float32 rounds to the model's dtype, and
    float32 into a float64 model keeps the values exactly: the model's dtype never changes."""
    m = model()
    new = {k: (v.astype(np.float64) + 1 / 3) for k, v in m.state_dict().items()}
    m.load_state_dict(new)
    for k, v in m.state_dict().items():
        assert v.dtype == np.float32
        np.testing.assert_array_equal(v, new[k].astype(np.float32))
    wide = model().to(dtype=np.float64)
    narrow = model().state_dict()
    wide.load_state_dict(narrow)
    for k, v in wide.state_dict().items():
        assert v.dtype == np.float64
        np.testing.assert_array_equal(v, narrow[k].astype(np.float64))


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("wrong", [
    lambda v: v.astype(np.complex64) + 1j,           # an imaginary part would be dropped
    lambda v: np.full(v.shape, "0.5"),               # text
    lambda v: v > 0,                                 # a mask, not weights
    lambda v: np.empty(v.shape, object)])
def test_values_that_are_not_real_numbers_are_refused_and_change_nothing(strict, wrong):
    m = model()
    before = snapshot(m)
    new = other_values(before)
    new["3.weight"] = wrong(new["3.weight"])         # late in the order: the rest came first
    with pytest.raises(ValueError, match=r"load_state_dict: 3.weight has dtype \S+ in the state"):
        m.load_state_dict(new, strict=strict)
    assert_unchanged(m, before)


def test_integer_values_load_exactly():
    m = model()
    new = {k: np.arange(v.size).reshape(v.shape) for k, v in m.state_dict().items()}
    m.load_state_dict(new)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, new[k])
        assert v.dtype == np.float32


# ---- the optimiser ---------------------------------------------------------------------------
def stepped_optimizer():
    m = model()
    opt = SGD(m.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 4, 4)).astype(np.float32))
    for _ in range(2):
        out = m[3](m[2](m[1](m[0](x))).mean(axis=(2, 3)))
        opt.zero_grad()
        (out * out).sum().backward()
        opt.step()
    return m, opt


def optimizer_snapshot(opt):
    state = opt.state_dict()
    return {**state, "buffers": [None if b is None else b.copy() for b in state["buffers"]]}


def assert_optimizer_unchanged(opt, before):
    after = opt.state_dict()
    assert {k: v for k, v in after.items() if k != "buffers"} == \
           {k: v for k, v in before.items() if k != "buffers"}
    assert len(after["buffers"]) == len(before["buffers"])
    for a, b in zip(after["buffers"], before["buffers"]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("index", [0, 2, 4])
def test_momentum_of_the_wrong_shape_is_refused_and_changes_nothing(index):
    """A (1,)-shaped buffer would broadcast over a whole parameter at the next step, a longer
    one fail there, and one of the right size in another shape (a transposed weight's) would
    be taken in the wrong order: none may be taken, and nothing else either."""
    _, opt = stepped_optimizer()
    before = optimizer_snapshot(opt)
    shape = before["buffers"][index].shape
    other = shape[::-1] if len(shape) > 1 else shape + (1,)
    for wrong in (np.zeros(1, np.float32), np.zeros(before["buffers"][index].size + 1, np.float32),
                  np.zeros(other, np.float32)):
        state = optimizer_snapshot(opt)
        state["lr"], state["momentum"] = 0.5, 0.5
        state["buffers"] = [b + 1 for b in state["buffers"]]
        state["buffers"][index] = wrong
        with pytest.raises(ValueError, match=rf"momentum buffer {index} has shape "
                                             rf"{re.escape(str(wrong.shape))}"):
            opt.load_state_dict(state)
        assert_optimizer_unchanged(opt, before)


def test_a_state_loaded_into_an_optimiser_that_has_stepped_replaces_its_momentum():
    """Going back to an earlier state (a checkpoint) in the same run: the optimiser's momentum,
    by then one flat buffer, must become the state's, and the steps from there be the ones
    the optimiser took from that state the first time."""
    m, opt = stepped_optimizer()
    state, weights = optimizer_snapshot(opt), m.state_dict()
    grads = [np.random.default_rng(i).standard_normal(p.shape).astype(np.float32)
             for i, p in enumerate(m.parameters())]

    def step():
        for p, g in zip(m.parameters(), grads):
            p.grad = Tensor(g.copy())
        opt.step()
        return [p.data.copy() for p in m.parameters()]
    first = step()
    step()   # the momentum moves on
    m.load_state_dict(weights)
    opt.load_state_dict(state)
    for a, b in zip(opt.state_dict()["buffers"], state["buffers"]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(step(), first):
        np.testing.assert_array_equal(a, b)


def test_an_optimiser_state_round_trips_and_steps_as_the_original_does():
    m, opt = stepped_optimizer()
    state = optimizer_snapshot(opt)
    m2 = model()
    m2.load_state_dict(m.state_dict())
    opt2 = SGD(m2.parameters(), lr=1.0)
    opt2.load_state_dict(state)
    for p, q in zip(m.parameters(), m2.parameters()):
        p.grad = Tensor(np.ones_like(p.data))
        q.grad = Tensor(np.ones_like(q.data))
    opt.step()
    opt2.step()
    for p, q in zip(m.parameters(), m2.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
