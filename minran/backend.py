"""The one place that decides between NumPy (CPU) and CuPy (GPU), and how many threads the
CPU's BLAS uses.

Every op asks `array_module(array)` for `xp` and writes `xp.matmul(...)` instead of
`np.matmul(...)`, so the same source runs on both devices wherever the two libraries agree.
"""
import contextlib
import ctypes
import glob
import os
import pathlib

import numpy as np

try:  # CuPy is optional: the CPU path must import and run without it.
    import cupy  # type: ignore
    CUPY_IMPORT_ERROR = None
except ImportError as error:
    cupy = None
    # Not installed at all, or installed but broken (a missing CUDA library): say which.
    CUPY_IMPORT_ERROR = None if getattr(error, "name", None) == "cupy" else error
except Exception as error:  # a CuPy that fails while loading its CUDA libraries
    cupy, CUPY_IMPORT_ERROR = None, error

DEVICES = ("cpu", "gpu")


def cuda_version(number):
    """CUDA's version numbers (12040 from the runtime or driver) as (major, minor): (12, 4)."""
    return number // 1000, number % 1000 // 10


def driver_cuda_version():
    """The newest CUDA the installed NVIDIA driver supports, as (major, minor); () when the
    driver will not say, None when there is no driver library to load (none installed)."""
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        version = ctypes.c_int()
        if library.cuDriverGetVersion(ctypes.byref(version)) != 0:
            return ()
        return cuda_version(version.value)
    return None


def gpu_problem():
    """None when CuPy sees a usable CUDA device, else what is missing, in words that can follow
    "--device gpu, but ": CuPy itself, the NVIDIA driver, a new enough driver, or a device."""
    if cupy is None:
        if CUPY_IMPORT_ERROR is not None:
            return (f"CuPy could not be imported ({type(CUPY_IMPORT_ERROR).__name__}: "
                    f"{CUPY_IMPORT_ERROR})")
        return "CuPy is not installed (pip install -e '.[gpu]' on a machine with an NVIDIA GPU)"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # cudaErrorNoDevice, cudaErrorInsufficientDriver, no libcuda
        cupy_name = f"CuPy {getattr(cupy, '__version__', '')}".strip()
        driver = driver_cuda_version()
        if driver is None:   # the runtime calls this an insufficient driver too
            return (f"no NVIDIA driver is installed ({cupy_name} found no libcuda to load); "
                    f"install the driver for your GPU (nvidia-smi then lists the GPU)")
        try:
            built = cuda_version(cupy.cuda.runtime.runtimeGetVersion())
        except Exception:
            built = None
        if driver and built and driver < built:
            return (f"the NVIDIA driver supports CUDA {driver[0]}.{driver[1]} at most, and "
                    f"{cupy_name} was built for CUDA {built[0]}.{built[1]}; update the NVIDIA "
                    f"driver, or install a CuPy built for CUDA {driver[0]}")
        return (f"{cupy_name} cannot use a CUDA device ({type(error).__name__}: {error}); "
                f"check that nvidia-smi lists the GPU")
    if count < 1:
        return "CuPy sees no CUDA device (check that nvidia-smi lists the GPU)"
    return None


def gpu_available():
    """True when CuPy imports and sees at least one CUDA device."""
    return gpu_problem() is None


def array_module(array):
    """numpy for host arrays, cupy for device arrays."""
    if cupy is not None and isinstance(array, cupy.ndarray):
        return cupy
    return np


def is_device_array(array):
    """True for arrays in GPU memory (reading one on the host waits for the GPU)."""
    return cupy is not None and isinstance(array, cupy.ndarray)


def device_of(array):
    return "gpu" if array_module(array) is not np else "cpu"


def check_device(device):
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}: use 'cpu' or 'gpu'")
    if device == "gpu":
        problem = gpu_problem()
        if problem:
            raise RuntimeError(f"device 'gpu' asked for, but {problem}; or use device 'cpu'")
    return device


def to_device(array, device):
    """Copy an array to 'cpu' or 'gpu' (no copy when it is already there)."""
    check_device(device)
    if device == device_of(array):
        return array
    if device == "gpu":
        return cupy.asarray(array)
    return cupy.asnumpy(array)


def to_numpy(array):
    return array if isinstance(array, np.ndarray) else cupy.asnumpy(array)


# ---- BLAS threads on the CPU ----------------------------------------------------------------
# OpenBLAS starts one thread per core, and its threads wait for each other by spinning. When
# another process wants a core, one of them is descheduled in the middle of a matrix product
# while the others spin on. On this project's shared 2-core machine, full-width Attention-56
# trained at 24.7 images/s with 1 BLAS thread and 13.2 with 2 beside one busy process, and at
# 21.6-24.8 against 1.7-2.7 beside other engineers' test suites; the best 2 threads did was
# 26.3 against 26.0 (benchmarks/blas_threads.md; the machine was never free of neighbours for
# long). One thread cost at most about 4% there, two cost up to a factor of 10, so training
# and --eval-only on the CPU use one BLAS thread unless the user chose a number with one of
# the variables below.
#
# No dependency is needed to do this: the OpenBLAS that NumPy loaded is found among this
# process's shared objects and its `openblas_set_num_threads` called through ctypes, under
# each prefix and suffix that NumPy's wheels (scipy_openblas..64_) and distributions use.
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_BLAS_NAMES = [("scipy_openblas_", "64_"), ("scipy_openblas_", ""), ("openblas_", ""),
               ("openblas_", "64_")]


class _OpenBlas:
    def __init__(self, path, library, prefix, suffix):
        self.path = path
        self._get = getattr(library, f"{prefix}get_num_threads{suffix}")
        self._set = getattr(library, f"{prefix}set_num_threads{suffix}")
        self._get.restype, self._get.argtypes = ctypes.c_int, []
        self._set.restype, self._set.argtypes = None, [ctypes.c_int]

    def get(self):
        return int(self._get())

    def set(self, n):
        self._set(int(n))


def _openblas_paths():
    """Shared objects named like OpenBLAS: those this process has mapped (Linux), then those
    in NumPy's bundled-library folders (wheels on Linux, macOS and Windows)."""
    paths = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                parts = line.split()
                if len(parts) >= 6 and "openblas" in os.path.basename(parts[-1]).lower():
                    paths.append(parts[-1])
    except OSError:
        pass
    here = pathlib.Path(np.__file__).parent
    for folder in (here.parent / "numpy.libs", here / ".dylibs"):
        paths += sorted(glob.glob(str(folder / "*openblas*")))
    return list(dict.fromkeys(paths))


_blas = None


def blas_libraries():
    """The OpenBLAS libraries NumPy uses, each with get() and set(n); [] when none is found
    (NumPy built on another BLAS: then only the environment variables can choose)."""
    global _blas
    if _blas is None:
        _blas = []
        for path in _openblas_paths():
            try:
                library = ctypes.CDLL(path)  # already loaded: the same handle, nothing new
            except OSError:
                continue
            for prefix, suffix in _BLAS_NAMES:
                try:
                    _blas.append(_OpenBlas(path, library, prefix, suffix))
                    break
                except AttributeError:
                    continue
    return _blas


def blas_threads():
    """The number of threads NumPy's OpenBLAS uses, or None when it was not found."""
    libraries = blas_libraries()
    return libraries[0].get() if libraries else None


def set_blas_threads(n):
    """Use n BLAS threads from now on; returns the previous number (None if no OpenBLAS)."""
    libraries = blas_libraries()
    if not libraries:
        return None
    previous = libraries[0].get()
    for library in libraries:
        library.set(n)
    return previous


def _blas_settings():
    """(name, value, a whole number of threads?) of each BLAS variable set, in BLAS_VARIABLES'
    order."""
    return [(name, os.environ[name], os.environ[name].strip().isdigit()
             and int(os.environ[name]) >= 1) for name in BLAS_VARIABLES if os.environ.get(name)]


def blas_threads_chosen_by_user():
    """'NAME=value' of the environment variable by which the user chose, or None. A value
    that is no number of threads (OPENBLAS_NUM_THREADS=abc) chooses nothing."""
    chosen = [f"{name}={value}" for name, value, number in _blas_settings() if number]
    return chosen[0] if chosen else None


@contextlib.contextmanager
def cpu_blas_threads(n=1):
    """Within the block NumPy's BLAS uses n threads, unless the user set one of
    BLAS_VARIABLES (then nothing changes); the previous number comes back afterwards.
    Yields a few words saying which it was, for the run's header."""
    chosen = blas_threads_chosen_by_user()
    if chosen:
        yield f"{blas_threads() or '?'} BLAS threads, as {chosen} says"
        return
    ignored = "".join(f"; {name}={value!r} is no whole number of threads, so it was ignored"
                      for name, value, number in _blas_settings() if not number)
    previous = set_blas_threads(n)
    if previous is None:
        yield (f"NumPy's BLAS threads (no OpenBLAS found to set; OMP_NUM_THREADS=1 chooses "
               f"one{ignored})")
        return
    try:
        yield f"{n} BLAS thread{'s' if n != 1 else ''} (OPENBLAS_NUM_THREADS=N chooses N{ignored})"
    finally:
        set_blas_threads(previous)


# ---- freed memory on the CPU ----------------------------------------------------------------
# NumPy's large arrays come from glibc's malloc. A backward pass frees every activation of
# the step at once, and glibc then hands the free top of its heap back to the operating
# system; the next forward takes it back a page at a time, each first write to a page a
# fault. With parameters and gradients flat (optim/flat.py) nothing long-lived is left among
# the activations to stop that: a step of Attention-56 at batch 32 faulted 82,000 pages
# back in per forward pass (`python benchmarks/step_parts.py --no-keep-memory`; none with
# the gradients scattered between the activations as they were before, docs/BENCHMARKS.md).
# minran keeps freed memory for the next step
# instead, as CuPy's memory pool does on the GPU: glibc is told not to trim its heap and to
# serve arrays up to its largest limit (32 MiB) from the heap. The process keeps what its
# largest step used, which it needs again at the next step anyway.
MALLOC_VARIABLES = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3   # glibc's malloc.h
_memory_kept = None


def keep_freed_memory():
    """Ask glibc to keep freed memory for reuse (see above), once per process; True when
    set, False where it cannot be (not glibc, or the user set one of MALLOC_VARIABLES,
    which then decide)."""
    global _memory_kept
    if _memory_kept is None:
        _memory_kept = False
        if not any(os.environ.get(name) for name in MALLOC_VARIABLES):
            try:
                libc = ctypes.CDLL("libc.so.6")
                _memory_kept = bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
                                    and libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20))
            except (OSError, AttributeError):   # not Linux with glibc
                pass
    return _memory_kept

