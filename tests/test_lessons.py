"""Every lesson runs as a reader runs it, quickly; says what it claims; and together they
cover minran/.

Each lesson runs once, as __main__ (runpy), from the state a fresh interpreter has (weights
seeded 0). The claim tests then read the numbers the lesson printed from the variables it
printed them from, or from the printed lines themselves: a lesson whose prose and numbers
part ways fails here, not in front of a reader.
"""
import contextlib
import io
import pathlib
import re
import runpy
import time

import numpy as np
import pytest

import minran
import minran.functional as F
from minran import Tensor

ROOT = pathlib.Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))
TIME_LIMIT_S = 90  # per lesson, on a 2-core CI machine
_runs = {}


def lesson(number):
    """Run lesson `number` once per session: (its globals, what it printed, seconds)."""
    path = LESSONS[number - 1]
    if path not in _runs:
        minran.manual_seed(0)  # as a fresh interpreter has it
        printed = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(printed):
            namespace = runpy.run_path(str(path), run_name="__main__")
        _runs[path] = namespace, printed.getvalue(), time.perf_counter() - start
    return _runs[path]


def printed_line(out, start):
    """The first printed line that begins with `start`."""
    lines = [line for line in out.splitlines() if line.startswith(start)]
    assert lines, f"no printed line starts with {start!r}"
    return lines[0]


def test_there_is_a_course():
    assert len(LESSONS) >= 12
    assert [p.name[:2] for p in LESSONS] == [f"{i:02d}" for i in range(1, len(LESSONS) + 1)]


def _needs(number):
    """Lessons that run CUDA code on the CPU need the emulator's compiler (the emulated tier)."""
    return [pytest.mark.emulated] if "cuda" in LESSONS[number - 1].stem else []


@pytest.mark.parametrize("number", [pytest.param(n, marks=_needs(n), id=LESSONS[n - 1].stem)
                                    for n in range(1, len(LESSONS) + 1)])
def test_lesson_runs(number):
    _, out, seconds = lesson(number)
    assert seconds < TIME_LIMIT_S
    assert out.strip(), "a lesson must print what the reader should look at"
    assert "Exercises" in LESSONS[number - 1].read_text()


def test_lessons_touch_every_file_of_minran():
    named = set()
    for path in LESSONS:
        header = path.read_text().split('"""')[1]
        for files in re.findall(r"Files:(.*?)\nPaper:", header, re.S):
            for name in re.findall(r"minran/[\w/]+(?:\.py|\.cuh?|\.h|/)", files):
                named.add(name)
    # Every Python file, and every CUDA source and header (the kernels are course material too).
    wanted = {str(p.relative_to(ROOT)) for pattern in ("*.py", "*.cu", "*.cuh", "*.h")
              for p in (ROOT / "minran").rglob(pattern)
              if p.name != "__init__.py" and p.stem not in ("visualize", "experiments")}
    covered = {w for w in wanted if w in named or any(w.startswith(n) for n in named if n.endswith("/"))}
    assert wanted - covered == set()


# ---- what each lesson claims ------------------------------------------------------------------
def test_01_the_graph_records_ops_and_parents():
    ns, _, _ = lesson(1)
    a, b, c, d = ns["a"], ns["b"], ns["c"], ns["d"]
    assert c._op == "add" and [p._op for p in c._parents] == ["mul", None]
    assert c._parents[0]._parents == (a, b)
    assert not d.requires_grad and d._parents == ()
    assert a.xp is np


def test_02_reverse_mode_values():
    ns, out, _ = lesson(2)
    assert printed_line(out, "dy/dx =") == "dy/dx = [18.] (expected 18)"
    assert ns["x"].grad.data.tolist() == [20.0]       # 18 + 2
    assert ns["y"]._parents == ()                     # freed
    np.testing.assert_allclose(ns["m"].grad.data, 1 / 3)


def test_03_hand_worked_gradient_is_not_zero_against_zero():
    ns, out, _ = lesson(3)
    numeric, analytic = ns["checked"]["largest"]
    assert analytic == 4.0 and numeric == pytest.approx(4.0, abs=1e-6)  # wins four windows
    numeric, analytic = ns["checked"]["smallest"]
    assert analytic == 0.0 and numeric == pytest.approx(0.0, abs=1e-6)
    assert "gradcheck(max_pool2d): True" in out and "caught: gradcheck" in out
    assert "hypothesis: 5 drawn avg_pool2d cases passed" in out


def test_04_broadcast_gradients_sum_back():
    ns, out, _ = lesson(4)
    assert ns["bias"].grad.data.tolist() == [4.0, 4.0, 4.0]
    assert printed_line(out, "check: same as summing").endswith("True")
    assert printed_line(out, "gradcheck of a * b").endswith("True")


def test_05_convolution_three_ways_agree():
    ns, out, _ = lesson(5)
    for start in ("loops == W @ im2col(x)", "loops == minran F.conv2d", "adjoint check"):
        assert printed_line(out, start).endswith("True")
    assert ns["macs"] == {"conv2d": 2 * 4 * 6 * 6 * 27}


def test_06_pooling_values_and_where_the_gradient_goes():
    ns, out, _ = lesson(6)
    np.testing.assert_array_equal(ns["y"].data[0, 0], [[5, 2], [0, -1]])
    np.testing.assert_array_equal(ns["x"].grad.data[0, 0], [[0, 1, 1, 0], [0, 0, 0, 0],
                                                            [1, 0, 1, 0], [0, 0, 0, 0]])
    for size, pooled in ((32, 16), (16, 8), (8, 4), (7, 4)):
        assert f"{size}x{size} -> {pooled}" in out


def test_07_batch_norm_train_and_eval():
    ns, out, _ = lesson(7)
    x = ns["x"].data.astype(np.float64)
    np.testing.assert_allclose(ns["y"].data.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(ns["y"].data.std(axis=(0, 2, 3)), 1, rtol=1e-3)
    first = np.array(printed_line(out, "running mean moved 10%").split("[")[1].rstrip("]").split(), float)
    np.testing.assert_allclose(first, 0.1 * x.mean(axis=(0, 2, 3)), atol=6e-4)   # printed to 3 places
    # 51 training passes on the same batch: the running variance is 1 - 0.9^51 of the way
    # from 1 to the batch's unbiased variance.
    kept = 0.9 ** 51
    np.testing.assert_allclose(ns["bn"].running_var, kept + (1 - kept) * x.var(axis=(0, 2, 3), ddof=1), rtol=1e-4)
    assert float(printed_line(out, "fast vs plain backward").split()[-1]) < 1e-12


def test_08_interpolation_weights_and_sizes():
    ns, out, _ = lesson(8)
    np.testing.assert_allclose(F.interpolation_matrix(2, 4, True)[:, 1], [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(F.interpolation_matrix(2, 4, False)[:, 1], [0, 0.25, 0.75, 1])
    assert printed_line(out, "both conventions agree here").endswith("True")
    assert "7 -> 14 -> 28: (1, 1, 28, 28)" in out and out.rstrip().endswith("(1, 1, 13, 13)")


def test_09_identity_shortcuts_add_about_one_variance_per_unit():
    ns, out, _ = lesson(9)
    assert ns["unit"].num_parameters() == ns["by_hand"] == 4544
    assert ns["down"](ns["x"]).shape == (2, 128, 8, 8)
    variances = np.array(ns["variances"])
    assert variances[0] == pytest.approx(1, rel=0.01)
    depth = np.arange(len(variances))
    np.testing.assert_allclose(variances[5:], 1 + depth[5:], rtol=0.2)   # linear in depth
    added = np.diff(variances)
    assert 0.5 < added.min() and added.max() < 1.5 and added.mean() == pytest.approx(1, abs=0.1)
    assert "after 20 units: variance 21.17 (1 + units = 21), std 4.60" in out


def test_10_arl_never_shrinks_a_feature_and_nal_fades_them():
    ns, out, _ = lesson(10)
    assert 0 <= ns["mask"].data.min() and ns["mask"].data.max() <= 1
    arl, nal = ns["stacks"]["ARL"], ns["stacks"]["NAL"]
    # ARL multiplies every feature by 1 + M in [1, 2]; NAL by M in [0, 1].
    assert all(1 <= g <= 2 for g in arl["gains"]) and all(0 <= g <= 1 for g in nal["gains"])
    assert arl["feature_gain"][0] >= 1 and arl["feature_gain"][1] <= 2 ** 8
    assert nal["feature_gain"][1] <= 1
    assert nal["total"] < 0.01 and 1 < arl["total"] <= 2 ** 8
    assert nal["grad_norm"] < 1e-3 * arl["grad_norm"]


def test_11_data_pipeline_claims():
    ns, out, _ = lesson(11)
    np.testing.assert_allclose(ns["x"].mean(axis=(0, 2, 3)), 0, atol=1e-5)
    changed = ns["noisy"] != ns["labels"]
    assert abs(changed.mean() - 0.3) < 0.05
    assert printed_line(out, "label noise 0.3").startswith(f"label noise 0.3: {changed.mean():.2f}")
    batches = [y.tolist() for _, y in ns["it"]]
    assert sorted(sum(batches, [])) == list(range(8))


def test_12_the_network_learns_and_the_summary_is_the_trained_network():
    ns, out, _ = lesson(12)
    history, test_y = ns["history"], ns["test_y"]
    assert history[-1]["test_acc"] >= 0.9 and history[-1]["train_acc"] >= 0.9
    # The early epochs: training accuracy at 0.9 while every test image gets one answer.
    shares = {round(float(test_y.mean()), 5), round(1 - float(test_y.mean()), 5)}
    assert any(h["train_acc"] >= 0.9 and h["test_acc"] in shares for h in history[:-1])
    head = printed_line(out, "head").split()
    total = printed_line(out, "total").split()
    trained = re.search(r"([\d,]+) parameters\)", out).group(1)
    assert head[1] == "2" and total[1] == trained


def test_13_thread_per_output_pooling_matches_numpy():
    ns, out, _ = lesson(13)
    assert ns["same"] and ns["blocks"] == 1
    assert np.array_equal(ns["out"], F.max_pool2d(Tensor(ns["x"].data), 3, 2, 1).data)


@pytest.mark.emulated
def test_14_the_cuda_kernel_on_the_cpu_equals_numpy_and_the_race_is_caught():
    ns, out, _ = lesson(14)
    assert ns["same_out"] and ns["same_grad"]
    assert (ns["n"], ns["blocks"]) == (400, 2)
    assert "400 output pixels -> 2 blocks of 256 threads, 112 of them idle" in out
    assert "thread 300 (block 1, threadIdx.x 44) computes output (n=1, c=4, oh=0, ow=0)" in out
    assert "__global__ void max_pool2d_forward" in out   # the kernel is shown, from pooling.cu
    assert "depends on the order the threads run in" in ns["caught"]
    assert ("thread (0,0,0) of block (0,0,0) read it and thread (1,0,0) of block (0,0,0) wrote "
            "it" in ns["caught"])   # the race check names the two threads (emulator.h)
