#!/usr/bin/env python3
"""A few training steps of a tiny Attention-56 on the GPU, eager and as a CUDA graph: every
kernel of the network launched, for compute-sanitizer to watch.

    compute-sanitizer --tool memcheck --error-exitcode 1 python benchmarks/tiny_step.py --no-pool
    compute-sanitizer --tool racecheck --error-exitcode 1 python benchmarks/tiny_step.py

--no-pool gives every array its own cudaMalloc (CuPy's pool hands out pieces of larger
blocks, inside which memcheck cannot see a read past an array's end); the graph, which needs
a pool of its own, is then left out. --standin runs it on the stand-in GPU (a dry run).
"""
import argparse
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-pool", action="store_true")
    parser.add_argument("--standin", action="store_true")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args(argv)
    if args.standin:
        from minran.cuda import standin
        with standin.device(kernels="emulate"):
            return run(args)
    return run(args)


def run(args):
    import minran
    from minran import backend
    from minran.graph import GraphStep
    from minran.models import attention56
    from minran.optim import SGD
    from minran.step import TrainingStep
    problem = backend.gpu_problem()
    if problem:
        sys.exit(f"tiny_step: {problem}")
    cupy = backend.cupy
    if args.no_pool:
        cupy.cuda.set_allocator(None)
    minran.manual_seed(0)
    model = attention56(widths=(4, 8, 8, 8)).to(device="gpu")
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    step = TrainingStep(model, opt)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 4)
    losses = []
    for _ in range(args.steps):
        losses.append(float(step(cupy.asarray(x), cupy.asarray(y))[0]))
    if not args.no_pool:
        replay = GraphStep(step, x.shape, x.dtype, y.dtype)
        with replay.stream:
            for _ in range(args.steps):
                losses.append(float(replay(x, y)[0]))
    model.eval()
    with minran.no_grad():
        logits = model(minran.Tensor(cupy.asarray(x)))
    print(f"losses {' '.join(f'{v:.4f}' for v in losses)}; eval logits finite: "
          f"{bool(np.isfinite(cupy.asnumpy(logits.data)).all())}")
    if not all(np.isfinite(losses)):
        sys.exit("tiny_step: a loss is not finite")


if __name__ == "__main__":
    main()
