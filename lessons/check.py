"""Check your exercises against minran's own code.

    python -m lessons.check 05          # lessons/exercises/05_im2col.py
    python -m lessons.check             # every exercise
    python -m lessons.check --solutions # lessons/solutions/ instead (CI checks them)

Each exercise is a function to fill in, in lessons/exercises/NN_name.py (NN is its lesson).
The check runs it on a few cases, some chosen to be awkward (a kernel wider than tall,
unequal strides and paddings, odd sizes, ties), and compares it with minran's version. It
says what is wrong in words: which case, which shape, which value differs and where.
"""
import argparse
import importlib.util
import pathlib
import sys
import traceback
from dataclasses import dataclass

import numpy as np

import minran
import minran.functional as F
from minran import Tensor, no_grad
from minran.models import AttentionModule

HERE = pathlib.Path(__file__).resolve().parent


class Mismatch(Exception):
    """What the learner's function got wrong, in words."""


def compare(what, got, want, exact=False, where=None):
    """Raise Mismatch naming the shape or the first value where `got` differs from `want`.
    `where(index)` may turn an index into words ("output pixel 3, input pixel 1")."""
    got = np.asarray(got) if got is not None else None
    if got is None or got.dtype == object:
        raise Mismatch(f"{what}: your function returned {got!r}, not an array")
    if got.shape != want.shape:
        raise Mismatch(f"{what}: your result has shape {got.shape}, minran's has shape {want.shape}")
    close = got == want if exact else np.isclose(got, want, rtol=1e-7, atol=1e-9)
    if not close.all():
        index = tuple(int(i) for i in np.argwhere(~close)[0])
        place = f" ({where(index)})" if where else ""
        raise Mismatch(f"{what}: {int((~close).sum())} of {close.size} values differ; the first "
                       f"at index {index}{place}: yours {got[index].item()!r}, "
                       f"minran's {want[index].item()!r}")


def max_pool_gradient(x, g, kernel, stride, padding):
    """minran's gradient of max_pool2d for output gradient g."""
    t = Tensor(x, requires_grad=True)
    F.max_pool2d(t, kernel, stride, padding).backward(Tensor(g))
    return t.grad.data


# ---- one check per exercise ----------------------------------------------------------------
def check_im2col(im2col):
    cases = [((2, 3, 5, 6), (3, 3), (1, 1), (1, 1)),
             ((1, 2, 5, 4), (2, 3), (2, 1), (1, 0)),    # a kernel wider than tall, unequal steps
             ((2, 1, 7, 5), (3, 2), (3, 2), (0, 1)),    # a stride larger than the kernel
             ((1, 2, 3, 3), (1, 1), (1, 1), (0, 0))]
    for number, (shape, kernel, stride, padding) in enumerate(cases, 1):
        x = np.random.default_rng(number).standard_normal(shape)
        want = F.im2col(x, kernel, stride, padding)
        (kh, kw), Wo = kernel, (shape[3] + 2 * padding[1] - kernel[1]) // stride[1] + 1

        def where(index):
            _, row, column = index
            return (f"row {row} is channel {row // (kh * kw)}, kernel offset ({row // kw % kh}, "
                    f"{row % kw}); column {column} is output pixel ({column // Wo}, {column % Wo})")
        compare(f"case {number} of {len(cases)}: x {shape}, kernel {kernel}, stride {stride}, "
                f"padding {padding}", im2col(x.copy(), kernel, stride, padding), want, exact=True,
                where=where)


def check_max_pool_backward(max_pool2d_backward):
    cases = [((1, 1, 4, 4), (2, 2), (2, 2), (0, 0), False),
             ((2, 2, 5, 5), (3, 3), (2, 2), (1, 1), False),  # the mask's pooling: windows overlap
             ((1, 2, 6, 5), (2, 3), (1, 2), (1, 1), True),   # ties: the first maximum wins
             ((2, 1, 5, 7), (3, 2), (2, 3), (0, 1), True)]
    for number, (shape, kernel, stride, padding, ties) in enumerate(cases, 1):
        rng = np.random.default_rng(number)
        x = rng.integers(-2, 3, shape).astype(np.float64) if ties else rng.standard_normal(shape)
        out_shape = F.max_pool2d(Tensor(x), kernel, stride, padding).shape
        g = rng.standard_normal(out_shape)
        compare(f"case {number} of {len(cases)}: x {shape}{' (with ties)' if ties else ''}, "
                f"kernel {kernel}, stride {stride}, padding {padding}",
                max_pool2d_backward(g.copy(), x.copy(), kernel, stride, padding),
                max_pool_gradient(x, g, kernel, stride, padding),
                where=lambda i: f"input pixel (n={i[0]}, c={i[1]}, h={i[2]}, w={i[3]})")


def check_batch_norm_backward(batch_norm_backward):
    for number, shape in enumerate([(4, 2, 3, 3), (2, 3, 1, 5), (8, 1, 2, 2)], 1):
        rng = np.random.default_rng(number)
        x = rng.standard_normal(shape) * 3 + 1
        weight, bias = rng.standard_normal(shape[1]) + 1, rng.standard_normal(shape[1])
        g = rng.standard_normal(shape)
        tensors = [Tensor(a.copy(), requires_grad=True) for a in (x, weight, bias)]
        F.batch_norm(*tensors, None, None, training=True).backward(Tensor(g))
        got = batch_norm_backward(g.copy(), x.copy(), weight.copy())
        if not (isinstance(got, tuple) and len(got) == 3):
            raise Mismatch(f"case {number}: return three arrays (gx, gw, gb), got {type(got).__name__}")
        for name, mine, t in zip(("gx", "gw", "gb"), got, tensors):
            compare(f"case {number} of 3: x {shape}, {name}", mine, t.grad.data)


def check_bilinear_weights(interpolation_matrix):
    cases = [(2, 4, True), (2, 4, False), (7, 14, True), (7, 13, True), (9, 4, False),
             (3, 8, False), (1, 3, True), (3, 1, True), (5, 5, False)]
    for size_in, size_out, corners in cases:
        compare(f"size_in {size_in}, size_out {size_out}, align_corners={corners}",
                interpolation_matrix(size_in, size_out, corners),
                F.interpolation_matrix(size_in, size_out, corners),
                where=lambda i: f"output pixel {i[0]}, input pixel {i[1]}")


def check_soft_mask(soft_mask):
    minran.manual_seed(0)
    for poolings, size in ((1, 8), (2, 16), (3, 16), (3, 13)):
        module = AttentionModule(4, poolings).to(dtype=np.float64).eval()
        x = Tensor(np.random.default_rng(size).standard_normal((2, 4, size, size)))
        with no_grad():
            want = module.soft_mask(x).data
            got = soft_mask(module, x)
        what = f"poolings={poolings}, input {x.shape}"
        if not isinstance(got, Tensor):
            raise Mismatch(f"{what}: return a Tensor (the mask), got {type(got).__name__}")
        if got.shape != want.shape:
            hint = (" (upsample to the size the map had before each pooling: 13 -> 7 -> 4 -> 2 "
                    "goes back 2 -> 4 -> 7 -> 13)" if size == 13 else "")
            raise Mismatch(f"{what}: your mask has shape {got.shape}, minran's {want.shape}{hint}")
        compare(what, got.data, want)


def _argmax(x, kernel, stride, padding):
    """The winning offset k = di * kw + dj of every window, as pooling.cu's forward writes it."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    shape = F.max_pool2d(Tensor(x), kernel, stride, padding).shape
    argmax = np.empty(shape, np.int32)
    for n, c, i, j in np.ndindex(*shape):
        argmax[n, c, i, j] = np.argmax(xp[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw])
    return argmax


def check_max_pool_backward_thread(thread):
    cases = [((1, 2, 5, 5), (3, 3), (2, 2), (1, 1), False),
             ((2, 1, 6, 7), (2, 3), (1, 2), (1, 1), True),   # a wide kernel, unequal steps, ties
             ((1, 3, 7, 4), (3, 2), (3, 1), (0, 1), False),
             ((3, 2, 9, 9), (3, 3), (2, 2), (1, 1), True)]   # several blocks of threads
    threads_per_block = 128
    for number, (shape, kernel, stride, padding, ties) in enumerate(cases, 1):
        rng = np.random.default_rng(number)
        x = rng.integers(-2, 3, shape).astype(np.float64) if ties else rng.standard_normal(shape)
        argmax = _argmax(x, kernel, stride, padding)
        g = rng.standard_normal(argmax.shape)
        gx = np.full(shape, np.nan)
        blocks = -(-gx.size // threads_per_block)
        for tid in range(blocks * threads_per_block):
            thread(tid, g, argmax, gx, kernel, stride, padding)
        what = (f"case {number} of {len(cases)}: x {shape}{' (with ties)' if ties else ''}, "
                f"kernel {kernel}, stride {stride}, padding {padding}")
        unwritten = np.argwhere(np.isnan(gx))
        if len(unwritten):
            raise Mismatch(f"{what}: no thread wrote gx at {tuple(int(i) for i in unwritten[0])} "
                           f"({len(unwritten)} pixels left unwritten)")
        compare(what, gx, max_pool_gradient(x, g, kernel, stride, padding),
                where=lambda i: f"the pixel of thread {int(np.ravel_multi_index(i, shape))}")


@dataclass
class Exercise:
    number: str
    file: str          # in lessons/exercises/ and lessons/solutions/
    function: str
    check: object


EXERCISES = {e.number: e for e in [
    Exercise("05", "05_im2col.py", "im2col", check_im2col),
    Exercise("06", "06_max_pool_backward.py", "max_pool2d_backward", check_max_pool_backward),
    Exercise("07", "07_batch_norm_backward.py", "batch_norm_backward", check_batch_norm_backward),
    Exercise("08", "08_bilinear_weights.py", "interpolation_matrix", check_bilinear_weights),
    Exercise("11", "11_soft_mask.py", "soft_mask", check_soft_mask),
    Exercise("17", "17_max_pool_backward_thread.py", "max_pool_backward_thread",
             check_max_pool_backward_thread),
]}


def load(path, function):
    """The function `function` of the file at `path`."""
    spec = importlib.util.spec_from_file_location(f"lessons_exercise_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, function)


def _where_it_failed(error, path):
    """'line N of your file' for the deepest frame in the learner's file, if there is one."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if pathlib.Path(f.filename) == path]
    return f" (line {frames[-1].lineno} of {path.name}: {frames[-1].line})" if frames else ""


def check(number, folder="exercises"):
    """(passed, message) for exercise `number` in lessons/<folder>/."""
    exercise = EXERCISES[number]
    path = HERE / folder / exercise.file
    shown = f"lessons/{folder}/{exercise.file}"
    try:
        function = load(path, exercise.function)
    except Exception as error:   # a syntax error, a bad import, a missing function
        return False, f"{number}: {shown} does not load: {type(error).__name__}: {error}"
    try:
        exercise.check(function)
    except NotImplementedError:
        return False, f"{number}: not written yet: fill in {exercise.function}() in {shown}"
    except Mismatch as mismatch:
        return False, f"{number}: {exercise.function}() differs from minran's. {mismatch}"
    except Exception as error:
        return False, (f"{number}: your {exercise.function}() raised {type(error).__name__}: "
                       f"{error}{_where_it_failed(error, path)}")
    return True, f"{number}: {exercise.function}() agrees with minran on every case. Well done."


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lessons.check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("numbers", nargs="*", help=f"lesson numbers: {', '.join(EXERCISES)}")
    parser.add_argument("--solutions", action="store_true", help="check lessons/solutions/")
    args = parser.parse_args(argv)
    numbers = [n.zfill(2) for n in args.numbers] or list(EXERCISES)
    unknown = [n for n in numbers if n not in EXERCISES]
    if unknown:
        parser.error(f"no exercise for lesson {', '.join(unknown)}; "
                     f"the exercises are {', '.join(EXERCISES)}")
    results = [check(n, "solutions" if args.solutions else "exercises") for n in numbers]
    for passed, message in results:
        print(("ok    " if passed else "FAIL  ") + message)
    return 0 if all(passed for passed, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
