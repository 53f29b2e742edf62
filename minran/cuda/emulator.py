"""Running a kernel's own CUDA source on the CPU, to prove it before any GPU sees it.

`Module(path, options, name_expressions)` is a stand-in for cupy.RawModule: it compiles the
.cu file with the system C++ compiler, with emulator.h giving the CUDA names a CPU meaning
(each CUDA thread a fiber, one block at a time), and `get_function("im2col<float>")` returns
a callable taking (grid, block, args) as CuPy's does, but on NumPy arrays.

What a launch checks, beyond computing the answer:
  - every argument has exactly the C type the compiled kernel takes (the compiler reports
    the types, so this holds even when the launch did not come through kernels.py);
  - the kernel writes nothing outside its arrays: each array is copied between guard bytes
    (0xFF, a NaN to a float kernel that reads past an end), which must be untouched after;
  - the kernel does not write to the arrays it declares const;
  - shared memory is filled with NaN bytes before every block;
  - the launch is run once per thread order in ORDERS (threads and blocks forward, reversed,
    shuffled) and every result must be the same to the last bit: a missing __syncthreads()
    or two threads writing one place shows up as a difference;
  - a __syncthreads() that some threads of the block never reach is an error, not a hang.
The library is cached by a hash of the sources, the flags and the compiler's version.
"""
import contextlib
import ctypes
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading

import numpy as np

from .kernels import C_TYPES, KernelError, included_files

HEADER = pathlib.Path(__file__).with_name("emulator.h")
ORDERS = ("forward", "reverse", "shuffled")
# -Werror=double-promotion catches fmaxf in a double kernel and float maths done in double;
# -Werror=float-conversion catches a double silently narrowed to float.
FLAGS = ("-std=c++17", "-O1", "-U_FORTIFY_SOURCE", "-fPIC", "-shared", "-fvisibility=hidden", "-fno-gnu-unique",
         "-Wall", "-Wextra", "-Werror", "-Wfloat-conversion", "-Wdouble-promotion",
         "-Werror=float-conversion", "-Werror=double-promotion")
GUARD = 64   # bytes of 0xFF on each side of every array

_orders = ORDERS
_lock = threading.Lock()        # the emulator's scheduler state is per process
_launches = 0                   # seeds the shuffled order, so each launch gets its own


class EmulatorError(KernelError):
    """The kernel misbehaved (or did not build) on the emulator."""


@contextlib.contextmanager
def orders(*names):
    """Run launches in these thread orders only (the default is all of ORDERS)."""
    global _orders
    unknown = set(names) - set(ORDERS)
    if not names or unknown:
        raise ValueError(f"emulator.orders: choose from {ORDERS}, got {names}")
    previous, _orders = _orders, names
    try:
        yield
    finally:
        _orders = previous


def compiler():
    """The C++ compiler the emulator uses ($CXX, else g++), or None."""
    return shutil.which(os.environ.get("CXX", "g++"))


def unavailable_reason():
    """None when kernels can run here on the CPU, else one line saying what is missing."""
    if compiler() is None:
        return (f"no C++ compiler ({os.environ.get('CXX', 'g++')}) on PATH: the emulator "
                f"compiles each .cu file with it")
    if shutil.which("nm") is None:
        return "no `nm` (binutils) on PATH: the emulator finds shared memory with it"
    return None


def cache_dir():
    root = os.environ.get("MINRAN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "minran")
    return pathlib.Path(root) / "emulator"


def symbol(expression):
    """'im2col<float>' -> 'minran_im2col__float', the exported launcher's name."""
    name, element = expression.rstrip(">").split("<")
    return f"minran_{name}__{element.replace(' ', '_')}"


_compiler_versions = {}


def build(path, options, name_expressions):
    """Compile `path` into a shared library (or find it in the cache); returns its path."""
    reason = unavailable_reason()
    if reason:
        raise EmulatorError(f"the CUDA emulator cannot run here: {reason}")
    cxx = compiler()
    if cxx not in _compiler_versions:
        _compiler_versions[cxx] = subprocess.run([cxx, "--version"], capture_output=True,
                                                 text=True).stdout
    path = pathlib.Path(path).resolve()
    wrapper = f'#include "{path}"\n' + "".join(
        f"MINRAN_KERNEL({symbol(e)}, {e})\n" for e in name_expressions)
    command = [cxx, *FLAGS, *options, "-include", str(HEADER), "-x", "c++", "-"]
    key = hashlib.sha256()
    for part in [HEADER.read_text(), wrapper, " ".join(command), _compiler_versions[cxx],
                 *(f.read_text() for f in included_files(path))]:
        key.update(part.encode())
    target = cache_dir() / f"{path.stem}-{key.hexdigest()[:20]}.so"
    if target.exists() and target.with_suffix(".json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        library = pathlib.Path(tmp) / target.name
        done = subprocess.run(command + ["-o", str(library)], input=wrapper, text=True,
                              capture_output=True)
        if done.returncode:
            raise EmulatorError(f"{path.name} does not compile for the emulator "
                                f"({' '.join(command)}):\n{done.stderr[-6000:]}")
        shared = _shared_memory_symbols(library)
        library.with_suffix(".json").write_text(json.dumps(shared))
        os.replace(library.with_suffix(".json"), target.with_suffix(".json"))
        os.replace(library, target)
    return target


def _shared_memory_symbols(library):
    """[(name, offset, size)] of the kernels' __shared__ arrays, plus the anchor's offset.

    emulator.h makes __shared__ a function-local static; the compiler names those _ZZ...
    The emulator's own statics (namespace minran_emulator) are not shared memory.
    """
    listing = subprocess.run(["nm", "--defined-only", "-S", str(library)], capture_output=True,
                             text=True, check=True).stdout
    found = {"regions": []}
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == "minran_anchor":
            found["anchor"] = int(parts[0], 16)
        elif (len(parts) == 4 and parts[3].startswith("_ZZ") and parts[2] in "bBdD"
              and not parts[3].startswith("_ZZN15minran_emulator")):
            found["regions"].append((parts[3], int(parts[0], 16), int(parts[1], 16)))
    return found


class Module:
    """The emulator's cupy.RawModule: one compiled .cu file."""

    def __init__(self, path, options, name_expressions):
        self.path = pathlib.Path(path)
        library = build(path, options, name_expressions)
        self.library = ctypes.CDLL(str(library))
        shared = json.loads(library.with_suffix(".json").read_text())
        base = ctypes.addressof(ctypes.c_char.in_dll(self.library, "minran_anchor")) - shared["anchor"]
        n = len(shared["regions"])
        starts = (ctypes.c_void_p * max(n, 1))(*[base + offset for _, offset, _ in shared["regions"]])
        sizes = (ctypes.c_size_t * max(n, 1))(*[size for _, _, size in shared["regions"]])
        self.library.minran_set_shared_regions(starts, sizes, ctypes.c_int(n))
        self.shared_memory_bytes = sum(size for _, _, size in shared["regions"])
        self._functions = {e: Function(self, e) for e in name_expressions}

    def get_function(self, expression):
        if expression not in self._functions:
            raise EmulatorError(f"{self.path.name} was not built with {expression}")
        return self._functions[expression]


class Function:
    """One kernel instantiation, called as CuPy calls a kernel: f(grid, block, args)."""

    def __init__(self, module, expression):
        self.name = expression
        self._launch = getattr(module.library, symbol(expression))
        self._launch.restype = ctypes.c_int
        self._launch.argtypes = [ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint),
                                 ctypes.c_int, ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p),
                                 ctypes.c_char_p, ctypes.c_int]
        describe = getattr(module.library, symbol(expression) + "_signature")
        describe.restype = ctypes.c_char_p
        #: the parameter types as the C++ compiler sees them, e.g. ['const float*', 'int']
        self.param_types = describe().decode().split(",") if describe() else []

    def __call__(self, grid, block, args, shared_mem=0):
        global _launches
        if shared_mem:
            raise EmulatorError(f"{self.name}: dynamic shared memory is not emulated; "
                                f"declare a fixed-size __shared__ array")
        if len(args) != len(self.param_types):
            raise EmulatorError(f"{self.name} takes {len(self.param_types)} arguments "
                                f"({', '.join(self.param_types)}), got {len(args)}")
        grid, block = _dim3(grid), _dim3(block)
        memory = _GuardedArrays(self.name)
        cells, pointers = [], (ctypes.c_void_p * max(len(args), 1))()
        for i, (ctype, value) in enumerate(zip(self.param_types, args)):
            if ctype.endswith("*"):   # the kernel receives the array's address by value
                cell = np.array([memory.add(i, ctype, value)], dtype=np.uintp)
            else:
                cell = _scalar(self.name, i, ctype, value)
            cells.append(cell)
            pointers[i] = cell.ctypes.data
        error = ctypes.create_string_buffer(1024)
        with _lock:
            _launches += 1
            seed = _launches
            results = []
            for order in _orders:
                memory.restore()
                code = self._launch(grid, block, ORDERS.index(order), seed, pointers, error,
                                    len(error))
                if code:
                    raise EmulatorError(f"{self.name}: {error.value.decode()}")
                memory.check()
                results.append((order, memory.snapshot()))
        memory.compare(results)
        memory.write_back()


def _dim3(size):
    size = (size,) if isinstance(size, int) else tuple(size)
    if not 1 <= len(size) <= 3 or min(size) < 1:
        raise EmulatorError(f"grid and block sizes must be 1 to 3 positive ints, got {size}")
    return (ctypes.c_uint * 3)(*(list(size) + [1, 1])[:3])


def _scalar(kernel, index, ctype, value):
    """A one-element array holding the value, which must already have the exact C type."""
    wanted = np.dtype(C_TYPES[ctype])
    if not isinstance(value, np.generic) or value.dtype != wanted:
        got = type(value).__name__ if not isinstance(value, np.generic) else str(value.dtype)
        hint = (" (CuPy sends a Python int as 8 bytes and a float as a double)"
                if isinstance(value, (int, float)) else "")
        raise EmulatorError(f"{kernel}: argument {index} is a {ctype} ({wanted}), got "
                            f"{got}{hint}")
    return np.array([value], dtype=wanted)


class _GuardedArrays:
    """Copies of the launch's arrays between guard bytes, restored before every order."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.entries = []   # [index, ctype, original, guarded copy, pristine copy]

    def add(self, index, ctype, array):
        base = ctype.replace("const ", "").rstrip("*")
        if not isinstance(array, np.ndarray):
            raise EmulatorError(f"{self.kernel}: argument {index} ({ctype}) must be a NumPy "
                                f"array, got {type(array).__name__}")
        if array.dtype != np.dtype(C_TYPES[base]) or not array.flags.c_contiguous:
            raise EmulatorError(f"{self.kernel}: argument {index} ({ctype}) must be a "
                                f"C-contiguous {np.dtype(C_TYPES[base])} array, got "
                                f"{array.dtype} with strides {array.strides}")
        start = array.__array_interface__["data"][0]
        for entry in self.entries:   # the same array passed twice shares one copy
            other = entry[2]
            other_start = other.__array_interface__["data"][0]
            if (other_start, other.nbytes) == (start, array.nbytes):
                if not ctype.startswith("const"):
                    entry[1] = ctype
                return entry[3].ctypes.data + GUARD
            if array.nbytes and other.nbytes and np.shares_memory(array, other):
                raise EmulatorError(f"{self.kernel}: arguments {entry[0]} and {index} overlap "
                                    f"without being the same array")
        guarded = np.full(array.nbytes + 2 * GUARD, 0xFF, dtype=np.uint8)
        guarded[GUARD:GUARD + array.nbytes] = array.reshape(-1).view(np.uint8)
        self.entries.append([index, ctype, array, guarded, guarded.copy()])
        return guarded.ctypes.data + GUARD

    def restore(self):
        for entry in self.entries:
            entry[3][:] = entry[4]

    def check(self):
        for index, ctype, array, guarded, pristine in self.entries:
            n = array.nbytes
            if (guarded[:GUARD] != 0xFF).any() or (guarded[GUARD + n:] != 0xFF).any():
                side = "before" if (guarded[:GUARD] != 0xFF).any() else "after"
                raise EmulatorError(f"{self.kernel}: wrote outside argument {index} ({ctype}), "
                                    f"{side} its {array.size} elements")
            if ctype.startswith("const") and not np.array_equal(guarded, pristine):
                raise EmulatorError(f"{self.kernel}: wrote to argument {index}, declared "
                                    f"{ctype}")

    def snapshot(self):
        return [e[3][GUARD:GUARD + e[2].nbytes].copy() for e in self.entries]

    def compare(self, results):
        first_order, first = results[0]
        for order, result in results[1:]:
            for entry, a, b in zip(self.entries, first, result):
                if not np.array_equal(a, b):
                    index, ctype, array = entry[:3]
                    x, y = a.view(array.dtype), b.view(array.dtype)
                    k = int(np.flatnonzero((a != b).reshape(x.size, -1).any(axis=1))[0])
                    raise EmulatorError(
                        f"{self.kernel}: the result depends on the order the threads run in: "
                        f"argument {index} ({ctype}) element {k} is {x[k]!r} with threads in "
                        f"{first_order} order and {y[k]!r} in {order} order (a missing "
                        f"__syncthreads(), or two threads writing one place)")

    def write_back(self):
        for index, ctype, array, guarded, _ in self.entries:
            if not ctype.startswith("const"):
                array.reshape(-1).view(np.uint8)[:] = guarded[GUARD:GUARD + array.nbytes]
