"""Every core on one op: the batch is cut into slices and a few threads work on them at once.

NumPy releases Python's GIL inside its loops (ufuncs, einsum, copies, matmul), so plain
Python threads can run NumPy on different slices of one array at the same moment; without
this, every elementwise pass of every op runs on one core while the others wait.

    parts = parallel.run(lambda s: np.einsum("nchw->c", x[s]), parallel.slices(x))

`slices` depends on the array's shape alone, never on how many threads there are, and `run`
returns the results in slice order, so every op gives bit for bit the same answer on 1
thread or 16 (tests/test_fast_paths.py holds it). Work that fits one slice runs inline.

The number of threads is the number of cores this process may use; `MINRAN_THREADS=1` (or
`set_threads(1)`) runs everything on the calling thread. The variable is read on first use,
not at import, so a bad value is one clear error where work starts (the commands check it
before anything else), never a traceback from `import minran`. Only NumPy arrays are split:
CuPy arrays come back as one slice (the GPU has its own parallelism).
"""
import contextlib
import os
import queue
import threading

import numpy as np

SLICE_BYTES = 1 << 20   # about how much of the op's main array one slice holds (1 MiB)
SHARES = 4              # a batch cut in more than one slice is cut in a multiple of this
MAX_THREADS = 1024      # more threads than cores only wait for each other; this many is a typo


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # macOS, Windows
        return os.cpu_count() or 1


def _default_threads():
    value = os.environ.get("MINRAN_THREADS")
    if value is None:
        return _cores()
    if not (value.strip().isdigit() and 1 <= int(value) <= MAX_THREADS):
        raise ValueError(f"MINRAN_THREADS={value!r}: expected a positive whole number of threads "
                         f"up to {MAX_THREADS:,}, such as {_cores()} (the cores here); set it so, "
                         f"or unset it to use every core")
    return int(value)


_threads = None   # read from MINRAN_THREADS on first use


def threads():
    """How many threads `run` uses (the calling thread included)."""
    global _threads
    if _threads is None:
        _threads = _default_threads()
    return _threads


def set_threads(n):
    """Use n threads from now on (1: no pool at all); returns the previous number."""
    global _threads
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"set_threads: n must be a positive int, got {n!r}")
    previous, _threads = threads(), n
    return previous


@contextlib.contextmanager
def using(n):
    """`with parallel.using(1): ...` runs the block on n threads."""
    previous = set_threads(n)
    try:
        yield
    finally:
        set_threads(previous)


def slices(array, axis_bytes=None, target=None):
    """Slices of axis 0 holding about `target` bytes each (SLICE_BYTES by default).

    `axis_bytes` is the bytes one item along axis 0 costs the op (the array's own row by
    default; a convolution passes the size of one image's columns and output). More than one
    slice is rounded up to a multiple of SHARES, and the slices differ by at most one item,
    so two or four threads get equal shares. The cut depends only on these sizes, never on
    the number of threads, so results do not depend on it either.
    """
    n = array.shape[0]
    if not isinstance(array, np.ndarray) or n == 0:
        return [slice(None)]
    if axis_bytes is None:
        axis_bytes = array.itemsize * (array.size // n)
    count = max(1, min(n, -(-(n * axis_bytes) // (target or SLICE_BYTES))))   # ceil, 1..n
    if count > 1:
        count = min(n, -(-count // SHARES) * SHARES)
    size, extra = divmod(n, count)
    bounds = [i * size + min(i, extra) for i in range(count + 1)]
    return [slice(start, stop) for start, stop in zip(bounds, bounds[1:])]


def total(parts):
    """The sum of the slices' partial results (per-channel sums, weight gradients), always
    added in slice order, so it is the same bit for bit on any number of threads."""
    result = parts[0]
    for part in parts[1:]:
        result = result + part
    return result


def elementwise(ufunc, *operands):
    """ufunc(*operands), slice by slice on every core when every operand is a number or a
    NumPy array of one shape (the network's activations); anything else is the plain call."""
    sliced = [isinstance(a, np.ndarray) and a.ndim > 0 for a in operands]
    arrays = [a for a, is_array in zip(operands, sliced) if is_array]
    if (threads() == 1 or not arrays or arrays[0].nbytes <= SLICE_BYTES
            or any(a.shape != arrays[0].shape for a in arrays)
            or any(hasattr(a, "shape") and not is_array and a.ndim > 0
                   for a, is_array in zip(operands, sliced))):
        return ufunc(*operands)
    first = [a[(slice(0, 1),) * a.ndim] if is_array else a   # one element: the result's dtype
             for a, is_array in zip(operands, sliced)]
    out = np.empty(arrays[0].shape, dtype=ufunc(*first).dtype)

    def part(s):
        ufunc(*[a[s] if is_array else a for a, is_array in zip(operands, sliced)], out=out[s])
    run(part, slices(out))
    return out


# ---- the pool -----------------------------------------------------------------------------
_local = threading.local()   # .busy: this thread is inside run(), so a nested run is serial
_jobs = queue.SimpleQueue()
_workers = []
_workers_lock = threading.Lock()


class _Job:
    """One call of `run`: the caller and any idle workers take items until none is left."""

    def __init__(self, fn, items):
        self.fn, self.items = fn, items
        self.results = [None] * len(items)
        self.next = self.running = 0
        self.error = None
        self.lock = threading.Lock()
        self.finished = threading.Event()

    def work(self):
        while True:
            with self.lock:
                if self.next == len(self.items) or self.error is not None:
                    return
                i = self.next
                self.next += 1
                self.running += 1
            try:
                result, error = self.fn(self.items[i]), None
            except BaseException as e:   # handed to the caller, raised there
                result, error = None, e
            with self.lock:
                self.results[i] = result
                if error is not None and self.error is None:
                    self.error = error
                self.running -= 1
                if self.running == 0 and (self.next == len(self.items) or self.error is not None):
                    self.finished.set()


def _worker():
    _local.busy = True
    while True:
        _jobs.get().work()


def _start_workers(n):
    with _workers_lock:
        while len(_workers) < n:
            thread = threading.Thread(target=_worker, name=f"minran-{len(_workers) + 1}",
                                      daemon=True)
            thread.start()
            _workers.append(thread)


_blas_settled = False


def _one_blas_thread():
    """The pool's threads call BLAS themselves (a convolution's products, slice by slice), so
    OpenBLAS's own threads would only compete with them for the cores, spinning while they
    wait: with 2 OpenBLAS threads beside two pool threads a step took 2.0-2.3 s against
    0.7-1.0 s with 1 (docs/BENCHMARKS.md). The first time the pool runs, NumPy's OpenBLAS is
    set to one thread, unless the user chose a number (OPENBLAS_NUM_THREADS and the like)."""
    global _blas_settled
    if not _blas_settled:
        _blas_settled = True
        from . import backend
        if backend.blas_threads_chosen_by_user() is None:
            backend.set_blas_threads(1)


_memory_settled = False


def _keep_freed_memory():
    """The first time an op runs here, freed arrays are kept for the next step instead of
    going back to the operating system (backend.keep_freed_memory says why)."""
    global _memory_settled
    if not _memory_settled:
        _memory_settled = True
        from . import backend
        backend.keep_freed_memory()


def _forget_workers():
    """A forked child has none of its parent's threads: start afresh."""
    global _jobs, _workers_lock
    _jobs, _workers_lock = queue.SimpleQueue(), threading.Lock()
    _workers.clear()
    _local.busy = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def run(fn, items):
    """[fn(item) for item in items], the items shared out among `threads()` threads.

    The caller works too, so a call never waits on a thread that is not doing its items; a
    call made from inside another runs on its own thread alone.
    """
    items = list(items)
    _keep_freed_memory()
    helpers = min(threads(), len(items)) - 1
    if helpers < 1 or getattr(_local, "busy", False):
        return [fn(item) for item in items]
    _one_blas_thread()
    _start_workers(threads() - 1)
    job = _Job(fn, items)
    for _ in range(helpers):
        _jobs.put(job)
    _local.busy = True
    try:
        job.work()
    finally:
        _local.busy = False
    job.finished.wait()
    if job.error is not None:
        raise job.error
    return job.results
