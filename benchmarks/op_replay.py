"""Replay every op call of one training step at its real shape, under several settings at once.

    python benchmarks/op_replay.py --config threads=1 --config threads=2
    python benchmarks/op_replay.py --ops batch_norm --config threads=2,slice=262144 --config threads=2

One forward pass of the network records each op call (op, input shapes, arguments); each call
is then run on random inputs, forward and backward, --repeats times under every --config in
turn, call by call, and the fastest of the repeats is kept. Because the settings alternate
call by call, a machine that gets slower or faster while this runs (other processes, a busy
neighbour) slows every setting alike, which is what makes small differences between settings
visible on a busy machine when a whole training step cannot show them. A setting is
`threads=N` (minran/parallel.py threads) and optionally `slice=BYTES` (parallel.SLICE_BYTES).

The totals are per op over one step (each call's fastest time times how often the step makes
that call). They leave out what bench.py's step also has (the Python between ops, the graph
walk, the loss and the optimiser), so they sum to a little less than a step. `--cpu` times
the calling thread's CPU time instead of the wall clock (one-thread settings only: it shows
the work done, unaffected by waiting for a core). OpenBLAS gets one thread, as in bench.py.
"""
import argparse
import collections
import os
import sys
import time

# One OpenBLAS thread, as bench.py gives minran and train_cifar.py trains (minran's own
# threads share the cores), unless the environment chooses; NumPy reads it once, at import.
if not any(os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                        "MKL_NUM_THREADS")):
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import minran  # noqa: E402
import minran.functional as F  # noqa: E402
from minran import Tensor, parallel  # noqa: E402

OPS = ["conv2d", "batch_norm", "max_pool2d", "sigmoid", "relu", "upsample_bilinear",
       "attention_combine", "add"]


def record(arch, batch):
    """{(op, argument keys): count} of one forward pass; tensors are keyed by shape."""
    calls = collections.Counter()
    real = {name: getattr(F, name) for name in OPS}

    def key(a):
        if isinstance(a, Tensor):
            return ("tensor", a.shape, a.requires_grad)
        if isinstance(a, np.ndarray):
            return ("array", a.shape)
        return a

    def spy(name):
        def call(*args, **kwargs):
            calls[(name, tuple(key(a) for a in args),
                   tuple(sorted((k, key(v)) for k, v in kwargs.items())))] += 1
            return real[name](*args, **kwargs)
        return call
    for name in OPS:
        setattr(F, name, spy(name))
    try:
        model = minran.models.build_model(arch)
        model(Tensor(np.random.default_rng(0).standard_normal((batch, 3, 32, 32))
                     .astype(np.float32)))
    finally:
        for name in OPS:
            setattr(F, name, real[name])
    return calls


def apply(config):
    settings = dict(item.split("=") for item in config.split(","))
    parallel.set_threads(int(settings.get("threads", parallel.threads())))
    parallel.SLICE_BYTES = int(settings.get("slice", DEFAULT_SLICE))


DEFAULT_SLICE = parallel.SLICE_BYTES


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="attention56")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--ops", default=",".join(OPS), help="comma-separated op names")
    p.add_argument("--config", action="append", required=True,
                   help="threads=N[,slice=BYTES]; give it once per setting")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--cpu", action="store_true", help="CPU time of this thread, not wall time")
    args = p.parse_args(argv)
    clock = time.thread_time if args.cpu else time.perf_counter
    rng = np.random.default_rng(1)

    def make(k):
        if isinstance(k, tuple) and k and k[0] == "tensor":
            return Tensor(rng.standard_normal(k[1]).astype(np.float32), requires_grad=k[2])
        if isinstance(k, tuple) and k and k[0] == "array":   # running statistics
            return np.ones(k[1], np.float32)
        return k
    totals = collections.defaultdict(float)
    wanted = args.ops.split(",")
    for (name, keys, kwargs), count in record(args.arch, args.batch).items():
        if name not in wanted:
            continue
        inputs = [make(k) for k in keys]
        options = {k: make(v) for k, v in kwargs}
        op = (lambda a, b: a + b) if name == "add" else getattr(F, name)
        best = {c: [float("inf"), float("inf")] for c in args.config}
        for _ in range(args.repeats):
            for config in args.config:
                apply(config)
                start = clock()
                out = op(*inputs, **options)
                forward = clock() - start
                g = np.ones(out.shape, out.dtype)
                start = clock()
                out._backward(g)
                backward = clock() - start
                best[config][0] = min(best[config][0], forward)
                best[config][1] = min(best[config][1], backward)
        for config in args.config:
            totals[(config, out._op, "forward")] += best[config][0] * count
            totals[(config, out._op, "backward")] += best[config][1] * count
    kind = "CPU" if args.cpu else "wall"
    print(f"{args.arch}, batch {args.batch}: every op call of one step, fastest of "
          f"{args.repeats}, {kind} ms (forward + backward)")
    names = sorted({op for _, op, _ in totals}, key=lambda o: -totals[(args.config[0], o, "forward")]
                   - totals[(args.config[0], o, "backward")])
    print(f"{'op':<20}" + "".join(f"{c:>26}" for c in args.config))
    for op in names + ["total"]:
        cells = []
        for c in args.config:
            if op == "total":
                f = sum(v for (cc, _, d), v in totals.items() if cc == c and d == "forward")
                b = sum(v for (cc, _, d), v in totals.items() if cc == c and d == "backward")
            else:
                f, b = totals[(c, op, "forward")], totals[(c, op, "backward")]
            cells.append(f"{f * 1000:8.1f} + {b * 1000:6.1f} = {(f + b) * 1000:6.1f}")
        print(f"{op:<20}" + "".join(f"{cell:>26}" for cell in cells))


if __name__ == "__main__":
    main()
