"""Compiling every kernel instantiation with NVRTC, the compiler CuPy runs, without a GPU.

CuPy's own compile calls ask the device for its architecture, so on a machine without one
this module calls NVRTC directly (through ctypes, from the nvidia-cuda-nvrtc wheel or a CUDA
toolkit) with the options CuPy gives it: the kernels' options from kernels.py, then
`-ftz=true` and the architecture. NVRTC is stricter than a host compiler in ways that matter
here: host-only names such as INFINITY or std::max do not exist in it.

`--ptxas-options=-v` makes the assembler report registers, spills and shared memory per
kernel, which `python -m minran.cuda` prints for sm_80 (A100) and sm_90 (H100).
"""
import ctypes
import ctypes.util
import glob
import os
import re
import sys
from dataclasses import dataclass

from .kernels import KernelError, compile_options

ARCHS = ("sm_80", "sm_90")
# Where the wheels put the library: CUDA 13 (nvidia-cuda-nvrtc) and CUDA 12 (...-cu12).
_WHEEL_PATHS = ("nvidia/cu13/lib/libnvrtc.so.*", "nvidia/cuda_nvrtc/lib/libnvrtc.so.*",
                "nvidia/cu12/lib/libnvrtc.so.*")


class CompileError(KernelError):
    pass


@dataclass
class Compiled:
    """What ptxas reported for one instantiation on one architecture."""
    expression: str
    arch: str
    registers: int
    spill_stores: int
    spill_loads: int
    shared_bytes: int
    stack_bytes: int


def find_library():
    """The path of libnvrtc: $MINRAN_NVRTC, a pip wheel, or a CUDA toolkit; else None."""
    if os.environ.get("MINRAN_NVRTC"):
        return os.environ["MINRAN_NVRTC"]
    for root in sys.path:
        for pattern in _WHEEL_PATHS:
            found = sorted(p for p in glob.glob(os.path.join(root, pattern))
                           if "builtins" not in p and "alt" not in p)
            if found:
                return found[-1]
    for candidate in (ctypes.util.find_library("nvrtc"),
                      *sorted(glob.glob("/usr/local/cuda/lib64/libnvrtc.so*"))):
        if candidate:
            return candidate
    return None


def unavailable_reason():
    if find_library() is None:
        return ("NVRTC not found: pip install nvidia-cuda-nvrtc (it comes with the test extra, "
                "pip install -e '.[test]'), or set MINRAN_NVRTC to libnvrtc.so")
    return None


_library = None


def _nvrtc():
    global _library
    if _library is None:
        path = find_library()
        if path is None:
            raise CompileError(unavailable_reason())
        _library = ctypes.CDLL(path)
    return _library


def supported_archs():
    """The GPU architectures this NVRTC compiles for, as 'sm_NN' names."""
    lib, count = _nvrtc(), ctypes.c_int()
    _check(lib.nvrtcGetNumSupportedArchs(ctypes.byref(count)), "nvrtcGetNumSupportedArchs")
    archs = (ctypes.c_int * count.value)()
    _check(lib.nvrtcGetSupportedArchs(archs), "nvrtcGetSupportedArchs")
    return [f"sm_{a}" for a in archs]


def version():
    major, minor = ctypes.c_int(), ctypes.c_int()
    _nvrtc().nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


def _check(code, what, log=""):
    if code:
        lib = _nvrtc()
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        raise CompileError(f"{what}: {lib.nvrtcGetErrorString(code).decode()}\n{log}")


def compile_source(source, name, include_dir, name_expressions, arch):
    """Compile one .cu text for `arch`; returns ([Compiled per expression], the log)."""
    lib = _nvrtc()
    program = ctypes.c_void_p()
    _check(lib.nvrtcCreateProgram(ctypes.byref(program), source.encode(), name.encode(), 0,
                                  None, None), f"{name}: nvrtcCreateProgram")
    try:
        for expression in name_expressions:
            _check(lib.nvrtcAddNameExpression(program, expression.encode()),
                   f"{name}: {expression}")
        options = [*compile_options(include_dir), "-ftz=true", f"--gpu-architecture={arch}",
                   "--ptxas-options=-v"]
        encoded = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
        code = lib.nvrtcCompileProgram(program, len(options), encoded)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        buffer = ctypes.create_string_buffer(size.value + 1)
        lib.nvrtcGetProgramLog(program, buffer)
        log = buffer.value.decode(errors="replace")
        _check(code, f"{name} does not compile with NVRTC for {arch} "
                     f"(options {' '.join(options)})", log)
        lowered = {}
        for expression in name_expressions:
            result = ctypes.c_char_p()
            _check(lib.nvrtcGetLoweredName(program, expression.encode(), ctypes.byref(result)),
                   f"{name}: lowered name of {expression}")
            lowered[result.value.decode()] = expression
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(program))
    return _resources(log, lowered, arch), log


def _resources(log, lowered, arch):
    """Read ptxas's -v report: one 'Compiling entry function' paragraph per kernel."""
    results = []
    for block in re.split(r"(?=ptxas info\s+: Compiling entry function)", log):
        entry = re.search(r"Compiling entry function '(\w+)'", block)
        if not entry or entry.group(1) not in lowered:
            continue

        def number(pattern):
            found = re.search(pattern, block)
            return int(found.group(1)) if found else 0
        results.append(Compiled(lowered[entry.group(1)], arch,
                                number(r"Used (\d+) registers"),
                                number(r"(\d+) bytes spill stores"),
                                number(r"(\d+) bytes spill loads"),
                                number(r"(\d+) bytes smem"),
                                number(r"(\d+) bytes stack frame")))
    missing = set(lowered.values()) - {r.expression for r in results}
    if missing:
        raise CompileError(f"ptxas reported nothing for {sorted(missing)}:\n{log}")
    return sorted(results, key=lambda r: list(lowered.values()).index(r.expression))


def compile_kernels(source, arch):
    """Every instantiation of a kernels.Source for `arch`: ([Compiled], log). The text is
    the one CuPy is given (its headers written in: kernels.inlined_source)."""
    return compile_source(source.code(), source.path.name, source.path.parent,
                          source.name_expressions(), arch)
