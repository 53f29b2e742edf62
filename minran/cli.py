"""What minran's commands share: options checked as they are parsed, and errors as one line.

train_cifar.py, `python -m minran.visualize`, `python -m minran.experiments` and `python -m
minran.cuda` parse with `Parser`, so a bad option ends the command with one line naming the
option, what is wrong and the fix, never argparse's usage block or a traceback. The limits on
numbers live here, each with the reason it gives, so that the commands accept the same.
"""
import argparse
import contextlib
import math
import re
import sys

# The paper's run is about 205 epochs (160k iterations at batch 64); more than fifty times
# that is a typo (an extra zero or three), not a plan.
MAX_EPOCHS = 10_000
# The paper's lr is 0.1. A narrow Attention-56 on 2,000 images learned nothing in 2 epochs at
# lr 10, and its loss turned to NaN after 24 iterations at 100 and 16 at 1000.
MAX_LR = 10.0
# Parameters grow with the square of the width: 16 is already 256 times the paper's network.
MAX_WIDTH = 16
MAX_CHANNELS = 4096   # one --widths value; the paper's widest layer has 2048 channels


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line: the option, what is wrong, and where help is.

    A value that starts with a minus and is not a plain number (`--widths -8,16,16,16`)
    reaches its option, to be refused there as negative, instead of being taken for an
    option of its own ("expected one argument")."""
    LISTS = ("--widths",)   # options whose value is a comma-separated list of numbers

    def error(self, message):
        sys.exit(f"error: {message} ({self.prog} --help lists the options)")

    def parse_known_args(self, args=None, namespace=None):
        glued = []
        for arg in sys.argv[1:] if args is None else args:
            if glued and glued[-1] in self.LISTS and re.match(r"-\d", arg):
                glued[-1] = f"{glued[-1]}={arg}"
            else:
                glued.append(arg)
        return super().parse_known_args(glued, namespace)


def number(kind, low, high=None, why_high="", below=False, why_low=""):
    """An argparse type: a finite number of `kind` (int or float) from `low` up to `high`
    (or below it, with `below`), saying why a value past the bound makes no sense.
    argparse puts the option's name before the message, so the line names the option."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"got {text!r}, expected a {'whole ' if kind is int else ''}number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"got {text}, expected a finite number")
        if value < low:
            raise argparse.ArgumentTypeError(f"got {text}, expected {low} or more{why_low}")
        if high is not None and (value >= high if below else value > high):
            bound = f"below {high:,g}" if below else f"at most {high:,g}"
            raise argparse.ArgumentTypeError(f"got {text}, expected {bound}{why_high}")
        return value
    return parse


POSITIVE = number(int, 1)
SEED = number(int, 0, why_low=" (a seed is a whole number such as 0, 1, 2)")
FRACTION = number(float, 0.0, 1.0)


def epochs(why_low=""):
    return number(int, 1, MAX_EPOCHS, " (the paper trains about 205 epochs; more would not end "
                                      "in any useful time)", why_low=why_low)


class OptionError(ValueError):
    """A bad option or environment variable found after parsing; the message names it."""


def add_run_options(p, epochs_type, epochs_help=None):
    """The options of the commands that train (train_cifar.py, the experiments), alike."""
    p.add_argument("--data-dir", help="folder holding (or receiving) the CIFAR archive; default "
                                      "$MINRAN_DATA or ~/.cache/minran")
    p.add_argument("--epochs", type=epochs_type, help=epochs_help)
    p.add_argument("--batch-size", type=POSITIVE)
    p.add_argument("--subset", type=POSITIVE, help="train on the first N images")
    p.add_argument("--test-subset", type=POSITIVE, help="test on the first N images")
    p.add_argument("--seed", type=SEED)
    p.add_argument("--widths", metavar="STEM,S1,S2,S3",
                   help="explicit channel widths for reduced-scale runs, e.g. 8,32,64,128 "
                        "(multiples of 4 after the stem; the paper's are 16,64,128,256)")
    p.add_argument("--out")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (it is kept until the new run has "
                        "written its first checkpoint, and put back if it fails before)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-cuda-graph", action="store_true",
                   help="on the GPU, run every step eagerly instead of replaying it as a CUDA "
                        "graph (the same results, to the last bit; slower)")


def parse_widths(text, arch=None):
    """'8,32,64,128' -> (8, 32, 64, 128): the --widths option, checked against the network.

    Four widths (stem, stage 1, 2, 3) for CIFAR networks; the ImageNet ones take a fifth, the
    width of their stage 4. Every width after the stem must be a multiple of 4: a residual
    unit's bottleneck is a quarter of its width."""
    imagenet = bool(arch) and arch.endswith("_imagenet")
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        widths = ()
    counts = (4, 5) if imagenet or arch is None else (4,)
    if len(widths) not in counts or min(widths) < 1 or max(widths) > MAX_CHANNELS:
        fifth = " (or a 5th, stage 4)" if 5 in counts else ""
        network = f" for {arch}" if arch else ""
        raise OptionError(f"--widths {text}: expected 4 values stem,stage1,stage2,stage3{fifth}"
                          f"{network}, each a positive whole number of channels up to "
                          f"{MAX_CHANNELS:,}, such as 8,32,64,128")
    odd = [w for w in widths[1:] if w % 4]
    if odd:
        raise OptionError(f"--widths {text}: the stages' widths must be multiples of 4 (a "
                          f"residual unit's bottleneck is a quarter of its width), and "
                          f"{', '.join(map(str, odd))} {'is' if len(odd) == 1 else 'are'} not; "
                          f"give e.g. 8,32,64,128")
    return widths


def check_environment():
    """The environment variables minran reads, checked before any work: OptionError naming
    the variable, else nothing."""
    from . import parallel
    try:
        parallel.threads()
    except ValueError as error:
        raise OptionError(str(error)) from None


@contextlib.contextmanager
def one_line_errors(*expected):
    """Inside, an `expected` error (or an OptionError) ends the command with its message as
    one line and exit status 1, and Ctrl-C ends it with status 130 (what it saved was said)."""
    try:
        yield
    except (*expected, OptionError) as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt:
        sys.exit(130)


def pick_device(requested, warn=True, advice=""):
    """The device; without one asked for, the GPU when CuPy finds one, else the CPU with one
    line saying why (and `advice`)."""
    from . import backend
    from .cuda import kernels
    if requested == "gpu":
        problem = backend.gpu_problem() or kernels.compile_problem()
        if problem:
            raise OptionError(f"--device gpu, but {problem}; or use --device cpu")
        return "gpu"
    if requested:
        return requested
    problem = backend.gpu_problem() or kernels.compile_problem()
    if problem is None:
        return "gpu"
    if warn:
        print(f"warning: training on the CPU: {problem}{advice}", file=sys.stderr)
    return "cpu"
