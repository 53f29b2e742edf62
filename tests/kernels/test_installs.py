"""What an install needs for the GPU path, checked where a CPU can see it: the extras agree
on one NVRTC, a CuPy that cannot compile is caught before training, and
`python -m minran.cuda` says what it found."""
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from minran import backend
from minran.cuda import kernels, nvrtc, standin

ROOT = pathlib.Path(__file__).resolve().parents[2]


def extras():
    """{extra: [requirement, ...]} from pyproject.toml (read without a TOML library: the
    project supports Pythons older than tomllib)."""
    text = (ROOT / "pyproject.toml").read_text()
    block = text.split("[project.optional-dependencies]")[1].split("\n[")[0]
    return {name: re.findall(r'"([^"]+)"', body)
            for name, body in re.findall(r"^(\w+) = \[(.*)\]\s*$", block, re.M)}


def test_the_gpu_extra_brings_nvrtc_and_headers_of_the_test_extras_cuda():
    """CuPy 14 needs NVRTC and the CUDA headers, which only its [ctk] extra brings; and CuPy
    finds CUDA 13 wheels before CUDA 12 ones, so a cupy-cuda12x beside the test extra's NVRTC
    13 would load NVRTC 13: the two extras must name the same CUDA major."""
    found = extras()
    cupy = [r for r in found["gpu"] if r.startswith("cupy-cuda")]
    assert len(cupy) == 1 and cupy[0].endswith("[ctk]"), found["gpu"]
    cupy_major = re.match(r"cupy-cuda(\d+)x", cupy[0]).group(1)
    nvrtc_pin = [r for r in found["test"] if r.startswith("nvidia-cuda-nvrtc")]
    assert len(nvrtc_pin) == 1, found["test"]
    # the CUDA 13 wheel is plain nvidia-cuda-nvrtc; earlier majors are ...-nvrtc-cu12 etc.
    assert nvrtc_pin[0].split(">")[0] == "nvidia-cuda-nvrtc"
    assert re.search(rf">={cupy_major}\.\d+,<{int(cupy_major) + 1}\b", nvrtc_pin[0]), nvrtc_pin


@pytest.mark.compiled
def test_the_compile_check_uses_nvrtc_of_the_gpu_extras_cuda():
    cupy_major = re.match(r"cupy-cuda(\d+)x", extras()["gpu"][0]).group(1)
    assert nvrtc.version()[0] == int(cupy_major), nvrtc.find_library()


def test_a_cupy_that_cannot_compile_is_one_line_before_training(monkeypatch):
    class Broken(standin.RawModule):
        def get_function(self, expression):
            raise RuntimeError("nvrtc: error: failed to open cuda_runtime.h\nmore lines")
    with standin.device():
        assert kernels.compile_problem() is None
    with standin.device():
        monkeypatch.setattr(backend.cupy, "RawModule", Broken)
        problem = kernels.compile_problem()
    assert problem.startswith("CuPy cannot compile minran's CUDA kernels (RuntimeError: "
                              "nvrtc: error: failed to open cuda_runtime.h);")
    assert "pip install -e '.[gpu]'" in problem and "\n" not in problem


def test_the_listing_says_whether_cupy_and_a_gpu_were_found():
    from minran.cuda.__main__ import gpu_lines
    with standin.device():
        lines = gpu_lines()
    assert lines[0] == "CuPy: stand-in"
    assert lines[1].startswith("GPU: minran stand-in GPU (compute capability 9.0); CUDA runtime 13.0")
    assert lines[2] == "kernels on the GPU: compile and load"
    done = subprocess.run([sys.executable, "-c", "from minran.cuda.__main__ import gpu_lines; "
                           "print('\\n'.join(gpu_lines()))"], capture_output=True, text=True,
                          timeout=120)
    if backend.cupy is None:
        assert done.stdout.splitlines()[0].startswith("CuPy: CuPy is not installed")
        assert done.stdout.splitlines()[1] == "GPU: none (the GPU path needs CuPy)"
    else:
        assert done.stdout.startswith("CuPy: ")


def test_a_kernel_launch_costs_no_regex_and_no_new_kernel_object():
    """The launch plan is made once per kernel, dtype and array type, and the compiled
    function looked up once (CuPy's get_function builds a new object on every call)."""
    with standin.device():
        from minran.functional import activation
        x = backend.cupy.asarray(np.ones(10, np.float32))
        calls = []
        real = standin.RawModule.get_function

        def counting(self, expression):
            calls.append(expression)
            return real(self, expression)
        standin.RawModule.get_function = counting
        try:
            for _ in range(5):
                activation.relu(__import__("minran").Tensor(x))
        finally:
            standin.RawModule.get_function = real
        assert calls == ["relu_forward<float>"]
        binder = activation.CUDA._binders[("relu_forward", np.dtype(np.float32), type(x))]
        assert "if type(a0) is not T" in binder.fast_source


def test_the_launchers_number_cache_keeps_what_it_was_given():
    """Numbers are converted to their parameter's width once and then looked up; the lookup
    must not turn -0.0 into 0.0 (one dict key), a float into an int parameter, or a bool
    into a number."""
    from minran.cuda.kernels import Param, _Binder
    source = kernels.Source(ROOT / "minran" / "functional" / "activation.py")
    params = [Param("T*", "x"), Param("T", "scale"), Param("int", "n")]
    with standin.device():
        x = backend.cupy.empty(3, np.float32)
        binder = _Binder(source, "k", params, "float", type(x))
        assert binder.bind((x, 0.0, 3))[1] == 0.0
        got = binder.bind((x, -0.0, 3))[1]
        assert got == 0 and np.signbit(got)
        assert type(binder.bind((x, 2, 3))[1]) is np.float32
        with pytest.raises(kernels.KernelError, match="must be an integer"):
            binder.bind((x, 1.5, 3.0))
        with pytest.raises(kernels.KernelError, match="must be a number, got bool"):
            binder.bind((x, 1.5, True))
        with pytest.raises(kernels.KernelError, match="does not fit in int"):
            binder.bind((x, 1.5, 2 ** 40))


def test_train_cifar_stops_in_one_line_when_cupy_cannot_compile(monkeypatch, capsys, tmp_path):
    """--device gpu with a CuPy that finds a GPU but cannot compile: one line before any
    data is read or any folder made, not a traceback at the first op."""
    import train_cifar

    class Broken(standin.RawModule):
        def get_function(self, expression):
            raise RuntimeError("nvrtc: error: failed to open cuda_fp16.h")
    with standin.device():
        monkeypatch.setattr(backend.cupy, "RawModule", Broken)
        with pytest.raises(SystemExit) as stop:
            train_cifar.main(["--device", "gpu", "--out", str(tmp_path / "run"),
                              "--data-dir", str(tmp_path / "nowhere")])
    message = str(stop.value.code)
    assert message.startswith("error: --device gpu, but CuPy cannot compile minran's CUDA "
                              "kernels (RuntimeError: nvrtc: error: failed to open "
                              "cuda_fp16.h);")
    assert "\n" not in message and not (tmp_path / "run").exists()


def test_the_fast_binder_refuses_device_arrays_of_another_dtype_or_layout():
    """On device arrays the launcher checks each array in one line of its written-out binder:
    the dtype its parameter needs, and C-contiguity (a kernel indexes flat memory; a strided
    view would be read as if it were packed). Neither may pass because the first array fit."""
    from minran.functional import activation
    with standin.device():
        xp = backend.cupy
        x = xp.zeros(8, np.float32)
        activation.CUDA.launch("relu_forward", x, xp.empty(8, np.float32), 8, threads=8)
        with pytest.raises(kernels.KernelError, match=r"argument 1 \(float\* y\) must have dtype "
                                                      r"float32, got float64"):
            activation.CUDA.launch("relu_forward", x, xp.empty(8, np.float64), 8, threads=8)
        with pytest.raises(kernels.KernelError, match=r"argument 0 \(const float\* x\) must be "
                                                      r"C-contiguous"):
            activation.CUDA.launch("relu_forward", xp.zeros(16, np.float32)[::2],
                                   xp.empty(8, np.float32), 8, threads=8)
