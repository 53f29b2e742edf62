"""Time minran (and, when torch is installed, the identical PyTorch network) on one setting.

    python benchmarks/bench.py --arch attention56 --batch 32 --device cpu
    python benchmarks/bench.py --arch attention56 --batch 32 --profile

Times a full training step (forward, backward, SGD with Nesterov momentum and weight decay)
and inference (eval mode, no graph) after warm-up, over --steps steps, and reports the
median ms/step, images/s, peak memory (host RSS on the CPU, the CuPy pool's peak on the
GPU) and the median CPU time of a training step (all threads together: the work done, which
waiting for the cores of a busy machine does not inflate). Each framework runs in its own
child process (so each peak memory is its own), one after the other, on the same batch and
dtype.

Threads on the CPU: minran splits each op's batch over --threads threads (minran/parallel.py,
default: every core) and, as train_cifar.py trains, gives NumPy's OpenBLAS one thread each
(--blas-threads, default 1; OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or MKL_NUM_THREADS in the
environment choose instead). PyTorch uses its own default, one thread per core, unless
--torch-threads says. The header line of the output says what each used.

On a busy machine, --rounds R runs the two children R times, alternately, and reports each
framework's fastest training and fastest inference over the rounds (and lists every round).
"""
import argparse
import json
import os
import subprocess
import resource
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import minran  # noqa: E402
import minran.functional as F  # noqa: E402
from minran import Tensor, no_grad  # noqa: E402


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, steps, warmup, sync=lambda: None):
    """Median wall seconds per call, and median CPU seconds of the process per call (every
    thread's; the work done, which other processes on a busy machine do not inflate)."""
    for _ in range(warmup):
        fn()
    sync()
    times, cpu = [], []
    for _ in range(steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        sync()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(times), statistics.median(cpu)


def threads_line():
    """What this minran child runs on, for the output's header."""
    from minran import backend, parallel
    blas = getattr(backend, "blas_threads", lambda: None)()
    blas = blas if blas is not None else os.environ.get("OPENBLAS_NUM_THREADS", "?")
    return f"minran {parallel.threads()} threads, {blas} BLAS"


def bench_minran(args):
    minran.manual_seed(0)
    model = minran.models.build_model(args.arch).to(device=args.device, dtype=args.dtype)
    opt = minran.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((args.batch, 3, 32, 32)).astype(args.dtype))
    y = rng.integers(0, 10, args.batch)
    sync = lambda: None  # noqa: E731
    if args.device == "gpu":
        import cupy
        x, y = x.to("gpu"), cupy.asarray(y)
        sync = cupy.cuda.Device().synchronize

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer():
        with no_grad():
            model(x)
    model.train()
    train_s, train_cpu = timed(step, args.steps, args.warmup, sync)
    model.eval()
    infer_s, _ = timed(infer, args.steps, args.warmup, sync)
    memory = peak_rss_mb()
    if args.device == "gpu":
        import cupy
        memory = cupy.get_default_memory_pool().total_bytes() / 2**20
    return model.num_parameters(), train_s, infer_s, memory, threads_line(), train_cpu


def bench_torch(args):
    try:
        import torch
    except ImportError:
        return None
    sys.path.insert(0, os.path.dirname(__file__))
    from torch_reference import build
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = "cuda" if args.device == "gpu" else "cpu"
    model = build(args.arch).to(device=device, dtype=getattr(torch, args.dtype))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
    x = torch.randn(args.batch, 3, 32, 32, device=device, dtype=getattr(torch, args.dtype))
    y = torch.randint(0, 10, (args.batch,), device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer():
        with torch.no_grad():
            model(x)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model.train()
    train_s, train_cpu = timed(step, args.steps, args.warmup, sync)
    model.eval()
    infer_s, _ = timed(infer, args.steps, args.warmup, sync)
    memory = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else peak_rss_mb()
    return (sum(p.numel() for p in model.parameters()), train_s, infer_s, memory,
            f"PyTorch {torch.__version__} {torch.get_num_threads()} threads", train_cpu)


def profile(args):
    """Time per op type, forward and backward, over one training step."""
    import collections
    from minran.tensor import Tensor as T
    model = minran.models.build_model(args.arch).to(dtype=args.dtype)
    x = Tensor(np.random.default_rng(0).standard_normal((args.batch, 3, 32, 32)).astype(args.dtype))
    y = np.random.default_rng(1).integers(0, 10, args.batch)
    forward_t, backward_t = collections.Counter(), collections.Counter()
    original = T._from_op.__func__
    clock = {"last": time.perf_counter()}

    def timed_from_op(cls, data, parents, backward, op):
        now = time.perf_counter()
        forward_t[op] += now - clock["last"]  # time since the previous op finished
        clock["last"] = now

        def timed_backward(g, backward=backward, op=op):
            start = time.perf_counter()
            out = backward(g)
            backward_t[op] += time.perf_counter() - start
            return out
        return original(cls, data, parents, timed_backward, op)
    T._from_op = classmethod(timed_from_op)
    try:
        for _ in range(2):
            forward_t.clear()
            backward_t.clear()
            clock["last"] = time.perf_counter()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
    finally:
        T._from_op = classmethod(original)
    total = sum(forward_t.values()) + sum(backward_t.values())
    print(f"\nper-op profile, {args.arch}, batch {args.batch}, {args.dtype}, one step "
          f"({total * 1000:.0f} ms; forward time includes the Python between ops)")
    print(f"{'op':<20}{'forward ms':>12}{'backward ms':>13}{'share':>8}")
    for op in sorted(set(forward_t) | set(backward_t), key=lambda o: -(forward_t[o] + backward_t[o])):
        f, b = forward_t[op] * 1000, backward_t[op] * 1000
        print(f"{op:<20}{f:>12.1f}{b:>13.1f}{(f + b) / total / 10:>7.1f}%")


BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _best(results):
    """Over rounds: the fastest training (with its CPU time) and the fastest inference, and
    the largest peak memory."""
    if not results or results[0] is None:
        return None
    train = min(results, key=lambda r: r[1])
    infer = min(r[2] for r in results)
    return (train[0], train[1], infer, max(r[3] for r in results), train[4], train[5])


def _in_child(argv, which, args):
    argv = sys.argv[1:] if argv is None else argv
    env = dict(os.environ)
    if which == "minran":   # set before the child imports NumPy, which reads them once
        if args.threads:
            env["MINRAN_THREADS"] = str(args.threads)
        if args.blas_threads or not any(env.get(name) for name in BLAS_VARIABLES):
            env["OPENBLAS_NUM_THREADS"] = str(args.blas_threads or 1)
    done = subprocess.run([sys.executable, __file__, *argv, "--only", which],
                          capture_output=True, text=True, check=True, env=env)
    lines = done.stdout.splitlines()
    result = json.loads([l for l in lines if l.startswith("RESULT ")][-1][len("RESULT "):])
    others = [line for line in lines if not line.startswith("RESULT ")]
    return None if result is None else tuple(result), others


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="attention56")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--profile", action="store_true", help="also print a per-op profile")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--threads", type=int, help="minran's threads (default: every core)")
    p.add_argument("--blas-threads", type=int,
                   help="OpenBLAS threads for minran (default 1, as train_cifar.py trains)")
    p.add_argument("--torch-threads", type=int, help="PyTorch's threads (default: its own)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run each framework this many times, alternately, and report each "
                        "one's fastest training and inference (for a busy machine)")
    p.add_argument("--only", choices=["minran", "torch"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.only:  # a child process: one framework, so its peak memory is its own
        result = bench_minran(args) if args.only == "minran" else bench_torch(args)
        print("RESULT", json.dumps(result))
        if args.profile and args.only == "minran":   # with the same threads as the timing
            profile(args)
        return
    rounds = {"minran": [], "torch": []}
    for _ in range(args.rounds):   # alternating, so a slow spell of a busy machine hits both
        result, profile_lines = _in_child(argv, "minran", args)
        rounds["minran"].append(result)
        if not args.no_torch:
            rounds["torch"].append(_in_child(argv, "torch", args)[0])
    mine, theirs = _best(rounds["minran"]), (_best(rounds["torch"]) if rounds["torch"] else None)
    if args.rounds > 1:
        for name, results in rounds.items():
            if results and results[0]:
                print(f"{name} rounds, train ms: "
                      + " ".join(f"{r[1] * 1000:.0f}" for r in results)
                      + "; infer ms: " + " ".join(f"{r[2] * 1000:.0f}" for r in results))
        if theirs:   # each round's minran beside the PyTorch run right after it
            pairs = list(zip(rounds["minran"], rounds["torch"]))
            print("ratio of each round, training: "
                  + " ".join(f"{t[1] / m[1]:.2f}" for m, t in pairs) + "; inference: "
                  + " ".join(f"{t[2] / m[2]:.2f}" for m, t in pairs))
    print(f"{args.arch}, batch {args.batch}, {args.device}, {args.dtype}, median of {args.steps} steps "
          f"after {args.warmup} warm-up" + (f", best of {args.rounds} rounds" if args.rounds > 1
                                            else "")
          + "; " + "; ".join(r[4] for r in (mine, theirs) if r))
    print(f"{'':<10}{'params':>12}{'train ms':>10}{'train img/s':>13}{'infer img/s':>13}{'peak MiB':>10}"
          f"{'train CPU ms':>14}")
    rows = [("minran", mine)] + ([("pytorch", theirs)] if theirs else [])
    for name, (params, train_s, infer_s, memory, _, train_cpu) in rows:
        print(f"{name:<10}{params:>12,}{train_s * 1000:>10.0f}{args.batch / train_s:>13.1f}"
              f"{args.batch / infer_s:>13.1f}{memory:>10.0f}{train_cpu * 1000:>14.0f}")
    if theirs:
        assert mine[0] == theirs[0], f"parameter counts differ: minran {mine[0]}, torch {theirs[0]}"
        print(f"ratio minran/pytorch: training {theirs[1] / mine[1]:.2f}, inference {theirs[2] / mine[2]:.2f} "
              f"(same parameter count {mine[0]:,}); CPU time per training step "
              f"{theirs[5] / mine[5]:.2f}")
    else:
        print("(no PyTorch comparison: " + ("--no-torch given)" if args.no_torch else "torch is not installed)"))
    if args.profile:
        print("\n".join(profile_lines))


if __name__ == "__main__":
    main()
