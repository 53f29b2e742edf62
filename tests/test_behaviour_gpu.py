"""The GPU path's bookkeeping, where a slip changes no result on the CPU and would show only
on a GPU (as a race, a count that lies, or a value read while a copy is in flight): what the
stand-in GPU refuses and counts, flat parameters after a Module.to() that moved nothing, and
the step's progress, read without waiting."""
import numpy as np
import pytest

from minran import Tensor, backend, manual_seed, nn
from minran.cuda import standin
from minran.optim import SGD
from minran.step import Progress


# ---- the stand-in GPU -------------------------------------------------------------------------
def test_a_copy_from_the_host_inside_a_capture_is_refused_whichever_way_it_is_asked():
    """A CUDA graph replays the copy's source pointer, not the host array's new values: the
    batch must be copied into the graph's buffers before the replay, outside the capture."""
    with standin.device():
        xp = backend.cupy
        stream = xp.cuda.Stream(non_blocking=True)
        a = xp.zeros(3)
        xp.cuda.Device().synchronize()
        with stream:
            stream.begin_capture()
            with pytest.raises(standin.CaptureError, match="a copy from the host during a "
                                                           "stream capture"):
                a.set(np.ones(3))
            with pytest.raises(standin.CaptureError, match="a copy from the host during a "
                                                           "stream capture"):
                xp.asarray(np.ones(3))
            stream.end_capture()


def test_a_host_read_orders_the_work_it_waited_for_before_any_stream():
    """Reading a result waits for its stream: from then on every stream may use what that
    stream wrote; before it, nothing orders another stream after the write."""
    with standin.device(kernels="emulate"):
        xp = backend.cupy
        first, second = xp.cuda.Stream(non_blocking=True), xp.cuda.Stream(non_blocking=True)
        with first:
            x = xp.zeros(3)
            x += 1
        with second:
            with pytest.raises(standin.StandInError, match="last written on stream"):
                x * 2
        with first:
            assert float(x.sum()) == 3.0   # the host waits for `first`
        with second:
            y = x * 2
        second.synchronize()
        assert y.get().tolist() == [2.0, 2.0, 2.0]


def test_work_recorded_in_a_capture_is_counted_when_the_graph_runs():
    with standin.device() as gpu:
        xp = backend.cupy
        stream = xp.cuda.Stream(non_blocking=True)
        x = xp.ones(8)
        xp.cuda.Device().synchronize()
        start = gpu.snapshot()
        with stream:
            stream.begin_capture()
            y = x * 2
            y += 1
            graph = stream.end_capture()
            assert gpu.since(start).launches == {}   # recorded, nothing ran
            graph.launch(stream)
            graph.launch(stream)
        counts = gpu.since(start)
        assert counts.launches == {"cupy:multiply": 2, "cupy:add": 2}
        assert counts.graph_launches == 2


def test_the_pool_serves_requests_rounded_as_cupys_pool_rounds_them():
    """CuPy's pool hands out blocks in multiples of 512 bytes: a freed block of 1,000 bytes
    (1,024) serves a request of 1,020, not one of 1,200 (1,536)."""
    with standin.device() as gpu:
        xp = backend.cupy
        a = xp.empty(250, dtype=np.float32)
        del a
        start = gpu.snapshot()
        b = xp.empty(255, dtype=np.float32)
        assert gpu.since(start).new_memory == 0
        c = xp.empty(300, dtype=np.float32)
        assert gpu.since(start).new_memory == 1
        assert gpu.pool.held == 1024 + 1536 and gpu.pool.in_use == 1024 + 1536
        del b, c


# ---- flat parameters ---------------------------------------------------------------------------
def test_a_model_moved_where_it_already_is_still_trains_as_without_flat_parameters():
    """`model.to(device, dtype)` where the model already is keeps every parameter's array but
    gives up the flat gradient slots (a move would leave them behind): the optimiser must see
    that its flat buffers no longer hold the gradients, and step parameter by parameter."""
    def net():
        manual_seed(0)
        return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    moved, plain = net(), net()
    opt_moved = SGD(moved.parameters(), lr=0.1, momentum=0.9)
    opt_plain = SGD(plain.parameters(), lr=0.1, momentum=0.9, flat=False)
    arrays = [p.data for p in moved.parameters()]
    moved.to(device="cpu", dtype=np.float32)
    assert all(p.data is a for p, a in zip(moved.parameters(), arrays))
    x = Tensor(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))
    for _ in range(2):
        for model, opt in ((moved, opt_moved), (plain, opt_plain)):
            opt.zero_grad()
            out = model(x)
            (out * out).sum().backward()
            opt.step()
    for p, q in zip(moved.parameters(), plain.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


# ---- the step's progress ----------------------------------------------------------------------
def test_progress_shows_what_its_previous_update_copied_unchanged_by_the_next_copy():
    """Each update() starts an asynchronous copy of the totals into one pinned buffer and
    returns what the previous update's copy brought: a copy of that buffer, since the copy it
    starts now overwrites it while the host reads (on a GPU, at any moment)."""
    with standin.device(kernels="emulate"):
        totals = backend.cupy.zeros(6)
        progress = Progress(totals)
        seen = []
        for _ in range(3):
            totals += 1   # a step adds its batch
            seen.append(progress.update())
        assert seen[0] is None   # nothing had arrived yet
        np.testing.assert_array_equal(seen[1], np.full(6, 1.0))
        np.testing.assert_array_equal(seen[2], np.full(6, 2.0))
        np.testing.assert_array_equal(progress.final(), np.full(6, 3.0))
