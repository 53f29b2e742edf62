"""How many BLAS threads should minran use on the CPU? Training speed with 1 and 2 OpenBLAS
threads, on an idle machine and with busy processes beside it.

    python benchmarks/blas_threads.py                      # 1 and 2 threads, idle and 1 busy
    python benchmarks/blas_threads.py --busy 0 1 2 --steps 20 --widths 8,32,64,128

Each setting runs in a fresh process (the thread count must be set before NumPy loads
OpenBLAS) that trains `--steps` steps of batch 64 on random images after two warm-up steps
and reports images/s. A "busy" process is `python -c "while True: pass"`, started before and
stopped after each setting, standing in for whatever else the machine runs. Note what the
machine was doing besides: on a shared machine "idle" is only as idle as the neighbours.
"""
import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np
import minran, minran.functional as F
from minran import Tensor, backend
arch, widths, batch, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
widths = tuple(int(w) for w in widths.split(",")) if widths else None
minran.manual_seed(0)
model = minran.models.build_model(arch, widths=widths)
opt = minran.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
rng = np.random.default_rng(0)
x = Tensor(rng.standard_normal((batch, 3, 32, 32)).astype(np.float32))
y = rng.integers(0, 10, batch)
def step():
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
for _ in range(2):
    step()
start = time.perf_counter()
for _ in range(steps):
    step()
elapsed = time.perf_counter() - start
print(json.dumps({"images_per_s": steps * batch / elapsed, "blas": backend.blas_threads()}))
"""


# What a busy neighbour runs: a plain spinning loop, or NumPy matrix products with OpenBLAS's
# default threads (another training run, or a test suite, next door).
NEIGHBOURS = {
    "spin": "while True: pass",
    "blas": "import numpy as np; a = np.ones((256, 256), np.float32)\nwhile True: a @ a",
}


def measure(threads, busy, args):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    hogs = [subprocess.Popen([sys.executable, "-c", NEIGHBOURS[args.neighbour]]) for _ in range(busy)]
    try:
        out = subprocess.run([sys.executable, "-c", CHILD, args.arch, args.widths or "",
                              str(args.batch), str(args.steps)],
                             env=env, check=True, capture_output=True, text=True).stdout
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="attention56")
    p.add_argument("--widths", default=None, help="e.g. 8,32,64,128 (default: the paper's)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--busy", type=int, nargs="+", default=[0, 1], help="busy processes beside it")
    p.add_argument("--neighbour", choices=list(NEIGHBOURS), default="spin",
                   help="what each busy process runs (default: a spinning Python loop)")
    args = p.parse_args()
    print(f"{args.arch} widths {args.widths or 'paper'}, batch {args.batch}, {args.steps} steps, "
          f"{os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.2f}")
    print(f"| BLAS threads | busy processes ({args.neighbour}) | training images/s |\n|---|---|---|")
    for busy in args.busy:
        for threads in args.threads:
            result = measure(threads, busy, args)
            print(f"| {threads} | {busy} | {result['images_per_s']:.1f} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
