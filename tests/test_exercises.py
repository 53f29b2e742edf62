"""The course's exercises and their checker (lessons/check.py): every solution passes its
check, every empty exercise fails it, and a wrong answer is told, in words, what is wrong
(which case, which shape, which value), never with a traceback."""
import subprocess
import sys

import numpy as np
import pytest

import minran.functional as F
from lessons import check as checker

ROOT = checker.HERE.parent
NUMBERS = list(checker.EXERCISES)


def solution(number):
    exercise = checker.EXERCISES[number]
    return checker.load(checker.HERE / "solutions" / exercise.file, exercise.function)


def test_there_are_the_six_exercises_the_course_promises():
    assert [(n, e.function) for n, e in checker.EXERCISES.items()] == [
        ("05", "im2col"), ("06", "max_pool2d_backward"), ("07", "batch_norm_backward"),
        ("08", "interpolation_matrix"), ("11", "soft_mask"), ("17", "max_pool_backward_thread")]


@pytest.mark.parametrize("number", NUMBERS)
def test_each_solution_passes_its_check(number):
    passed, message = checker.check(number, "solutions")
    assert passed, message


@pytest.mark.parametrize("number", NUMBERS)
def test_each_empty_exercise_fails_its_check(number):
    passed, message = checker.check(number, "exercises")
    exercise = checker.EXERCISES[number]
    assert not passed, (f"lessons/exercises/{exercise.file} passes its check: it must be the "
                        f"empty stub (git checkout it to restore)")
    assert message == (f"{number}: not written yet: fill in {exercise.function}() in "
                       f"lessons/exercises/{exercise.file}")


# ---- a wrong answer is told what is wrong ----------------------------------------------------
def _fails(number, function):
    """The message check() gives for `function` as exercise `number`'s answer."""
    with pytest.raises(checker.Mismatch) as caught:
        checker.EXERCISES[number].check(function)
    return str(caught.value)


def test_im2col_with_rows_and_columns_swapped_is_told_the_shapes():
    message = _fails("05", lambda *a: solution("05")(*a).transpose(0, 2, 1))
    assert message == ("case 1 of 4: x (2, 3, 5, 6), kernel (3, 3), stride (1, 1), padding (1, 1): "
                       "your result has shape (2, 30, 27), minran's has shape (2, 27, 30)")


def test_im2col_that_ignores_the_padding_is_told_which_entry_and_what_it_means():
    def unpadded(x, kernel, stride, padding):   # reads x[i*sh + di] with no padding offset
        (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
        cols = solution("05")(np.pad(x, ((0, 0), (0, 0), (0, 2 * ph), (0, 2 * pw))), kernel, stride, (0, 0))
        return cols
    message = _fails("05", unpadded)
    assert message.startswith("case 1 of 4: x (2, 3, 5, 6), kernel (3, 3), stride (1, 1), padding (1, 1): ")
    assert "values differ; the first at index (0, 0, 0) (row 0 is channel 0, kernel offset (0, 0); " \
           "column 0 is output pixel (0, 0)): yours " in message
    assert message.endswith("minran's 0.0")   # minran reads the padding there


def test_max_pool_backward_where_the_last_maximum_wins_is_told_on_the_case_with_ties():
    def last_wins(g, x, kernel, stride, padding):
        flipped = solution("06")(g[..., ::-1, ::-1], x[..., ::-1, ::-1], kernel, stride, padding)
        return flipped[..., ::-1, ::-1]
    message = _fails("06", last_wins)
    assert "(with ties)" in message and "input pixel (n=" in message and "values differ" in message


def test_batch_norm_backward_without_the_statistics_terms_is_told_gx_differs():
    def no_statistics(g, x, weight, eps=1e-5):
        gx, gw, gb = solution("07")(g, x, weight, eps)
        std = np.sqrt(x.var(axis=(0, 2, 3), keepdims=True) + eps)
        return weight.reshape(1, -1, 1, 1) / std * g, gw, gb
    assert _fails("07", no_statistics).startswith("case 1 of 3: x (4, 2, 3, 3), gx: 72 of 72 values differ")
    assert _fails("07", lambda *a: solution("07")(*a)[:2]).startswith("case 1: return three arrays")


def test_bilinear_weights_with_the_wrong_corners_are_told_the_pixel():
    message = _fails("08", lambda size_in, size_out, corners: solution("08")(size_in, size_out, True))
    assert message.startswith("size_in 2, size_out 4, align_corners=False: 4 of 8 values differ; "
                              "the first at index (1, 0) (output pixel 1, input pixel 0): ")
    assert message.endswith(f"minran's {F.interpolation_matrix(2, 4, False)[1, 0].item()!r}")


def test_a_soft_mask_that_doubles_instead_of_naming_the_size_is_told_the_rule():
    answer = solution("11")

    def doubling(module, x):
        resize = F.upsample_bilinear
        try:   # the solution, with each upsampling to twice the size instead of the size before
            F.upsample_bilinear = lambda h, size, align_corners=True: resize(h, (2 * h.shape[2], 2 * h.shape[3]))
            return answer(module, x)
        finally:
            F.upsample_bilinear = resize
    passed, message = _through_check("11", doubling)
    assert not passed and message.startswith("11: your soft_mask() raised ValueError: add: shapes "
                                             "(2, 4, 8, 8) and (2, 4, 7, 7) do not broadcast")

    def no_upsampling_to_13(module, x):   # right except on the odd-sized input
        mask = answer(module, x)
        return mask if x.shape[2] != 13 else F.upsample_bilinear(mask, 14)
    assert _fails("11", no_upsampling_to_13) == (
        "poolings=3, input (2, 4, 13, 13): your mask has shape (2, 4, 14, 14), minran's "
        "(2, 4, 13, 13) (upsample to the size the map had before each pooling: 13 -> 7 -> 4 -> 2 "
        "goes back 2 -> 4 -> 7 -> 13)")


def _through_check(number, function):
    """check() with `function` in place of the file's: what the command line would print."""
    real = checker.load
    checker.load = lambda path, name: function
    try:
        return checker.check(number)
    finally:
        checker.load = real


def test_a_thread_that_skips_pixels_is_told_which_it_never_wrote():
    def lazy(tid, g, argmax, gx, kernel, stride, padding):
        if tid < gx.size - 1:
            solution("17")(tid, g, argmax, gx, kernel, stride, padding)
    assert _fails("17", lazy) == ("case 1 of 4: x (1, 2, 5, 5), kernel (3, 3), stride (2, 2), "
                                  "padding (1, 1): no thread wrote gx at (0, 1, 4, 4) (1 pixels left "
                                  "unwritten)")


def test_an_error_in_the_learners_code_names_its_line_not_a_traceback(tmp_path, monkeypatch):
    (tmp_path / "exercises").mkdir()
    (tmp_path / "exercises" / "05_im2col.py").write_text(
        "def im2col(x, kernel, stride, padding):\n"
        "    return x[:, :, :, :, 0]\n")
    monkeypatch.setattr(checker, "HERE", tmp_path)
    passed, message = checker.check("05")
    assert not passed and message == (
        "05: your im2col() raised IndexError: too many indices for array: array is "
        "4-dimensional, but 5 were indexed (line 2 of 05_im2col.py: return x[:, :, :, :, 0])")
    (tmp_path / "exercises" / "05_im2col.py").write_text("def im2col(x, kernel, stride, padding)\n")
    passed, message = checker.check("05")
    assert not passed and message.startswith("05: lessons/exercises/05_im2col.py does not load: "
                                             "SyntaxError")


def test_the_command_line_reports_and_exits_without_tracebacks():
    run = [sys.executable, "-m", "lessons.check"]
    empty = subprocess.run(run + ["5", "11"], cwd=ROOT, capture_output=True, text=True)
    assert empty.returncode == 1 and "Traceback" not in empty.stdout + empty.stderr
    assert empty.stdout.splitlines() == [
        "FAIL  05: not written yet: fill in im2col() in lessons/exercises/05_im2col.py",
        "FAIL  11: not written yet: fill in soft_mask() in lessons/exercises/11_soft_mask.py"]
    solved = subprocess.run(run + ["--solutions"], cwd=ROOT, capture_output=True, text=True)
    assert solved.returncode == 0 and solved.stdout.count("ok    ") == len(NUMBERS)
    unknown = subprocess.run(run + ["09"], cwd=ROOT, capture_output=True, text=True)
    assert unknown.returncode == 2 and "no exercise for lesson 09" in unknown.stderr
