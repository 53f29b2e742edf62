"""Loading and launching minran's CUDA kernels: one .cu twin beside each op's .py file.

An op file with kernels (functional/pooling.py) makes `CUDA = kernels.Source(__file__)`,
which reads functional/pooling.cu, and launches with

    CUDA.launch("max_pool2d_forward", x, out, argmax, N, C, H, W, ..., threads=out.size)

`threads` is how many threads to start (one per output element, say); they come in blocks
of BLOCK threads, so the grid is ceil(threads / BLOCK) blocks. Kernels that give a whole
block to one channel or one feature map pass `blocks=` instead. Every kernel is a C++
template over its element type T, instantiated for float and double; the launch picks the
instantiation from its arrays' dtype and compiles each .cu once per process (CuPy also keeps
the compiled code on disk).

Where the kernels run:
  - CuPy arrays: on the GPU, through cupy.RawModule, which compiles with NVRTC;
  - NumPy arrays, inside `use("emulate")`: on the CPU, through the emulator (emulator.py),
    which compiles the same .cu source with the system C++ compiler.
`use("off")` turns the kernels off, so every op runs its plain array code (NumPy, or CuPy's
own functions on the GPU) and each kernel can be compared with and timed against it.

Every argument must have exactly the C type its parameter declares: arrays of the right
dtype, C-contiguous; numbers converted here to the parameter's width. (CuPy itself would
send a Python int as 8 bytes to a 4-byte `int` parameter and the kernel would read garbage.)
"""
import contextlib
import importlib
import os
import pathlib
import re
import weakref
from dataclasses import dataclass

import numpy as np

from .. import backend

BLOCK = 256   # threads per block for every launch; the kernels see it as MINRAN_BLOCK
MAX_BLOCKS = 2**31 - 1   # CUDA's grid: at most this many blocks along x
_BLOCK_SHAPE = (BLOCK,)
MODES = ("auto", "off", "emulate")
# The element types each kernel is instantiated for, and the C types a parameter may have.
INSTANTIATIONS = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}
C_TYPES = {"float": np.float32, "double": np.float64, "int": np.int32, "long long": np.int64,
           "unsigned int": np.uint32}
_FLOATS = (np.float32, np.float64)

_mode = os.environ.get("MINRAN_KERNELS", "auto")
if _mode not in MODES:
    raise ValueError(f"MINRAN_KERNELS={_mode!r}: use one of {', '.join(MODES)} (auto: kernels on "
                     f"the GPU; off: the plain CuPy/NumPy code; emulate: also on the CPU)")


class KernelError(RuntimeError):
    """A kernel could not be compiled, launched, or was called with the wrong arguments."""


# ---- the switch ---------------------------------------------------------------------------
def mode():
    return _mode


@contextlib.contextmanager
def use(new_mode):
    """'auto': kernels on the GPU, NumPy on the CPU (the default); 'off': no kernels anywhere;
    'emulate': kernels on the GPU, and on NumPy arrays through the CPU emulator."""
    global _mode
    if new_mode not in MODES:
        raise ValueError(f"kernels.use: mode must be one of {MODES}, got {new_mode!r}")
    previous, _mode = _mode, new_mode
    try:
        yield
    finally:
        _mode = previous


def active(array):
    """Should an op run its CUDA twin on this array?"""
    if _mode == "off":
        return False
    if backend.device_of(array) == "gpu":
        return True
    return _mode == "emulate" and isinstance(array, np.ndarray)


def contiguous(array):
    """Kernels index arrays as flat C-ordered memory: copy only what is not already so."""
    return backend.array_module(array).ascontiguousarray(array)


# ---- reading a .cu file -------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    ctype: str   # as written, with the template parameter: 'const T*', 'int', 'T'
    name: str

    def resolved(self, element):
        """The C type once T is `element` ('float' or 'double')."""
        return re.sub(r"\bT\b", element, self.ctype)

    @property
    def pointer(self):
        return self.ctype.endswith("*")


_KERNEL = re.compile(r"(template\s*<\s*typename\s+T\s*>\s*)?__global__\s+void\s+(\w+)\s*\(([^)]*)\)")


def parse(source, path="<source>"):
    """{kernel name: [Param, ...]} for every __global__ function, in source order."""
    source = re.sub(r"//[^\n]*|/\*.*?\*/", "", source, flags=re.S)
    kernels = {}
    for template, name, params in _KERNEL.findall(source):
        if not template:
            raise KernelError(f"{path}: kernel {name} must be a template over its element type "
                              f"(template <typename T> __global__ void {name}(...))")
        parsed = []
        for text in params.split(","):
            words = text.replace("__restrict__", "").replace("*", " * ").split()
            ctype = " ".join(words[:-1]).replace(" *", "*")
            parsed.append(Param(ctype, words[-1]))
            if parsed[-1].resolved("float").replace("const ", "").rstrip("*") not in C_TYPES:
                raise KernelError(f"{path}: kernel {name} parameter {text.strip()!r} has a type "
                                  f"the launcher cannot pass; use T, int, long long, "
                                  f"unsigned int or pointers to them")
        kernels[name] = parsed
    return kernels


def compile_options(include_dir):
    """What both compilers get: the language, the block size, and the .cu folder for includes."""
    return ("-std=c++17", f"-DMINRAN_BLOCK={BLOCK}", f"-I{include_dir}")


# An #include "..." line, a comment after it allowed: one pattern for the cache keys and
# the inlining, so that no header is found by one and missed by the other.
_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"([^"]+)"[ \t]*(?://.*)?$', re.M)


def included_files(path):
    """The .cu file and every header it includes with "..." (for cache keys)."""
    path = pathlib.Path(path)
    found, todo = [], [path]
    while todo:
        file = todo.pop()
        if file in found:
            continue
        found.append(file)
        for name in _INCLUDE.findall(file.read_text()):
            todo.append(file.parent / name)
    return found


def inlined_source(path, _seen=None):
    """The text of a .cu file with every header it includes with "..." written into it, once
    each (#pragma once), with #line markers so compile errors still name the right file.

    This is the text CuPy compiles. CuPy caches compiled kernels on disk under a key made
    of the source text and the options, so a header that stayed an #include would not be
    part of the key: after an edit of common.cuh, CuPy would keep serving the kernels built
    from the old one. Inlined, any change to any header changes the key.
    """
    path = pathlib.Path(path)
    seen = set() if _seen is None else _seen
    seen.add(path.resolve())
    lines = []

    def include(match):
        header = (path.parent / match.group(1)).resolve()
        if header in seen:
            return f"// {match.group(1)}: already included"
        text = inlined_source(header, seen).replace("#pragma once", "// (#pragma once)")
        return f'#line 1 "{header.name}"\n{text}\n'
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if _INCLUDE.match(line):
            lines.append(_INCLUDE.sub(include, line))
            lines.append(f'#line {number + 1} "{path.name}"')
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


def compile_problem():
    """None when CuPy compiles and loads minran's kernels on this GPU; else one line saying
    what went wrong, so that `--device gpu` stops at once instead of failing at the first op.
    (CuPy needs NVRTC and the CUDA headers: the gpu extra's cupy-cuda13x[ctk] brings both.)"""
    source = all_sources()[0]
    try:
        source.module("gpu").get_function(source.name_expressions()[0])
    except Exception as error:   # CuPy's CompileException, a missing NVRTC or header, ...
        first = (str(error).strip().splitlines() or [""])[0][:200]
        return (f"CuPy cannot compile minran's CUDA kernels ({type(error).__name__}: {first}); "
                f"install CuPy with its CUDA toolkit wheels (pip install -e '.[gpu]' brings "
                f"cupy-cuda13x[ctk]) or point CUDA_PATH at a CUDA toolkit")
    return None


def all_sources():
    """The CUDA twin of every op file in minran, as the op modules hold them."""
    package = pathlib.Path(__file__).resolve().parents[1]
    sources = []
    for path in sorted(package.rglob("*.cu")):
        module = ".".join(("minran",) + path.relative_to(package).with_suffix("").parts)
        sources.append(importlib.import_module(module).CUDA)
    return sources


# ---- one .cu twin -------------------------------------------------------------------------
class Source:
    """The CUDA twin of one op file: its kernels, compiled on first use per device."""

    def __init__(self, op_file):
        self.path = pathlib.Path(op_file).with_suffix(".cu")
        self.kernels = parse(self.path.read_text(), self.path)
        self._modules = {}   # 'emulator' -> its module
        self._gpu_modules = weakref.WeakKeyDictionary()   # CuPy (or its stand-in) -> module
        self._binders = {}   # (name, dtype, array type) -> _Binder
        # Per kernel, the position of its first array: its dtype and type pick the binder.
        self._first_array = {name: next((i for i, p in enumerate(params) if p.pointer), 0)
                             for name, params in self.kernels.items()}

    def __repr__(self):
        return f"Source({self.path.name}: {', '.join(self.kernels)})"

    def name_expressions(self):
        """Every instantiation, as NVRTC and CuPy name them: 'im2col<float>', ..."""
        return [f"{name}<{element}>" for name in self.kernels
                for element in INSTANTIATIONS.values()]

    def code(self):
        """The text the GPU compiles: the .cu file with its headers written in."""
        return inlined_source(self.path)

    def module(self, device):
        """The compiled module for 'gpu' (cupy.RawModule) or 'emulator' (emulator.Module).

        The GPU module is kept per CuPy module object, so a stand-in for CuPy (standin.py)
        and the real one never share compiled kernels."""
        if device == "gpu":
            module = self._gpu_modules.get(backend.cupy)
            if module is None:
                module = self._gpu_modules[backend.cupy] = backend.cupy.RawModule(
                    code=self.code(), options=compile_options(self.path.parent),
                    name_expressions=self.name_expressions())
            return module
        if device not in self._modules:
            from . import emulator
            self._modules[device] = emulator.Module(self.path, compile_options(self.path.parent),
                                                    self.name_expressions())
        return self._modules[device]

    def launch(self, name, *args, threads=None, blocks=None):
        """Start `threads` threads (or `blocks` blocks) of kernel `name` on `args`."""
        if (threads is None) == (blocks is None):
            raise KernelError(f"{name}: give threads= or blocks=, not both or neither")
        try:
            first = args[self._first_array[name]]
            binder = self._binders[(name, first.dtype, type(first))]
        except (KeyError, IndexError, AttributeError):
            binder = self._new_binder(name, args)
        values = binder.bind(args)
        if blocks is None:
            blocks = -(-threads // BLOCK)
        if blocks > MAX_BLOCKS:
            raise KernelError(f"{name}: {blocks:,} blocks of {BLOCK} threads, more than the "
                              f"{MAX_BLOCKS:,} a CUDA grid holds; split the work into launches")
        if blocks == 0:
            return   # nothing to do (an empty batch): CUDA rejects an empty grid
        binder.function()((int(blocks),), _BLOCK_SHAPE, values)

    def _new_binder(self, name, args):
        """The launch plan of `name` for these arguments' element type and array type; made
        once, then looked up (a launch must cost little Python: docs/KERNELS.md)."""
        if name not in self.kernels:
            raise KernelError(f"{self.path.name} has no kernel {name!r}; it has "
                              f"{', '.join(self.kernels)}")
        params = self.kernels[name]
        if len(args) != len(params):
            raise KernelError(f"{name}: takes {len(params)} arguments "
                              f"({', '.join(p.name for p in params)}), got {len(args)}")
        first = args[self._first_array[name]]
        element = _element_type(name, params, args)
        binder = _Binder(self, name, params, element, type(first))
        if binder.fast:
            self._binders[(name, getattr(first, "dtype", None), type(first))] = binder
        return binder


class _Binder:
    """How to check and convert each argument of one kernel instantiation.

    `bind` is the launcher's hot path: for device arrays it checks type, dtype and layout
    and converts each number to its parameter's exact width, in one loop over precomputed
    specs. Anything unexpected goes to `_argument`, which says exactly what is wrong.
    NumPy arrays (the emulator) always take the full checks, writability included.
    """

    def __init__(self, source, name, params, element, array_type):
        self.source, self.name, self.params, self.element = source, name, params, element
        self.expression = f"{name}<{element}>"
        self.device = "cpu" if array_type is np.ndarray else "gpu"
        self.array_type = array_type
        self.fast = array_type is not np.ndarray
        specs = []   # (0, dtype) for an array, (1, type) for an int, (2, type) for a float
        for param in params:
            ctype = param.resolved(element)
            if param.pointer:
                specs.append((0, np.dtype(C_TYPES[ctype.replace("const ", "").rstrip("*")])))
            else:
                specs.append((2 if C_TYPES[ctype] in _FLOATS else 1, C_TYPES[ctype]))
        self.specs = specs
        self._function = self._cupy = None
        self._fast = self._compile_fast() if self.fast else None

    def bind(self, args):
        """The arguments as the kernel takes them: the fast check when it passes, else the
        full one (which explains what is wrong, or accepts what the fast one does not know,
        such as a NumPy scalar of the right width)."""
        if self.fast:
            try:
                values = self._fast(*args)
            except (OverflowError, TypeError):   # a number too large; a wrong count
                values = None
            if values is not None:
                return values
        return self._slow(args)

    @property
    def fast_source(self):
        """The fast check, written out for this kernel's parameters: one line per argument,
        no loop (a launch must cost at most a few microseconds of Python). A number is
        converted to its parameter's width once (NumPy makes a scalar in about 0.2 us) and
        then found in a small cache: a network passes the same sizes step after step."""
        names = [f"a{i}" for i in range(len(self.specs))]
        lines, values = [f"def bind({', '.join(names)}):"], []
        for i, (code, kind) in enumerate(self.specs):
            a = names[i]
            if code == 0:
                lines.append(f"    if type({a}) is not T or {a}.dtype is not k{i} "
                             f"or not {a}.flags.c_contiguous:\n        return None")
                values.append(a)
                continue
            allowed = f"type({a}) is not int" + (f" and type({a}) is not float" if code == 2
                                                 else "")
            lines += [f"    if {allowed}:\n        return None",
                      f"    v{i} = c{i}.get({a})",
                      f"    if v{i} is None:\n        v{i} = convert(c{i}, k{i}, {a})"]
            values.append(f"v{i}")
        lines.append(f"    return ({', '.join(values)},)")
        return "\n".join(lines)

    def _compile_fast(self):
        scope = {"T": self.array_type, "convert": _convert}
        for i, (code, kind) in enumerate(self.specs):
            scope[f"k{i}"] = kind
            if code:
                scope[f"c{i}"] = {}
        exec(self.fast_source, scope)
        return scope["bind"]

    def _slow(self, args):
        if len(args) != len(self.params):
            raise KernelError(f"{self.name}: takes {len(self.params)} arguments "
                              f"({', '.join(p.name for p in self.params)}), got {len(args)}")
        return tuple(_argument(self.expression, i, p, a, self.element, self.device)
                     for i, (p, a) in enumerate(zip(self.params, args)))

    def function(self):
        """The compiled kernel, looked up once per module (CuPy's get_function builds a new
        kernel object on every call)."""
        if self.device != "gpu":
            if self._function is None:
                self._function = self.source.module("emulator").get_function(self.expression)
        elif self._cupy is not backend.cupy:   # first use, or another CuPy (the stand-in)
            self._function = self.source.module("gpu").get_function(self.expression)
            self._cupy = backend.cupy
        return self._function


def _convert(cache, kind, value):
    """kind(value) (OverflowError if it does not fit), remembered in `cache`. A zero of a
    float parameter is never remembered: 0.0 and -0.0 are one key to a dict, and the sign
    must reach the kernel as it was given."""
    converted = kind(value)
    if value == 0 and kind in _FLOATS:
        return converted
    if len(cache) > 4096:   # sizes that keep changing: start again rather than grow
        cache.clear()
    cache[value] = converted
    return converted


def _element_type(name, params, args):
    """T is the dtype of the arrays the kernel declares as T*; they must all agree."""
    dtypes = {np.dtype(a.dtype) for p, a in zip(params, args)
              if p.pointer and re.search(r"\bT\b", p.ctype) and hasattr(a, "dtype")}
    if len(dtypes) != 1 or next(iter(dtypes)) not in INSTANTIATIONS:
        raise KernelError(f"{name}: its T* arrays must all be float32 or all float64, got "
                          f"{sorted(map(str, dtypes))}; convert them at the op boundary")
    return INSTANTIATIONS[dtypes.pop()]


def _argument(kernel, index, param, value, element, device):
    """The value exactly as the parameter's C type needs it, or a KernelError saying why not."""
    ctype = param.resolved(element)
    where = f"{kernel}: argument {index} ({ctype} {param.name})"
    if param.pointer:
        base = ctype.replace("const ", "").rstrip("*")
        if not hasattr(value, "dtype") or not hasattr(value, "flags"):
            raise KernelError(f"{where} must be an array, got {type(value).__name__}")
        if backend.device_of(value) != device:
            raise KernelError(f"{where} is on {backend.device_of(value)} but the kernel's "
                              f"other arrays are on {device}")
        if value.dtype != C_TYPES[base]:
            raise KernelError(f"{where} must have dtype {np.dtype(C_TYPES[base])}, got "
                              f"{value.dtype}")
        if not value.flags.c_contiguous:
            raise KernelError(f"{where} must be C-contiguous, got strides {value.strides}; "
                              f"pass kernels.contiguous(array)")
        # (CuPy's flags have no `writeable`: device arrays are always writable.)
        if not ctype.startswith("const") and not getattr(value.flags, "writeable", True):
            raise KernelError(f"{where} is written by the kernel but the array is read-only")
        return value
    wanted = C_TYPES[ctype]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise KernelError(f"{where} must be a number, got {type(value).__name__}")
    if isinstance(value, np.number) and value.dtype != wanted:
        raise KernelError(f"{where} got a {value.dtype} scalar; pass a Python number or "
                          f"{np.dtype(wanted)}")
    if np.issubdtype(wanted, np.integer):
        if isinstance(value, (float, np.floating)):
            raise KernelError(f"{where} must be an integer, got {value!r}")
        info = np.iinfo(wanted)
        if not info.min <= int(value) <= info.max:
            raise KernelError(f"{where} = {int(value)} does not fit in {ctype}; the sizes are "
                              f"too large for this kernel")
    return wanted(value)
