#!/usr/bin/env python3
"""The launcher's own Python cost per kernel launch, the device call stubbed out.

    python benchmarks/launch_cost.py --arch attention92 --batch 64

Records every launch of minran's kernels in one training step (on the stand-in GPU, so
with the argument types a GPU step has), then issues all of them again through
`kernels.Source.launch` with the final call to the GPU replaced by a function that does
nothing, and reports the microseconds per launch: what Python spends choosing the launch
plan, checking and converting the arguments and working out the grid (median of --repeats
passes over the step's launches; a busy machine inflates it).
"""
import argparse
import pathlib
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from minran.cuda import kernels, standin  # noqa: E402
from minran import step_counts  # noqa: E402


def step_launches(arch, batch, widths=None):
    """Every minran kernel launch of one eager training step after warm-up, as (source,
    name, arguments, sizes), recorded while step_counts.count_step counts that step (call it
    inside `standin.device()`)."""
    recorded, marks = [], []
    real_launch, real_forward = kernels.Source.launch, step_counts._forward_ops

    def recording(self, name, *launch_args, **size):
        recorded.append((self, name, launch_args, size))
        return real_launch(self, name, *launch_args, **size)

    def marking(*a):   # count_step's forward count runs between the warm-up and the step
        ops = real_forward(*a)
        marks.append(len(recorded))
        return ops
    kernels.Source.launch, step_counts._forward_ops = recording, marking
    try:
        counts = step_counts.count_step(arch, batch, widths=widths, graph=False)
    finally:
        kernels.Source.launch, step_counts._forward_ops = real_launch, real_forward
    launches = recorded[marks[0]:]
    assert len(launches) == counts["eager"]["kernel"], "not the measured step's launches"
    return launches


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="attention92")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    with standin.device(kernels="count"):
        launches = step_launches(args.arch, args.batch)
        # The device call stubbed: the kernel object's call (CuPy's RawKernel.__call__, here
        # the stand-in's) does nothing; all that comes before it is the launcher's.
        real_call = standin._Function.__call__
        standin._Function.__call__ = lambda self, *a, **k: None
        try:
            passes = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                for source, name, launch_args, size in launches:
                    source.launch(name, *launch_args, **size)
                passes.append((time.perf_counter() - start) / len(launches))
        finally:
            standin._Function.__call__ = real_call
    arguments = [len(a) for _, _, a, _ in launches]
    print(f"{args.arch}, batch {args.batch}: {len(launches)} kernel launches per step, "
          f"{np.mean(arguments):.1f} arguments each on average")
    print(f"launcher's Python per launch, device call stubbed: median {statistics.median(passes) * 1e6:.2f} us "
          f"(fastest pass {min(passes) * 1e6:.2f} us, slowest {max(passes) * 1e6:.2f} us, "
          f"{args.repeats} passes)")


if __name__ == "__main__":
    main()
