"""Switches entered more than once: no_grad, counting_macs, train()/eval(), kernels.use and
emulator.orders, nested, re-entered, reused and left by an exception. Each must leave
behind exactly the state it found, and what it switches must behave as the switch says:
graphs recorded or not, running statistics updated or not, kernels launched or not."""
import numpy as np
import pytest

import minran.functional as F
from minran import Tensor, manual_seed, nn, trainer
from minran.cuda import emulator, kernels
from minran.models import build_model
from minran.models.summary import summary
from minran.tensor import is_grad_enabled, no_grad


def records_graph():
    """Does an op on a tensor that requires grad record a graph right now?"""
    return (Tensor(np.ones(3), requires_grad=True) * 2).sum().requires_grad


# ---- no_grad ---------------------------------------------------------------------------------
def test_no_grad_nested_reused_and_interrupted_always_restores_what_it_found():
    assert records_graph() and is_grad_enabled()
    with no_grad():
        with no_grad():
            assert not records_graph()
        assert not records_graph()          # the inner one put back "off", not "on"
    assert records_graph()

    same = no_grad()
    for _ in range(2):                      # one object, entered twice in turn
        with same:
            assert not records_graph()
        assert records_graph()
    with same:                              # ... and nested in itself
        with same:
            assert not records_graph()
        assert not records_graph()
    assert records_graph() and is_grad_enabled()

    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 / 0
    assert records_graph()


def test_a_graph_recorded_before_no_grad_still_runs_backward_after_it():
    """The optimiser steps under no_grad between a forward and the next: the switch must not
    touch graphs that already exist, nor record the update."""
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    loss = (w * w).sum()
    with no_grad():
        w.data -= 0.5                       # an optimiser-like update
        assert not (w * 3).requires_grad
    loss.backward()
    np.testing.assert_array_equal(w.grad.data, [1.0, 3.0])   # 2 * (w at the forward)


# ---- counting_macs ---------------------------------------------------------------------------
def test_counting_macs_reentered_counts_only_inside_and_stops_after():
    x, w = Tensor(np.ones((1, 2, 4, 4))), Tensor(np.ones((3, 2, 3, 3)))
    conv = 1 * 3 * 2 * 2 * (2 * 3 * 3)     # N * Cout * Ho * Wo * (Cin * kh * kw)
    counter = F.counting_macs()
    with counter as outer:
        F.conv2d(x, w)
        with counter as inner:              # the same object, nested in itself
            F.conv2d(x, w)
        F.conv2d(x, w)
    assert inner == {"conv2d": conv} and outer == {"conv2d": 2 * conv}
    F.conv2d(x, w)                          # after both: counted nowhere
    assert inner == {"conv2d": conv} and outer == {"conv2d": 2 * conv}
    with counter as again:
        F.conv2d(x, w)
    assert again == {"conv2d": conv}


# ---- train() and eval() ----------------------------------------------------------------------
def small_net():
    manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2))


def images(seed=0, n=4):
    return Tensor(np.random.default_rng(seed).standard_normal((n, 3, 5, 5)).astype(np.float32) * 2 + 1)


def buffers(model):
    return {k: v.copy() for k, v in model.named_buffers()}


def test_train_and_eval_toggled_many_times_mean_exactly_what_they_say():
    """However often the mode flips, an evaluation is what a network never toggled computes
    from the same weights and running statistics, and changes nothing; a training forward
    normalises by the batch and moves the running statistics once."""
    model = small_net()
    x = images()
    first_training_output = small_net()(x).data   # normalised by the batch: no history
    always_training, trainings = small_net(), 0
    for mode in ["eval", "train", "eval", "eval", "train", "train", "eval", "train", "eval"]:
        getattr(model, mode)()
        assert all(m.training == (mode == "train") for m in model.modules()), mode
        start = buffers(model)
        out = model(x).data
        if mode == "eval":
            untoggled = small_net()
            untoggled.load_state_dict(model.state_dict())
            untoggled.eval()
            np.testing.assert_array_equal(out, untoggled(x).data)
            assert all(np.array_equal(buffers(model)[k], start[k]) for k in start)
        else:
            np.testing.assert_array_equal(out, first_training_output)
            assert all(not np.array_equal(buffers(model)[k], start[k]) for k in start)
            always_training(x)
            trainings += 1
    # the model's statistics moved exactly once per training forward, none per evaluation
    for k, v in buffers(model).items():
        np.testing.assert_array_equal(v, buffers(always_training)[k])
    assert trainings == 4
    assert model.train() is model and model.eval() is model and model.train(False) is model
    assert not any(m.training for m in model.modules())


def test_evaluate_and_summary_give_back_every_modules_own_mode_even_when_interrupted():
    """A model whose batch norms are frozen (eval) while the rest trains: evaluating it, or
    printing its summary, must leave each module as it was, not the root's mode everywhere;
    and an evaluation stopped by Ctrl-C must not leave the model in eval mode."""
    model = build_model("attention56", widths=(4, 8, 8, 8))
    model.train()
    frozen = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)][::3]
    for m in frozen:
        m.eval()
    modes = {id(m): m.training for m in model.modules()}
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    trainer.evaluate(model, x, np.arange(4), batch_size=2)
    assert {id(m): m.training for m in model.modules()} == modes
    buffers = {name: b.copy() for name, b in model.named_buffers()}
    summary(model, file=open("/dev/null", "w"))
    assert {id(m): m.training for m in model.modules()} == modes
    # and it ran in eval mode: a training-mode pass would have moved the running statistics
    for name, b in model.named_buffers():
        np.testing.assert_array_equal(b, buffers[name], err_msg=name)

    real_forward = model.forward

    def interrupted(*args, **kwargs):
        assert not model.training           # evaluation runs in eval mode
        raise KeyboardInterrupt
    model.forward = interrupted
    with pytest.raises(KeyboardInterrupt):
        trainer.evaluate(model, x, np.arange(4), batch_size=2)
    model.forward = real_forward
    assert {id(m): m.training for m in model.modules()} == modes
    assert is_grad_enabled()


# ---- kernels.use and emulator.orders ---------------------------------------------------------
def launches(monkeypatch):
    launched = []
    real = kernels.Source.launch
    monkeypatch.setattr(kernels.Source, "launch",
                        lambda self, name, *a, **k: launched.append(name) or real(self, name, *a, **k))
    return launched


@pytest.mark.emulated
def test_kernels_use_nested_and_interrupted_restores_each_outer_mode(monkeypatch):
    launched = launches(monkeypatch)
    x = Tensor(np.random.default_rng(0).standard_normal((1, 1, 4, 4)).astype(np.float32))
    want = F.max_pool2d(x, 2).data
    start = kernels.mode()
    with kernels.use("emulate"):
        with kernels.use("off"):
            with kernels.use("emulate"):
                np.testing.assert_array_equal(F.max_pool2d(x, 2).data, want)
                assert launched == ["max_pool2d_forward"]
            F.max_pool2d(x, 2)
            assert launched == ["max_pool2d_forward"] and kernels.mode() == "off"
        with pytest.raises(ValueError, match="mode must be one of"):
            with kernels.use("on"):          # refused: the mode it found stays
                pass
        assert kernels.mode() == "emulate"
        with pytest.raises(RuntimeError):
            with kernels.use("off"):
                raise RuntimeError("inside")
        F.max_pool2d(x, 2)
        assert launched == ["max_pool2d_forward"] * 2
    assert kernels.mode() == start


@pytest.mark.emulated
def test_emulator_orders_nested_restore_each_outer_choice():
    assert emulator._orders == emulator.ORDERS
    with emulator.orders("reverse"):
        with emulator.orders("forward", "shuffled"):
            assert emulator._orders == ("forward", "shuffled")
        with pytest.raises(ValueError):
            with emulator.orders("sideways"):
                pass
        assert emulator._orders == ("reverse",)
        with pytest.raises(RuntimeError):
            with emulator.orders("shuffled"):
                raise RuntimeError("inside")
        assert emulator._orders == ("reverse",)
    assert emulator._orders == emulator.ORDERS
