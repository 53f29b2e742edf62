"""Every lesson runs as a reader runs it, quickly; says what it claims; draws what it says it
draws; and together they cover minran/.

Each lesson runs once, as __main__ (runpy), from the state a fresh interpreter has (weights
seeded 0), with its pictures sent to a temporary folder (MINRAN_LESSONS_OUT) instead of
lessons/out/. The claim tests then read the numbers the lesson printed from the variables it
printed them from, or from the printed lines themselves, and open the pictures it wrote: a
lesson whose prose and numbers part ways fails here, not in front of a reader.
"""
import contextlib
import io
import math
import os
import pathlib
import re
import runpy
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import minran
import minran.functional as F
from minran import Tensor, plots

from .test_pictures import read_png

ROOT = pathlib.Path(__file__).resolve().parents[1]
LESSONS = {int(p.name[:2]): p for p in sorted((ROOT / "lessons").glob("[0-9][0-9]_*.py"))}
TIME_LIMIT_S = 90  # per lesson, on a 2-core CI machine (each takes under 20 s on an idle one)
SVG = "{http://www.w3.org/2000/svg}"
_runs = {}
_out = {}


@pytest.fixture(scope="session", autouse=True)
def lessons_out(tmp_path_factory):
    """Where the lessons write their pictures during the tests."""
    _out["path"] = tmp_path_factory.mktemp("lessons_out")
    return _out["path"]


def lesson(number):
    """Run lesson `number` once per session: (its globals, what it printed, seconds)."""
    path = LESSONS[number]
    if path not in _runs:
        minran.manual_seed(0)  # as a fresh interpreter has it
        printed = io.StringIO()
        previous = os.environ.get("MINRAN_LESSONS_OUT")
        os.environ["MINRAN_LESSONS_OUT"] = str(_out["path"])
        try:
            start = time.perf_counter()
            with contextlib.redirect_stdout(printed):
                namespace = runpy.run_path(str(path), run_name="__main__")
            seconds = time.perf_counter() - start
        finally:
            if previous is None:
                del os.environ["MINRAN_LESSONS_OUT"]
            else:
                os.environ["MINRAN_LESSONS_OUT"] = previous
        _runs[path] = namespace, printed.getvalue(), seconds
    return _runs[path]


def printed_line(out, start):
    """The first printed line that begins with `start`."""
    lines = [line for line in out.splitlines() if line.startswith(start)]
    assert lines, f"no printed line starts with {start!r}"
    return lines[0]


def picture(name):
    """A picture a lesson wrote, after checking the lesson printed where it is."""
    path = _out["path"] / name
    assert path.exists(), f"the lesson did not write {name}"
    return path


def test_there_is_a_course():
    assert len(LESSONS) >= 18
    assert list(LESSONS) == list(range(1, len(LESSONS) + 1))


def _needs(number):
    """Lessons that run CUDA code on the CPU need the emulator's compiler (the emulated tier)."""
    return [pytest.mark.emulated] if "cuda" in LESSONS[number].stem else []


@pytest.mark.parametrize("number", [pytest.param(n, marks=_needs(n), id=LESSONS[n].stem)
                                    for n in LESSONS])
def test_lesson_runs(number):
    _, out, seconds = lesson(number)
    assert seconds < TIME_LIMIT_S
    assert out.strip(), "a lesson must print what the reader should look at"
    assert "Exercises" in LESSONS[number].read_text()
    assert "tempfile.mkdtemp" not in LESSONS[number].read_text()   # nothing left behind


def test_lessons_touch_every_file_of_minran():
    named = set()
    for path in LESSONS.values():
        header = path.read_text().split('"""')[1]
        for files in re.findall(r"Files:(.*?)\nPaper:", header, re.S):
            for name in re.findall(r"minran/[\w/]+(?:\.py|\.cuh?|\.h|/)", files):
                named.add(name)
    # Every Python file (the plain references in minran/reference/ too), and every CUDA
    # source and header (the kernels are course material too).
    wanted = {str(p.relative_to(ROOT)) for pattern in ("*.py", "*.cu", "*.cuh", "*.h")
              for p in (ROOT / "minran").rglob(pattern)
              if p.name != "__init__.py" and p.stem != "experiments"}
    covered = {w for w in wanted if w in named or any(w.startswith(n) for n in named if n.endswith("/"))}
    assert wanted - covered == set()


def test_the_readme_lists_every_lesson_with_its_time():
    readme = (ROOT / "lessons" / "README.md").read_text()
    for number, path in LESSONS.items():
        rows = [line for line in readme.splitlines() if line.startswith(f"| {number:02d} ")]
        assert len(rows) == 1, f"lessons/README.md has no row for lesson {number:02d}"
        assert f"`{path.name}`" in rows[0] and re.search(r"\d s \|$", rows[0]), rows[0]


def test_every_checkable_exercise_is_named_by_its_lesson():
    from lessons.check import EXERCISES
    for number, exercise in EXERCISES.items():
        text = LESSONS[int(number)].read_text()
        assert f"lessons/exercises/{exercise.file}" in text
        assert f"python -m lessons.check {number}" in text


# ---- what each lesson claims ------------------------------------------------------------------
def svg_graph(name):
    """(box titles, number of arrows) of a graph_svg picture."""
    root = ET.parse(picture(name)).getroot()
    titles = sorted(g.findall(f"{SVG}text")[0].text for g in root.iter(f"{SVG}g"))
    return titles, len(root.findall(f"{SVG}path"))


def test_01_the_graph_records_ops_and_parents_and_is_drawn():
    ns, out, _ = lesson(1)
    a, b, c, d = ns["a"], ns["b"], ns["c"], ns["d"]
    assert c._op == "add" and [p._op for p in c._parents] == ["mul", None]
    assert c._parents[0]._parents == (a, b)
    assert not d.requires_grad and d._parents == ()
    assert a.xp is np
    assert "def _from_op(cls, data, parents, backward, op):" in out   # the real source, printed
    # a, b and the mul feed two results: four boxes, four arrows (a is drawn once).
    assert svg_graph("01_graph.svg") == (["a", "b", "c = add", "mul"], 4)
    assert str(_out["path"] / "01_graph.svg") in out


def test_02_reverse_mode_values_and_the_drawing():
    ns, out, _ = lesson(2)
    assert printed_line(out, "dy/dx =") == "dy/dx = [18.] (expected 18)"
    assert ns["x"].grad.data.tolist() == [20.0]       # 18 + 2
    assert ns["y"]._parents == ()                     # freed
    np.testing.assert_allclose(ns["m"].grad.data, 1 / 3)
    assert printed_line(out, "topological order") == "topological order: ['leaf', 'mul', 'mul', 'add']"
    # x * x: two arrows from x; h feeds two ops; the constant 2 is drawn though backward skips it.
    assert svg_graph("02_graph.svg") == (["const 2", "h = mul", "mul", "x", "y = add"], 6)


def test_03_hand_worked_gradient_is_not_zero_against_zero():
    ns, out, _ = lesson(3)
    numeric, analytic = ns["checked"]["largest"]
    assert analytic == 4.0 and numeric == pytest.approx(4.0, abs=1e-6)  # wins four windows
    numeric, analytic = ns["checked"]["smallest"]
    assert analytic == 0.0 and numeric == pytest.approx(0.0, abs=1e-6)
    assert "gradcheck(max_pool2d): True" in out and "caught: gradcheck" in out
    assert "hypothesis: 5 drawn avg_pool2d cases passed" in out
    assert printed_line(out, "max_pool2d's gradient == its plain version").endswith("True")
    assert not np.array_equal(ns["fast"].grad.data, ns["plain"])   # why the lesson says allclose


def test_04_broadcast_gradients_sum_back():
    ns, out, _ = lesson(4)
    assert ns["bias"].grad.data.tolist() == [4.0, 4.0, 4.0]
    assert printed_line(out, "check: same as summing").endswith("True")
    assert printed_line(out, "gradcheck of a * b").endswith("True")


def test_05_convolution_three_ways_agree():
    ns, out, _ = lesson(5)
    for start in ("loops == W @ im2col(x)", "loops == minran F.conv2d", "adjoint check",
                  "im2col == its plain version", "col2im(W^T g) == conv2d(g, flipped W)"):
        assert printed_line(out, start).endswith("True")
    assert "def conv2d(x, w, b=None, stride=1, padding=0):" in out   # the plain version, shown
    assert ns["macs"] == {"conv2d": 2 * 4 * 6 * 6 * 27}


def test_06_pooling_values_and_where_the_gradient_goes():
    ns, out, _ = lesson(6)
    np.testing.assert_array_equal(ns["y"].data[0, 0], [[5, 2], [0, -1]])
    np.testing.assert_array_equal(ns["x"].grad.data[0, 0], [[0, 1, 1, 0], [0, 0, 0, 0],
                                                            [1, 0, 1, 0], [0, 0, 0, 0]])
    assert printed_line(out, "== the plain version's gradient").endswith("True")
    assert printed_line(out, "winners found again").endswith("True")
    for size, pooled in ((32, 16), (16, 8), (8, 4), (7, 4)):
        assert f"{size}x{size} -> {pooled}" in out


def test_07_batch_norm_train_and_eval():
    ns, out, _ = lesson(7)
    x = ns["x"].data.astype(np.float64)
    np.testing.assert_allclose(ns["y"].data.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(ns["y"].data.std(axis=(0, 2, 3)), 1, rtol=1e-3)

    def numbers(start):
        return np.array(printed_line(out, start).split("[")[1].rstrip("]").split(), float)
    batch_mean = numbers("the batch's mean")
    np.testing.assert_allclose(batch_mean, x.mean(axis=(0, 2, 3)), atol=6e-4)   # printed to 3 places
    np.testing.assert_allclose(numbers("running mean moved 10%"), 0.1 * batch_mean, atol=1e-3)
    # 51 training passes on the same batch: the running variance is 1 - 0.9^51 of the way
    # from 1 to the batch's unbiased variance.
    kept = 0.9 ** 51
    np.testing.assert_allclose(ns["bn"].running_var, kept + (1 - kept) * x.var(axis=(0, 2, 3), ddof=1), rtol=1e-4)
    assert float(printed_line(out, "fast vs plain backward").split()[-1]) < 1e-12
    assert printed_line(out, "weight and bias gradients agree too").endswith("True")
    assert printed_line(out, "x * a + c == the plain formula").endswith("True")


def test_08_interpolation_weights_sizes_and_the_transposed_backward():
    ns, out, _ = lesson(8)
    np.testing.assert_allclose(F.interpolation_matrix(2, 4, True)[:, 1], [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(F.interpolation_matrix(2, 4, False)[:, 1], [0, 0.25, 0.75, 1])
    assert printed_line(out, "both conventions agree here").endswith("True")
    # Why: half-pixel centres sample 0 (clamped from -1/6), 0.5 and 7/6, past the last pixel,
    # where the edge repeats: the same three values align_corners reads.
    assert "align_corners=True: sources [0.0, 0.5, 1.0]" in out
    assert "align_corners=False: sources [0.0, 0.5, 1.1667]" in out
    assert "backward == A_y^T @ g @ A_x: True == the plain scatter: True" in out
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
    # The masks are untrained, and the lesson says so where it prints them.
    assert "RMS gain per untrained module" in printed_line(out, "ARL (1+M)*T")
    assert "Every mask in this lesson is untrained" in LESSONS[10].read_text()


def test_11_the_mask_branch_goes_down_and_back_up_with_its_skips():
    ns, out, _ = lesson(11)
    assert printed_line(out, "the mask's size, pooling by pooling").endswith(
        "32x32 -> 16x16 -> 8x8 -> 4x4 -> 8x8 -> 16x16 -> 32x32")
    assert [s for s in ns["steps"] if s[0] != "unit"] == [
        ("max pool", "16x16"), ("skip unit", "16x16"), ("max pool", "8x8"), ("skip unit", "8x8"),
        ("max pool", "4x4"), ("upsample", "8x8"), ("+ skip", "8x8"), ("upsample", "16x16"),
        ("+ skip", "16x16"), ("upsample", "32x32"), ("head, sigmoid: M", "32x32")]
    # r = 1 unit after each pooling, r more at the bottom, r after each skip is added.
    units = [size for step, size in ns["steps"] if step == "unit"]
    assert units == ["16x16", "8x8", "4x4", "4x4", "8x8", "16x16"]
    lines = ns["drawing"].splitlines()
    assert len(lines) == len(ns["steps"]) + 1
    indents = [len(line) - len(line.lstrip()) for line in lines]
    assert indents == [0, 2, 2, 2, 4, 4, 4, 6, 6, 6, 4, 4, 4, 2, 2, 2, 0, 0]   # down and back up
    assert printed_line(out, "from 28x28").endswith("28x28 -> 14x14 -> 7x7 -> 4x4 -> 7x7 -> 14x14 -> 28x28")
    for (p, t, r, k), (trunk, mask, built) in ns["counts"].items():
        assert trunk + mask == built
    assert "(mask_skips): Sequential(" in out and "ResidualUnit(bottleneck)" in out


def test_12_the_whole_network_depth_and_parameters():
    ns, out, _ = lesson(12)
    rows = ns["rows"]
    for name, (counted, by_formula, _) in rows.items():
        assert counted == by_formula == int(name[len("attention"):].split("_")[0]), name
    assert {name: row[2] for name, row in rows.items()} == {
        "attention56": 1_030_362, "attention92": 1_841_242, "attention128": 2_652_122,
        "attention164": 3_463_002, "attention236": 5_084_762, "attention452": 10_181_210,
        "attention56_imagenet": 31_810_728, "attention92_imagenet": 52_466_344}
    for name, paper in ns["PAPER_PARAMETERS"].items():
        row = printed_line(out, f"{name:<22} {rows[name][0]:>5},")
        assert row.endswith(f"{rows[name][2]:>12,}   {paper / 1e6:.1f}M ({rows[name][2] / paper - 1:+.1%})")
    assert abs(rows["attention92"][2] / 1.9e6 - 1) < 0.05 and rows["attention452"][2] / 8.6e6 - 1 > 0.18
    assert ns["stages"] == [(32, 3, 4), (16, 2, 4), (8, 1, 4)]   # the smallest mask map: 4x4
    assert "= 31.81M parameters" in ns["imagenet"] and "6.27 GMACs" in ns["imagenet"]
    assert "= 1.03M parameters" in ns["table"]
    assert ns["trunk_depth"](ns["custom"]) == 36 + 12 + 20   # one more module in stage 1


def test_13_data_pipeline_claims_and_the_augmented_batch():
    ns, out, _ = lesson(13)
    np.testing.assert_allclose(ns["x"].mean(axis=(0, 2, 3)), 0, atol=1e-5)
    changed = ns["noisy"] != ns["labels"]
    assert abs(changed.mean() - 0.3) < 0.05
    assert printed_line(out, "label noise 0.3").startswith(f"label noise 0.3: {changed.mean():.2f}")
    batches = [y.tolist() for _, y in ns["it"]]
    assert sorted(sum(batches, [])) == list(range(8))
    # Every augmented image is a window of its padded original, some mirrored and some not,
    # and the picture shows exactly the originals above and the augmented batch below.
    found = ns["found"]
    assert len(found) == 8 and {m for _, _, m in found} == {True, False}
    assert any((top, left) != (4, 4) for top, left, _ in found)
    png = read_png(picture("13_augmented_batch.png"))
    np.testing.assert_array_equal(png, ns["picture"])
    assert png.shape == (2 * 96 + 4, 8 * 96 + 7 * 4, 3)
    for i in range(8):
        top = png[:96:3, i * 100:i * 100 + 96:3]
        bottom = png[100::3, i * 100:i * 100 + 96:3]
        np.testing.assert_array_equal(top, ns["images"][i].transpose(1, 2, 0))
        np.testing.assert_array_equal(bottom, ns["to_uint8"](ns["batch"][i:i + 1])[0].transpose(1, 2, 0))
    assert "MD5" in LESSONS[13].read_text() and "structure" in LESSONS[13].read_text()


def test_14_the_plain_loop_learns_and_sgd_is_its_formula():
    ns, out, _ = lesson(14)
    losses = ns["losses"]
    assert len(losses) == 60 and np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    assert ns["accuracy"] >= 0.9
    assert printed_line(out, "after 60 steps: test accuracy").startswith(
        f"after 60 steps: test accuracy {ns['accuracy']:.3f}")
    assert printed_line(out, "one step by hand") == "one step by hand: 0.904981; SGD.step: 0.904981"
    assert ns["p"].data[0] == pytest.approx(1 - 0.1 * (0.5001 + 0.9 * 0.5001), abs=1e-12)
    assert ns["largest"] < 1e-12
    assert printed_line(out, "cross_entropy == its plain version").endswith("True")
    assert "g = g + momentum * buf       (Nesterov)" in out   # sgd.py's own words, printed


def mask_from_overlay(panel, image):
    """Invert plots.overlay (alpha 0.5) and plots.heat on one picture panel: the map's values."""
    heat = np.clip(2 * (panel.astype(np.float64) - 0.5 * image), 0, 255)
    scale = np.linspace(0, 1, 1001)
    colours = plots.heat(scale).astype(np.float64)
    nearest = ((heat[:, :, None, :] - colours[None, None]) ** 2).sum(axis=-1).argmin(axis=-1)
    return scale[nearest]


def test_15_the_network_learns_the_curves_and_the_masks():
    ns, out, _ = lesson(15)
    history, test_y = ns["history"], ns["test_y"]
    assert history[-1]["test_acc"] >= 0.9 and history[-1]["train_acc"] >= 0.9
    # The early epochs: training accuracy at 0.9 while every test image gets one answer.
    shares = {round(float(test_y.mean()), 5), round(1 - float(test_y.mean()), 5)}
    assert any(h["train_acc"] >= 0.9 and h["test_acc"] in shares for h in history[:-1])
    head = printed_line(out, "head").split()
    total = printed_line(out, "total").split()
    trained = re.search(r"([\d,]+) parameters\)", out).group(1)
    assert head[1] == "2" and total[1] == trained == "3,802"
    assert "= 3,802 parameters" in out   # not "0.00M"
    # The run's files, in the lessons' folder (no temporary folder left behind).
    assert ns["out"] == _out["path"] / "15_run"
    assert {"checkpoint.pkl", "log.csv", "result.json"} <= {p.name for p in ns["out"].iterdir()}
    curves = ET.parse(picture("15_learning_curves.svg")).getroot()
    lines = curves.findall(f"{SVG}polyline")
    assert len(lines) == 4 and all(len(p.get("points").split()) == 5 for p in lines)
    # The masks: untrained, no preference for either half; trained, stage 1's mask is lower
    # on the brighter half of every test image.
    untrained, trained = ns["untrained"], ns["trained"]
    assert all(abs(mean) < 0.005 for mean, _ in untrained)
    assert trained[0][0] < -0.03 and trained[0][1] == 0
    for stage, (before, after) in enumerate(zip(untrained, trained), 1):
        assert (f"stage {stage}: untrained {before[0]:+.4f} ({before[1]:.0%}), trained "
                f"{after[0]:+.4f} ({after[1]:.0%})") in out
    # ... and the pictures show it: stage 1's panel, read back from the PNG, is higher on the
    # darker half of each image.
    names = ns["names"]
    assert len(names) == 8 and (ns["pictures"] / "index.md").exists()
    for i, name in enumerate(names):
        png = read_png(ns["pictures"] / name)
        assert png.shape == (128, 4 * 128 + 3 * 4, 3)
        image = ns["test_x"][i].transpose(1, 2, 0)
        np.testing.assert_array_equal(png[::4, :128:4], image)
        stage1 = mask_from_overlay(png[::4, 132:260:4], image)
        top_brighter = test_y[i] == 0
        bright, dark = (stage1[:16], stage1[16:]) if top_brighter else (stage1[16:], stage1[:16])
        assert dark.mean() > bright.mean(), name


def test_16_arl_fits_faster_than_nal_at_both_depths():
    ns, out, _ = lesson(16)
    results, gaps = ns["results"], ns["gaps"]
    end = {key: losses[-20:].mean() for key, (losses, _) in results.items()}
    for depth in (56, 92):
        assert gaps[depth] == pytest.approx(end[(depth, "NAL")] - end[(depth, "ARL")])
        assert f"{end[(depth, 'ARL')]:.3f}    {end[(depth, 'NAL')]:.3f}" in out
    # ARL ahead at both depths, by far more at 92, where NAL has hardly left ln 4 = 1.386.
    assert 0 < gaps[56] and 0.5 < gaps[92] and 3 * gaps[56] < gaps[92]
    assert end[(92, "NAL")] > math.log(4) - 0.1 and end[(92, "ARL")] < 0.75
    assert end[(92, "NAL")] > end[(56, "NAL")]
    # NAL's stem gradient at the first step is the larger, and more so at depth 92.
    ratio = {d: results[(d, "NAL")][1] / results[(d, "ARL")][1] for d in (56, 92)}
    assert 1 < ratio[56] and 2 * ratio[56] < ratio[92]
    # The paper's numbers and docs/EXPERIMENTS.md's, as the lesson prints them.
    assert "5.52     5.89" in out and "4.99     5.35" in out and "56.94    58.70" in out
    experiments = (ROOT / "docs" / "EXPERIMENTS.md").read_text()
    assert "| 56.94 | 5.52 |" in experiments and "| 58.70 | 5.89 |" in experiments
    # ... and the four-seed table there holds this seed's row as the lesson prints it.
    arl, nal = results[(56, "ARL")][0][-20:].mean(), results[(56, "NAL")][0][-20:].mean()
    assert f"| 0 | {arl:.3f} | {nal:.3f} |" in experiments


def test_17_thread_per_output_pooling_matches_numpy():
    ns, out, _ = lesson(17)
    assert ns["same"] and ns["blocks"] == 1
    assert np.array_equal(ns["out"], F.max_pool2d(Tensor(ns["x"].data), 3, 2, 1).data)
    assert "has been lent" not in LESSONS[17].read_text()   # no project news in a lesson


@pytest.mark.emulated
def test_18_the_cuda_kernel_on_the_cpu_equals_numpy_and_the_race_is_caught():
    ns, out, _ = lesson(18)
    assert ns["same_out"] and ns["same_grad"]
    assert (ns["n"], ns["blocks"]) == (400, 2)
    assert "400 output pixels -> 2 blocks of 256 threads, 112 of them idle" in out
    assert "thread 300 (block 1, threadIdx.x 44) computes output (n=1, c=4, oh=0, ow=0)" in out
    assert "__global__ void max_pool2d_forward" in out   # the kernel is shown, from pooling.cu
    assert "depends on the order the threads run in" in ns["caught"]
    assert ("thread (0,0,0) of block (0,0,0) read it and thread (1,0,0) of block (0,0,0) wrote "
            "it" in ns["caught"])   # the race check names the two threads (emulator.h)


@pytest.mark.emulated
def test_19_making_it_fast_measures_what_it_says():
    ns, out, _ = lesson(19)
    assert printed_line(out, "4 slices; 1 thread == 4 threads, bit for bit:").endswith("True")
    assert ns["same_sgd"]
    assert (ns["launches_per_tensor"], ns["launches_flat"]) == (584, 1)
    plain, mine = ns["plain"], ns["mine"]
    assert plain.by_source()["kernel"] == 0 and mine.by_source()["kernel"] > 0
    assert plain.gpu_launches > 5 * mine.gpu_launches   # the table's two columns, as printed
    assert f"{plain.gpu_launches:>12,}{mine.gpu_launches:>12,}" in out
    assert plain.host_reads == mine.host_reads == 0
    # the host's time: the graph's replay issues three device calls, not hundreds
    assert ns["graph_ms"] < ns["eager_ms"] / 10
    assert "three device calls" in printed_line(out, "the host's side of a step")
    assert ns["graph_losses"] == ns["eager_losses"] and len(set(ns["eager_losses"])) == 4
