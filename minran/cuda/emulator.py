"""Running a kernel's own CUDA source on the CPU, to prove it before any GPU sees it.

`Module(path, options, name_expressions)` is a stand-in for cupy.RawModule: it compiles the
.cu file with the system C++ compiler, with emulator.h giving the CUDA names a CPU meaning
(each CUDA thread a fiber, one block at a time, warps of 32 lanes), and
`get_function("im2col<float>")` returns a callable taking (grid, block, args) as CuPy's
does, but on NumPy arrays. Any block shape CUDA allows runs (up to 1024 threads; 2-D and
3-D blocks), with __shfl_*_sync, __ballot/__any/__all_sync, __syncwarp and atomics.

How it sees every memory access. The kernel is compiled with g++'s -fsanitize=thread
instrumentation but linked without ThreadSanitizer's run-time library: the compiler puts a
call to __tsan_read4(address) (write8, ...) before every load and store, and emulator.h
defines those functions. So the checks see each access of the kernel's code, through any
pointer it derives and in any helper it calls, with no change to the .cu files, and
kernels.py's reading of the parameters and the type check below are unaffected. (Wrapping
each `T*` parameter in a checking pointer class was the other way; it breaks where a
kernel keeps a plain pointer, `const T* plane = x + ...`, and needs the sources rewritten.)

What a launch checks, beyond computing the answer:
  - every argument has exactly the C type the compiled kernel takes (the compiler reports
    the types, so this holds even when the launch did not come through kernels.py);
  - out of bounds: each array is copied into its own mapping, between 64 KiB of
    inaccessible guard pages on each side; a read or write outside it is reported before
    it happens, with the thread, the argument and the element index (and one the
    instrumentation missed faults on a guard page and is reported, not a crash);
  - shared memory: filled with NaN bytes before every block; every shared array starts on
    a 64 KiB boundary (CUDA allows at most 48 KiB), and an access in the 16 KiB around one
    that is not inside it is reported as out of bounds;
  - data races: a global element (or 4-byte word of shared memory) touched by two
    threads, at least one writing, with no __syncthreads() of their block between them (within one warp: no
    __syncwarp or shuffle both took part in), or by two blocks at all, is reported with
    both threads. Two atomics never race; an atomic and a plain access do;
  - const arrays are read-only pages, and a write to one is reported;
  - outputs start as garbage (POISON: NaN, or 0xA5 bytes for integers), as after empty()
    on a GPU, under this rule: the first run uses the arrays as given and records how the
    kernel used each non-const array; every later run first fills with POISON those it
    wrote without reading any element before some thread wrote it. Arrays it updates in
    place (sgd_update's p and buf, running statistics) are read first, and arrays it did not
    touch in this launch (a buffer unused without momentum) are left alone. Poisoning cannot
    change what a race-free kernel writes (it never reads those values); elements it never
    writes come back as POISON, and a test that uses them fails. A parameter commented
    `/* out */` in the .cu is poisoned in every run, and reading it before writing it is an
    error; one commented `/* in-out */` is never poisoned (a kernel that writes part of an
    array and means the caller's values to stay in the rest);
  - the launch runs once per thread order in ORDERS (threads and blocks forward, reversed,
    shuffled) and the elements the kernel wrote must be the same to the last bit in every
    run;
  - a __syncthreads() some threads of the block never reach, or a warp function whose mask
    leaves out its caller or names a lane that returned, is an error, not a hang.

Cost: the instrumentation and the checks make a launch about 1.5 times slower than the same
emulator without them (a reduced Attention-56 training step, 4.4 s against 3.0 s, on this
project's 2-core machine); starting fibers without a system call won that back, so a launch
costs what it did before the checks (about 0.3 microseconds per thread per run).
The library is cached by a hash of the sources, the flags and the compiler's version.
"""
import contextlib
import ctypes
import hashlib
import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import threading

import numpy as np

from .kernels import C_TYPES, KernelError, included_files

HEADER = pathlib.Path(__file__).with_name("emulator.h")
ORDERS = ("forward", "reverse", "shuffled")
# -Werror=double-promotion catches fmaxf in a double kernel and float maths done in double;
# -Werror=float-conversion catches a double silently narrowed to float. -fsanitize=thread
# only instruments: its run-time library is not linked (emulator.h stands in for it).
COMPILE_FLAGS = ("-std=c++17", "-O1", "-U_FORTIFY_SOURCE", "-fPIC", "-fvisibility=hidden",
                 "-fno-gnu-unique", "-fsanitize=thread", "--param=tsan-instrument-func-entry-exit=0",
                 "-Wall", "-Wextra", "-Werror", "-Wfloat-conversion", "-Wdouble-promotion",
                 "-Werror=float-conversion", "-Werror=double-promotion")
LINK_FLAGS = ("-shared", "-Wl,-z,defs")
GUARD = 64 * 1024                  # inaccessible bytes on each side of every array
SHARED_ALIGNMENT = 64 * 1024       # emulator.h's __shared__ alignment
MAX_SHARED = 48 * 1024             # CUDA's static shared memory per block
MAX_BLOCK = (1024, 1024, 64)       # and its limits on block and grid sizes
MAX_GRID = (2**31 - 1, 65535, 65535)
POISON = {"f": 0xFF, "i": 0xA5, "u": 0xA5}   # NaN for floats; a huge negative index for ints

_orders = ORDERS
_lock = threading.Lock()        # the emulator's scheduler state is per process
_launches = 0                   # seeds the shuffled order, so each launch gets its own
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
PAGE = os.sysconf("SC_PAGE_SIZE")
PROT_NONE, PROT_READ, PROT_WRITE = 0, 1, 2
MAP_PRIVATE, MAP_ANONYMOUS, MAP_NORESERVE = 0x02, 0x20, 0x4000   # Linux


class EmulatorError(KernelError):
    """The kernel misbehaved (or did not build) on the emulator."""


@contextlib.contextmanager
def orders(*names):
    """Run launches in these thread orders only (the default is all of ORDERS). With one
    order, the launch still runs twice: as given, then with its outputs poisoned."""
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
    if shutil.which("nm") is None or shutil.which("c++filt") is None:
        return "no `nm` and `c++filt` (binutils) on PATH: the emulator finds shared memory with them"
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
    compile_command = [cxx, *COMPILE_FLAGS, *options, "-include", str(HEADER), "-x", "c++", "-c", "-"]
    link_command = [cxx, *LINK_FLAGS]
    key = hashlib.sha256()
    for part in [HEADER.read_text(), wrapper, " ".join(compile_command), " ".join(link_command),
                 _compiler_versions[cxx], *(f.read_text() for f in included_files(path))]:
        key.update(part.encode())
    target = cache_dir() / f"{path.stem}-{key.hexdigest()[:20]}.so"
    if target.exists() and target.with_suffix(".json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        library, objects = pathlib.Path(tmp) / target.name, pathlib.Path(tmp) / "kernels.o"
        for command, given in ((compile_command + ["-o", str(objects)], wrapper),
                               (link_command + [str(objects), "-o", str(library)], None)):
            done = subprocess.run(command, input=given, text=True, capture_output=True)
            if done.returncode:
                raise EmulatorError(f"{path.name} does not compile for the emulator "
                                    f"({' '.join(command)}):\n{done.stderr[-6000:]}")
        shared = _shared_memory_symbols(library, path.name)
        library.with_suffix(".json").write_text(json.dumps(shared))
        os.replace(library.with_suffix(".json"), target.with_suffix(".json"))
        os.replace(library, target)
    return target


def _shared_memory_symbols(library, source_name):
    """{"regions": [(name, offset, size)], "anchor": offset} of the kernels' __shared__ arrays.

    emulator.h makes __shared__ a function-local static; the compiler names those _ZZ...
    The emulator's own statics (namespace minran_emulator) are not shared memory.
    """
    listing = subprocess.run(["nm", "--defined-only", "-S", str(library)], capture_output=True,
                             text=True, check=True).stdout
    found, names = {"regions": []}, []
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == "minran_anchor":
            found["anchor"] = int(parts[0], 16)
        elif (len(parts) == 4 and parts[3].startswith("_ZZ") and parts[2] in "bBdDvV"
              and not parts[3].startswith("_ZZN15minran_emulator")):
            found["regions"].append([parts[3], int(parts[0], 16), int(parts[1], 16)])
    if found["regions"]:
        demangled = subprocess.run(["c++filt"], input="\n".join(r[0] for r in found["regions"]),
                                   capture_output=True, text=True, check=True).stdout.split("\n")
        for region, name in zip(found["regions"], demangled):
            region[0] = name
    for name, offset, size in found["regions"]:
        if size > MAX_SHARED:
            raise EmulatorError(f"{source_name}: shared array {name} has {size} bytes; CUDA "
                                f"allows at most {MAX_SHARED} bytes of static shared memory")
        if offset % SHARED_ALIGNMENT:
            raise EmulatorError(f"{source_name}: shared array {name} is not aligned to "
                                f"{SHARED_ALIGNMENT} bytes, so its bounds cannot be checked "
                                f"(is it declared with __shared__ from emulator.h?)")
    return found


# ---- what the .cu file says about its parameters ------------------------------------------
_NOTE = re.compile(r"/\*\s*(out|in-out)\s*\*/")
_KERNEL_HEAD = re.compile(r"__global__\s+void\s+(\w+)\s*\(([^)]*)\)")


def parameter_notes(source):
    """{kernel: [(declaration, note)]}: each parameter as written ('const T* x') and its
    note, 'out' or 'in-out' when the .cu comments it `/* out */` or `/* in-out */`, else None.
    (The comments are invisible to kernels.py and NVRTC.)"""
    text = _NOTE.sub(lambda m: f" @{m.group(1)} ", source)
    text = re.sub(r"//[^\n]*|/\*.*?\*/", " ", text, flags=re.S)
    found = {}
    for name, params in _KERNEL_HEAD.findall(text):
        entries = []
        for param in params.split(","):
            notes = re.findall(r"@(out|in-out)", param)
            declaration = " ".join(re.sub(r"@(?:out|in-out)|__restrict__", " ", param).split())
            entries.append((declaration.replace(" *", "*"), notes[0] if notes else None))
        found[name] = entries
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
        self.shared_names = [name for name, _, _ in shared["regions"]]
        self.shared_memory_bytes = sum(size for _, _, size in shared["regions"])
        self.parameters = parameter_notes(self.path.read_text())
        for kernel, params in self.parameters.items():
            for declaration, note in params:
                if note and (declaration.startswith("const") or not declaration.split()[0].endswith("*")):
                    raise EmulatorError(f"{self.path.name}: kernel {kernel} marks {declaration!r} "
                                        f"/* {note} */, but only arrays the kernel writes "
                                        f"(non-const pointers) can be outputs")
        self.library.minran_set_arrays.argtypes = [ctypes.c_int] + [ctypes.POINTER(ctypes.c_uint64)] * 4 + [
            ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]
        self.library.minran_written.argtypes = [ctypes.c_int, ctypes.c_void_p]
        self._functions = {e: Function(self, e) for e in name_expressions}

    def get_function(self, expression):
        if expression not in self._functions:
            raise EmulatorError(f"{self.path.name} was not built with {expression}")
        return self._functions[expression]


class Function:
    """One kernel instantiation, called as CuPy calls a kernel: f(grid, block, args)."""

    def __init__(self, module, expression):
        self.name = expression
        self.module = module
        self._launch = getattr(module.library, symbol(expression))
        self._launch.restype = ctypes.c_int
        self._launch.argtypes = [ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint),
                                 ctypes.c_int, ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p),
                                 ctypes.c_char_p, ctypes.c_int]
        describe = getattr(module.library, symbol(expression) + "_signature")
        describe.restype = ctypes.c_char_p
        #: the parameter types as the C++ compiler sees them, e.g. ['const float*', 'int']
        self.param_types = describe().decode().split(",") if describe() else []
        kernel, element = expression.rstrip(">").split("<")
        declared = module.parameters.get(kernel, [])
        if len(declared) != len(self.param_types):   # a kernel the parser could not read
            declared = [(ctype, None) for ctype in self.param_types]
        #: each parameter as the .cu declares it, T resolved ('const float* x'), and its note
        self.declarations = [re.sub(r"\bT\b", element, d) for d, _ in declared]
        self.notes = [note for _, note in declared]

    def __call__(self, grid, block, args, shared_mem=0):
        global _launches
        if shared_mem:
            raise EmulatorError(f"{self.name}: dynamic shared memory is not emulated; "
                                f"declare a fixed-size __shared__ array")
        if len(args) != len(self.param_types):
            raise EmulatorError(f"{self.name} takes {len(self.param_types)} arguments "
                                f"({', '.join(self.param_types)}), got {len(args)}")
        grid, block = _dims(self.name, grid, block)
        cells, pointers = [], (ctypes.c_void_p * max(len(args), 1))()
        error = ctypes.create_string_buffer(2048)
        with _lock:
            memory = _Arrays(self)
            try:
                for i, (ctype, value) in enumerate(zip(self.param_types, args)):
                    if ctype.endswith("*"):   # the kernel receives the array's address by value
                        cell = np.array([memory.add(i, ctype, value)], dtype=np.uintp)
                    else:
                        cell = _scalar(self.name, i, ctype, value)
                    cells.append(cell)
                    pointers[i] = cell.ctypes.data
                memory.register()
                _launches += 1
                seed = _launches
                runs = list(_orders) if len(_orders) > 1 else list(_orders) * 2
                poisoned = memory.declared_outputs()
                results = []
                for k, order in enumerate(runs):
                    memory.restore(poisoned)
                    code = self._launch(grid, block, ORDERS.index(order), seed, pointers, error,
                                        len(error))
                    if code:
                        raise EmulatorError(f"{self.name}: {self.explain(error.value.decode())}")
                    if k == 0:
                        poisoned = memory.pure_outputs()
                    results.append((order, memory.snapshot()))
                memory.compare(results, memory.written())
                memory.write_back()
            finally:
                memory.release()

    def explain(self, message):
        """The C side's 'argument 1' and 'shared array 0' with their names."""
        message = re.sub(r"argument (\d+)",
                         lambda m: f"argument {m.group(1)} ({self.declarations[int(m.group(1))]})",
                         message)
        return re.sub(r"shared array (\d+)",
                      lambda m: f"shared array {self.module.shared_names[int(m.group(1))]}",
                      message)


def _dims(kernel, grid, block):
    """grid and block as CUDA allows them, each as three unsigned ints."""
    shaped = []
    for what, size, limits in (("grid", grid, MAX_GRID), ("block", block, MAX_BLOCK)):
        size = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
        if not 1 <= len(size) <= 3 or not all(isinstance(s, (int, np.integer)) and s >= 1 for s in size):
            raise EmulatorError(f"{kernel}: grid and block sizes must be 1 to 3 positive ints, "
                                f"got {what} {size}")
        size = tuple(int(s) for s in size) + (1,) * (3 - len(size))
        if any(s > limit for s, limit in zip(size, limits)) or (
                what == "block" and math.prod(size) > MAX_BLOCK[0]):
            raise EmulatorError(f"{kernel}: a {what} of {size} is more than CUDA allows (blocks "
                                f"of at most 1024 threads, x and y up to 1024, z up to 64; "
                                f"grids up to {MAX_GRID})")
        shaped.append((ctypes.c_uint * 3)(*size))
    return shaped


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


def guarded_mapping(data_bytes, guard_bytes):
    """Address space for guard + data + guard bytes: the guards inaccessible, so a stray read or
    write is a SIGSEGV rather than a plausible number, and the data readable and writable. Costs
    memory only where written. The base address, or None when the system refuses."""
    size = guard_bytes + data_bytes + guard_bytes
    base = _libc.mmap(None, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    if base is None or base == ctypes.c_void_p(-1).value:
        return None
    if data_bytes and _libc.mprotect(base + guard_bytes, data_bytes, PROT_READ | PROT_WRITE):
        _libc.munmap(base, size)
        return None
    return base


def unmap(base, size):
    _libc.munmap(base, size)


class _Placed:
    """One array's copy in its own mapping, between GUARD bytes of inaccessible pages."""

    def __init__(self, kernel, index, ctype, array, note):
        self.index, self.ctype, self.array, self.notes = index, ctype, array, {note}
        self.nbytes = array.nbytes
        self.data_bytes = -(-self.nbytes // PAGE) * PAGE
        self.size = GUARD + self.data_bytes + GUARD
        base = guarded_mapping(self.data_bytes, GUARD)
        if base is None:
            raise EmulatorError(f"{kernel}: could not map {self.size} bytes for argument {index}")
        self.base = base
        self.lo = base + GUARD + self.data_bytes - self.nbytes   # ends against the guard
        self.bytes = (np.ctypeslib.as_array((ctypes.c_ubyte * self.nbytes).from_address(self.lo))
                      if self.nbytes else np.zeros(0, np.uint8))
        # The caller's array itself (C-contiguous, checked): nothing writes it before
        # write_back, which comes after the last run.
        self.pristine = array.reshape(-1).view(np.uint8)
        self.bytes[:] = self.pristine
        self.poison = POISON[array.dtype.kind]

    @property
    def const(self):
        return self.ctype.startswith("const")

    def release(self):
        self.bytes = None
        unmap(self.base, self.size)


class _Arrays:
    """The launch's arrays, placed against guard pages; restored (and poisoned) before each
    run, compared after, and copied back into the caller's arrays at the end."""

    def __init__(self, function):
        self.function = function
        self.kernel = function.name
        self.entries = []

    def add(self, index, ctype, array):
        base = ctype.replace("const ", "").rstrip("*")
        if not isinstance(array, np.ndarray):
            raise EmulatorError(f"{self.kernel}: argument {index} ({ctype}) must be a NumPy "
                                f"array, got {type(array).__name__}")
        if array.dtype != np.dtype(C_TYPES[base]) or not array.flags.c_contiguous:
            raise EmulatorError(f"{self.kernel}: argument {index} ({ctype}) must be a "
                                f"C-contiguous {np.dtype(C_TYPES[base])} array, got "
                                f"{array.dtype} with strides {array.strides}")
        note = self.function.notes[index]
        start = array.__array_interface__["data"][0]
        for entry in self.entries:   # the same array passed twice shares one copy
            other = entry.array
            other_start = other.__array_interface__["data"][0]
            if (other_start, other.nbytes) == (start, array.nbytes):
                if not ctype.startswith("const"):
                    entry.ctype = ctype
                entry.notes.add(note)
                return entry.lo
            if array.nbytes and other.nbytes and np.shares_memory(array, other):
                raise EmulatorError(f"{self.kernel}: arguments {entry.index} and {index} overlap "
                                    f"without being the same array")
        self.entries.append(_Placed(self.kernel, index, ctype, array, note))
        return self.entries[-1].lo

    def register(self):
        """Tell the library where the arrays are; const ones become read-only pages."""
        n = len(self.entries)
        u64 = ctypes.c_uint64 * max(n, 1)
        for e in self.entries:
            if e.const and e.data_bytes:
                _libc.mprotect(e.base + GUARD, e.data_bytes, PROT_READ)
        flags = [(1 if e.const else 0) | (2 if "out" in e.notes else 0) for e in self.entries]
        failed = self.function.module.library.minran_set_arrays(
            n, u64(*[e.base for e in self.entries]), u64(*[e.base + e.size for e in self.entries]),
            u64(*[e.lo for e in self.entries]), u64(*[e.lo + e.nbytes for e in self.entries]),
            (ctypes.c_uint * max(n, 1))(*[e.array.itemsize for e in self.entries]),
            (ctypes.c_int * max(n, 1))(*[e.index for e in self.entries]),
            (ctypes.c_int * max(n, 1))(*flags))
        if failed:
            raise EmulatorError(f"{self.kernel}: out of memory for the race check's records")

    def declared_outputs(self):
        return {i for i, e in enumerate(self.entries) if "out" in e.notes}

    def pure_outputs(self):
        """After the first run: the arrays to poison from now on (see the module docstring):
        those it wrote without reading any element first, and those marked /* out */."""
        library = self.function.module.library
        return {i for i, e in enumerate(self.entries)
                if not e.const and "in-out" not in e.notes
                and ("out" in e.notes or library.minran_array_use(i) == 2)}

    def restore(self, poisoned):
        for i, e in enumerate(self.entries):
            if not e.const:
                if i in poisoned:
                    e.bytes.fill(e.poison)
                else:
                    e.bytes[:] = e.pristine

    def snapshot(self):
        """What the run left in each array it may write (const ones: None, never compared)."""
        return [None if e.const else e.bytes.copy() for e in self.entries]

    def written(self):
        """Per array and element of the last run: 0 never written, 1 written, 2 by an atomic."""
        masks = []
        for i, e in enumerate(self.entries):
            if e.const:
                masks.append(None)
                continue
            mask = np.zeros(e.array.size, np.uint8)
            if e.array.size:
                self.function.module.library.minran_written(i, mask.ctypes.data)
            masks.append(mask)
        return masks

    def compare(self, results, written):
        first_order, first = results[0]
        for order, result in results[1:]:
            for entry, mask, a, b in zip(self.entries, written, first, result):
                if entry.const or not entry.nbytes:
                    continue
                n = entry.array.size
                differs = (a.reshape(n, -1) != b.reshape(n, -1)).any(axis=1) & (mask > 0)
                if differs.any():
                    k = int(np.flatnonzero(differs)[0])
                    x, y = a.view(entry.array.dtype), b.view(entry.array.dtype)
                    why = ("it was updated with atomics, and what atomics leave (a float sum's "
                           "rounding, the winner of a compare-and-swap) depends on the order "
                           "they run in, on a GPU too" if mask[k] == 2 else
                           "a race the checks did not see, or a value read from an output "
                           "before it was written")
                    raise EmulatorError(
                        f"{self.kernel}: the result depends on the order the threads run in: "
                        f"argument {entry.index} ({self.function.declarations[entry.index]}) "
                        f"element {k} is {x[k]!r} with threads in {first_order} order and "
                        f"{y[k]!r} in {order} order ({why})")

    def write_back(self):
        for e in self.entries:
            if not e.const:
                e.array.reshape(-1).view(np.uint8)[:] = e.bytes

    def release(self):
        self.function.module.library.minran_set_arrays(0, None, None, None, None, None, None, None)
        for e in self.entries:
            e.release()
        self.entries = []
