#!/usr/bin/env python3
"""Training speed on a GPU: minran (CUDA graph, eager, kernels off) beside PyTorch (eager,
torch.compile) on the identical network, in one run.

    python benchmarks/gpu_bench.py --arch attention92 --batch 64 --rounds 3
    python benchmarks/gpu_bench.py --arch attention92 --batch 256 --tf32

Every configuration trains in a child process of its own (its peak memory is its own),
the configurations one after another, round after round (a slow spell of the machine hits
them all alike), and the best round of each is reported, every round listed. A training step
is what train_cifar.py does per batch: the host batch copied to the device, forward,
cross-entropy, backward, SGD with Nesterov momentum and weight decay. Images/s counts
--steps steps after --warmup steps (the CUDA graph is recorded, torch.compile compiles, in the
warm-up), timed from the first to the GPU's end of the last. TF32 is off on both sides unless
--tf32 (then on for both: cuBLAS's TF32 math for minran's products, PyTorch's matmul and
cuDNN flags). Peak memory: what each framework's allocator held (CuPy's pools, the graph's
included; torch.cuda.max_memory_reserved), and what PyTorch's tensors used at most.
A configuration that cannot run here says why in its row.
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = ("minran-graph", "minran-eager", "minran-kernels-off", "torch-eager", "torch-compile")


def batch(args):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 3, 32, 32)).astype(args.dtype)
    return x, rng.integers(0, 10, args.batch)


def run_minran(args, config):
    sys.path.insert(0, str(ROOT))
    import minran
    from minran import backend
    from minran.cuda import kernels
    problem = backend.gpu_problem() or kernels.compile_problem()
    if problem:
        raise RuntimeError(problem)
    cupy = backend.cupy
    from minran.graph import GraphStep
    from minran.optim import SGD
    from minran.step import TrainingStep
    if args.tf32:
        handle = cupy.cuda.device.get_cublas_handle()
        cupy.cuda.cublas.setMathMode(handle, cupy.cuda.cublas.CUBLAS_TF32_TENSOR_OP_MATH)
    with kernels.use("off" if config == "minran-kernels-off" else "auto"):
        minran.manual_seed(0)
        model = minran.models.build_model(args.arch).to(device="gpu", dtype=args.dtype)
        model.train()
        opt = SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
        step = TrainingStep(model, opt)
        x, y = batch(args)
        if config == "minran-graph":
            replay = GraphStep(step, x.shape, x.dtype, y.dtype)
            stream = replay.stream

            def one():
                replay(x, y)
        else:
            stream = cupy.cuda.Stream.null   # where the model was made: no ordering needed

            def one():
                step(cupy.asarray(x), cupy.asarray(y))
        with stream:
            for _ in range(args.warmup):
                one()
            stream.synchronize()
            start = time.perf_counter()
            for _ in range(args.steps):
                one()
            stream.synchronize()
            seconds = time.perf_counter() - start
    pools = [cupy.get_default_memory_pool()] + ([replay.pool] if config == "minran-graph" else [])
    return {"images_per_s": args.batch * args.steps / seconds,
            "ms_per_step": 1000 * seconds / args.steps,
            "reserved_mib": sum(p.total_bytes() for p in pools) / 2**20,
            "params": model.num_parameters()}


def run_torch(args, config):
    import torch
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from torch_reference import build
    if not torch.cuda.is_available():
        raise RuntimeError("PyTorch sees no CUDA GPU")
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    model = build(args.arch).to(device="cuda", dtype=dtype)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                          weight_decay=1e-4)
    forward = torch.compile(model) if config == "torch-compile" else model
    x, y = batch(args)
    x, y = torch.from_numpy(x).pin_memory(), torch.from_numpy(y).pin_memory()

    def one():
        loss = torch.nn.functional.cross_entropy(forward(x.to("cuda", non_blocking=True)),
                                                 y.to("cuda", non_blocking=True))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for _ in range(args.warmup):
        one()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        one()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"images_per_s": args.batch * args.steps / seconds,
            "ms_per_step": 1000 * seconds / args.steps,
            "reserved_mib": torch.cuda.max_memory_reserved() / 2**20,
            "allocated_mib": torch.cuda.max_memory_allocated() / 2**20,
            "params": sum(p.numel() for p in model.parameters())}


def child(args):
    try:
        if args.standin and args.child.startswith("minran"):   # a dry run of this script
            sys.path.insert(0, str(ROOT))
            from minran.cuda import standin
            with standin.device(kernels="count"):
                result = run_minran(args, args.child)
        else:
            result = (run_minran if args.child.startswith("minran") else run_torch)(args, args.child)
    except Exception as error:   # one line: why this configuration cannot run here
        result = {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"}
    print("RESULT " + json.dumps(result))


def in_child(argv, config, timeout):
    try:
        done = subprocess.run([sys.executable, __file__, *argv, "--child", config],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish within {timeout} s"}
    lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
    if not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {done.returncode}: {tail[:300]}"}
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="attention92")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tf32", action="store_true", help="TF32 products on both sides")
    p.add_argument("--configs", default=",".join(CONFIGS),
                   help=f"comma-separated, from {', '.join(CONFIGS)}")
    p.add_argument("--timeout", type=int, default=300, help="seconds per child")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--standin", action="store_true",
                   help="run minran's configurations on the stand-in GPU (a dry run on a CPU: "
                        "it exercises this script, its timings mean nothing)")
    p.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    configs = [c for c in args.configs.split(",") if c]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        p.error(f"--configs: unknown {sorted(unknown)}; choose from {', '.join(CONFIGS)}")
    rounds = {c: [] for c in configs}
    for r in range(args.rounds):
        for config in configs:
            if rounds[config] and "error" in rounds[config][-1]:
                continue   # it failed once: it will fail again
            rounds[config].append(in_child(argv, config, args.timeout))
            print(f"round {r + 1} {config}: {rounds[config][-1]}", file=sys.stderr, flush=True)
    print(f"{args.arch}, batch {args.batch}, {args.dtype}, TF32 {'on' if args.tf32 else 'off'}, "
          f"{args.steps} timed steps after {args.warmup}, best of {args.rounds} rounds")
    print(f"{'':<20}{'images/s':>10}{'ms/step':>9}{'reserved MiB':>14}{'tensors MiB':>13}"
          f"   rounds (images/s)")
    best = {}
    for config, results in rounds.items():
        good = [r for r in results if "error" not in r]
        if not good:
            print(f"{config:<20}  {results[0]['error'] if results else 'not run'}")
            continue
        top = max(good, key=lambda r: r["images_per_s"])
        best[config] = top
        tensors = f"{top['allocated_mib']:.0f}" if "allocated_mib" in top else "-"
        print(f"{config:<20}{top['images_per_s']:>10.0f}{top['ms_per_step']:>9.2f}"
              f"{top['reserved_mib']:>14.0f}{tensors:>13}   "
              + " ".join(f"{r['images_per_s']:.0f}" for r in good))
    if "minran-graph" in best and "torch-eager" in best:
        ratio = best["minran-graph"]["images_per_s"] / best["torch-eager"]["images_per_s"]
        print(f"minran graph / PyTorch eager: {ratio:.2f} (median over rounds "
              f"{statistics.median(r['images_per_s'] for r in rounds['minran-graph'] if 'error' not in r) / statistics.median(r['images_per_s'] for r in rounds['torch-eager'] if 'error' not in r):.2f})")
        params = {best[c]["params"] for c in best}
        if len(params) > 1:
            print(f"warning: parameter counts differ: {sorted(params)}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"args": vars(args), "rounds": rounds},
                                                      indent=2))
    return 0 if best else 1


if __name__ == "__main__":
    sys.exit(main())
