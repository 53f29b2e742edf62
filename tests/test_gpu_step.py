"""The GPU training step, proven on the CPU through the stand-in GPU (cuda/standin.py):
what one step of Attention-92 asks of a GPU stays within its budget, and the step replayed
as a CUDA graph is the eager step, bit for bit."""
import numpy as np
import pytest

import minran
from minran import backend
from minran.cuda import standin
from minran.graph import GraphStep
from minran.models import attention56
from minran.optim import SGD, MultiStepSchedule
from minran.step import TrainingStep
from minran.step_counts import count_step

from .kernels.tiers import assert_same_bits
from .test_train import tiny_dataset

# Per training step of Attention-92 at batch 64 (issue 19's targets; docs/KERNELS.md).
LAUNCH_BUDGET = 1_500
CALL_BUDGET = 1_500


@pytest.fixture(scope="module")
def attention92_counts():
    with standin.device(kernels="count"):
        return count_step("attention92", 64)


@pytest.mark.slow
def test_an_attention92_step_stays_within_its_launch_and_call_budgets(attention92_counts):
    eager = attention92_counts["eager"]
    assert eager["gpu_launches"] <= LAUNCH_BUDGET, eager["launches"]
    assert eager["device_calls"] <= CALL_BUDGET
    # What the budget is made of: one SGD launch, one batch-norm launch each way, and no
    # pointer arrays inside products (cuda/blas.py) or copies of gradients.
    launches = eager["launches"]
    assert launches["kernel:sgd_update"] == 1
    assert launches["kernel:batch_norm_forward_training"] == launches["kernel:batch_norm_backward"] == 193
    assert eager["cupy_inside"] == 0 and launches.get("cupy:copy", 0) <= 3


@pytest.mark.slow
def test_a_step_after_the_first_reads_nothing_back_and_needs_no_new_memory(attention92_counts):
    eager = attention92_counts["eager"]
    assert eager["host_waits"] == 0
    assert eager["new_memory"] == 0
    graph = attention92_counts["graph"]
    assert graph["host_waits"] == 0 and graph["allocations"] == 0
    # A replay is the batch's two copies and one graph launch; the GPU runs the same work.
    assert graph["device_calls"] == 3 and graph["host_to_device"] == 2
    assert graph["gpu_launches"] == eager["gpu_launches"]


def small_model():
    minran.manual_seed(0)
    return attention56(widths=(4, 8, 8, 8)).to(device="gpu", dtype=np.float64)


def batch(i, n=3):
    rng = np.random.default_rng(100 + i)
    return rng.standard_normal((n, 3, 16, 16)), rng.integers(0, 10, n)


def run_steps(graph, steps=5):
    """Train the small model `steps` batches (the lr divided by 10 after the second), eagerly
    or with its full batches replayed as a CUDA graph; returns losses and the final state."""
    model = small_model()
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    schedule = MultiStepSchedule(opt, 0.1, [2])
    step = TrainingStep(model, opt)
    replay = GraphStep(step, (3, 3, 16, 16), np.float64, np.int64) if graph else None
    losses = []
    # Everything on the replay's stream (the lr's fill, the reads), as the trainer does it:
    # a read on another stream would not wait for the replay.
    stream = replay.stream if graph else backend.cupy.cuda.Stream.null
    with stream:
        for i in range(steps):
            x, y = batch(i)
            if replay is not None:
                loss, _ = replay(x, y)
            else:
                loss, _ = step(backend.cupy.asarray(x), backend.cupy.asarray(y))
            losses.append(loss.get().item())
            schedule.step()
        state = {k: np.asarray(v) for k, v in model.state_dict().items()}
        state["momentum"] = [b.get() for b in opt.buffers]
        state["totals"] = step.totals.get().tolist()
    return losses, state, replay


def assert_replay_is_eager(eager, graph):
    eager_losses, eager_state, _ = eager
    graph_losses, graph_state, _ = graph
    assert graph_losses == eager_losses
    assert len(set(eager_losses)) == 5
    assert graph_state["totals"] == eager_state["totals"]
    for key in eager_state:
        if key in ("momentum", "totals"):
            continue
        assert_same_bits(graph_state[key], eager_state[key], err_msg=key)
    assert len(graph_state["momentum"]) == len(eager_state["momentum"]) > 0
    for a, b in zip(graph_state["momentum"], eager_state["momentum"]):
        assert_same_bits(a, b)


@pytest.mark.slow
def test_the_replayed_graph_is_the_eager_step_bit_for_bit():
    """Five steps on new batch contents each time, with a change of lr: the graph (warm-up,
    capture, replays) and the eager step give the same losses, parameters, running
    statistics, momentum buffers and totals, to the last bit, in float64 (the kernels run
    through the emulator)."""
    with standin.device(kernels="emulate") as gpu:
        eager = run_steps(graph=False)
        start = gpu.snapshot()
        graph = run_steps(graph=True)
        assert graph[2].replays == 4 and gpu.since(start).graph_launches == 4
    assert_replay_is_eager(eager, graph)


@pytest.mark.gpu
def test_on_a_gpu_the_replayed_graph_is_the_eager_step_bit_for_bit():
    eager = run_steps(graph=False)
    graph = run_steps(graph=True)
    assert graph[2].replays == 4
    assert_replay_is_eager(eager, graph)


@pytest.mark.gpu
def test_on_a_gpu_no_step_after_the_first_needs_new_memory():
    """CuPy's own pool, counted by the bytes it holds: after the first step (eager) or the
    capture (graph), the pools hold no more however many steps follow."""
    cupy = backend.cupy
    pool = cupy.get_default_memory_pool()
    model = small_model()
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    step = TrainingStep(model, opt)
    held = []
    for i in range(5):
        x, y = batch(i)
        step(cupy.asarray(x), cupy.asarray(y))
        cupy.cuda.Device().synchronize()
        held.append(pool.total_bytes())
    assert held[1:] == [held[1]] * 4, held
    replay = GraphStep(step, (3, 3, 16, 16), np.float64, np.int64)
    graph_held = []
    with replay.stream:
        for i in range(5):
            replay(*batch(i))
            replay.stream.synchronize()
            graph_held.append((pool.total_bytes(), replay.pool.total_bytes()))
    assert graph_held[2:] == [graph_held[2]] * 3, graph_held


def test_a_graph_step_refuses_another_batch_shape():
    with standin.device(kernels="count"):
        model = small_model()
        opt = SGD(model.parameters(), lr=0.1)
        replay = GraphStep(TrainingStep(model, opt), (3, 3, 16, 16), np.float64, np.int64)
        x, y = batch(0, n=2)
        with pytest.raises(ValueError, match="recorded for \\(3, 3, 16, 16\\); run other "
                                             "shapes eagerly"):
            replay(x, y)


def train_on(device, tmp_path, cuda_graph=True):
    """Two epochs of 10 images in batches of 4 (so every epoch ends with a batch of 2, which
    the GPU runs eagerly), tested on 6 images in batches of 4, in float64; the history and
    the weights of the checkpoint."""
    from minran import trainer
    config = trainer.TrainConfig(arch="attention56", widths=(4, 8, 8, 8), batch_size=4,
                                 epochs=2, lr=0.05, dtype="float64", device=device,
                                 eval_batch_size=4, progress=False, cuda_graph=cuda_graph,
                                 out=str(tmp_path / f"{device}-{cuda_graph}"))
    history = trainer.train(config, tiny_dataset(n_train=10, n_test=6, size=16),
                            log=lambda *a: None)
    state = trainer.load_checkpoint(tmp_path / f"{device}-{cuda_graph}" / "checkpoint.pkl")
    return history, state


@pytest.mark.slow
def test_training_on_the_stand_in_gpu_is_the_cpu_run(tmp_path):
    """The whole --device gpu path (trainer, data, every kernel through the emulator, the CUDA
    graph with its eager last batch, the optimiser, evaluation, checkpoints) equals the CPU
    run in float64, epoch by epoch; with --no-cuda-graph it is the graph run bit for bit."""
    cpu_history, cpu_state = train_on("cpu", tmp_path)
    with standin.device(kernels="emulate") as gpu:
        gpu_history, gpu_state = train_on("gpu", tmp_path)
        # Launches of a graph: 2 of the estimate's three steps (its first is the warm-up), and
        # 3 of the run's four full batches (the first of them the warm-up); the last batch of
        # each epoch (2 images) ran eagerly.
        assert gpu.counts.graph_launches == 5
        eager_history, eager_state = train_on("gpu", tmp_path, cuda_graph=False)
    columns = ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "lr_end", "iteration")
    assert len(cpu_history) == len(gpu_history) == len(eager_history) == 2
    for cpu_row, gpu_row, eager_row in zip(cpu_history, gpu_history, eager_history):
        for column in columns:
            assert gpu_row[column] == pytest.approx(cpu_row[column], rel=1e-9, abs=1e-12), column
            assert eager_row[column] == gpu_row[column], column
    for name, want in cpu_state["model"].items():
        np.testing.assert_allclose(gpu_state["model"][name], want, rtol=1e-8, atol=1e-10,
                                   err_msg=name)
        assert_same_bits(eager_state["model"][name], gpu_state["model"][name], err_msg=name)
    assert len(gpu_state["optimizer"]["buffers"]) == len(cpu_state["optimizer"]["buffers"])
    for got, want in zip(gpu_state["optimizer"]["buffers"], cpu_state["optimizer"]["buffers"]):
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)


def test_the_progress_is_read_without_waiting_for_the_gpu(monkeypatch):
    """Each update starts an asynchronous copy of the totals and returns the one the
    previous update started, if it has arrived: the host never waits there. Only final()
    waits (at the end of an epoch)."""
    from minran.step import Progress
    with standin.device(kernels="emulate") as gpu:
        cupy = backend.cupy
        stream = cupy.cuda.Stream(non_blocking=True)
        cupy.cuda.Device().synchronize()
        with stream:
            totals = cupy.zeros(6)
            progress = Progress(totals, stream)
            start = gpu.snapshot()
            assert progress.update() is None          # a copy started, none arrived yet
            totals += 1
            assert progress.update().tolist() == [0.0] * 6   # the first copy, taken before +1
            monkeypatch.setattr(standin.Event, "done", property(lambda self: False))   # in flight
            totals += 1
            assert progress.update().tolist() == [0.0] * 6   # the same: nothing waited for
            counts = gpu.since(start)
            assert counts.host_reads == 0 and counts.synchronizations == 0
            assert progress.final().tolist() == [2.0] * 6
            assert gpu.since(start).host_reads == 1


def test_the_launcher_cost_command_times_the_launches_of_one_step():
    """benchmarks/launch_cost.py replays exactly the measured step's kernel launches: not the
    warm-up's, nor the forward pass that counting runs between the two."""
    import pathlib
    import subprocess
    import sys
    with standin.device(kernels="count"):
        launches = count_step("attention56", 2, graph=False)["eager"]["kernel"]
    root = pathlib.Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "launch_cost.py"), "--arch",
                           "attention56", "--batch", "2", "--repeats", "1"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"attention56, batch 2: {launches} kernel launches per step" in done.stdout, done.stdout
