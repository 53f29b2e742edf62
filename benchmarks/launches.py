#!/usr/bin/env python3
"""What one training step asks of a GPU: launches, device calls, allocations, host waits.

    python benchmarks/launches.py --arch attention92 --batch 64
    python benchmarks/launches.py --arch attention56 --batch 32 --json

Runs minran's `--device gpu` step on the CPU through the stand-in GPU
(minran/cuda/standin.py), kernels only counted, and prints the counts of one step after a
warm-up step: eager, and replayed as a CUDA graph. No GPU is needed; the counts are what a
GPU would be asked, not timings.
"""
import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from minran.cuda import standin  # noqa: E402
from minran.step_counts import count_step  # noqa: E402


def table(result):
    eager = result["eager"]
    lines = [f"{result['arch']}, batch {result['batch']}, {result['dtype']}: one training step "
             f"(forward, backward, SGD) after a warm-up step, on the stand-in GPU",
             "", f"{'per step':<58}{'eager':>10}{'graph':>10}", "-" * 78]

    def row(name, key, fmt="{:,}"):
        values = [fmt.format(r[key]) if r else "" for r in (eager, result.get("graph"))]
        lines.append(f"{name:<58}{values[0]:>10}{values[1]:>10}")
    forward = result["forward_ops"]
    top = ", ".join(f"{n} {op}" for op, n in sorted(forward.items(), key=lambda kv: -kv[1])[:3])
    lines.append(f"{'graph ops in the forward (' + top + ')':<58}{sum(forward.values()):>10,}")
    row("minran kernel launches", "kernel")
    row("CuPy array operations", "cupy")
    row("  of which inside CuPy ops (matmul pointer arrays, copies)", "cupy_inside")
    row("cuBLAS products", "cublas")
    row("memsets", "memory")
    row("GPU launches in all", "gpu_launches")
    row("device calls from Python", "device_calls")
    row("allocations requested", "allocations")
    row("allocations the pool could not serve (new device memory)", "new_memory")
    row("host waits (device-to-host reads, synchronisations)", "host_waits")
    row("host-to-device copies", "host_to_device")
    lines += ["", "launches by name (eager):"]
    for name, n in sorted(eager["launches"].items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"  {name:<56}{n:>10,}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="attention92")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--widths", default=None, help="e.g. 8,16,16,16 for a small network")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    parser.add_argument("--no-graph", action="store_true",
                        help="count the eager step only (no CUDA graph recorded)")
    args = parser.parse_args(argv)
    widths = tuple(int(w) for w in args.widths.split(",")) if args.widths else None
    with standin.device(kernels="count"):
        result = count_step(args.arch, args.batch, dtype=args.dtype, widths=widths,
                            graph=not args.no_graph)
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
