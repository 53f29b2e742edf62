#!/usr/bin/env python3
"""Where a CPU training step's time goes, by part: forward, backward, the SGD step, and
inference; and how many memory pages each forward faulted in.

    python benchmarks/step_parts.py --arch attention56 --batch 32
    python benchmarks/step_parts.py --root ../old-checkout      # the same, another version

Medians over --steps steps after two warm-up steps, one process, minran only. With --root
the minran of that checkout is timed (run it alternately with this one's to compare two
versions on a busy machine).
"""
import argparse
import pathlib
import resource
import statistics
import sys
import time

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="attention56")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--root", default=str(pathlib.Path(__file__).resolve().parents[1]))
    parser.add_argument("--no-keep-memory", action="store_true",
                        help="leave glibc's heap as it is (do not call "
                             "backend.keep_freed_memory), to see what keeping it saves")
    args = parser.parse_args(argv)
    sys.path.insert(0, args.root)
    import minran
    if args.no_keep_memory:
        minran.backend.keep_freed_memory = lambda: False
    import minran.functional as F
    from minran import Tensor, no_grad
    minran.manual_seed(0)
    model = minran.models.build_model(args.arch)
    opt = minran.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                           weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((args.batch, 3, 32, 32)).astype(np.float32))
    y = rng.integers(0, 10, args.batch)
    parts = {"forward": [], "backward": [], "sgd": [], "faults": []}
    for i in range(args.steps + 2):
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        t1 = time.perf_counter()
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        opt.zero_grad()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if i >= 2:
            for name, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2, faults)):
                parts[name].append(value)
    model.eval()
    inference = []
    with no_grad():
        for i in range(args.steps + 2):
            start = time.perf_counter()
            model(x)
            if i >= 2:
                inference.append(time.perf_counter() - start)

    def ms(values):
        return f"{statistics.median(values) * 1000:.1f} ms"
    print(f"{args.arch}, batch {args.batch}, minran from {minran.__file__}: forward "
          f"{ms(parts['forward'])}, backward {ms(parts['backward'])}, SGD {ms(parts['sgd'])}, "
          f"inference {ms(inference)}; pages faulted in per forward "
          f"{statistics.median(parts['faults']):,.0f} (medians of {args.steps})")


if __name__ == "__main__":
    main()
