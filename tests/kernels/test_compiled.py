"""Tier 2: every kernel instantiation compiles with NVRTC, the compiler CuPy uses at run
time, for sm_80 (A100) and sm_90 (H100), on a machine without a GPU."""
import re
import subprocess
import sys

import pytest

from minran.cuda import emulator, kernels, nvrtc


@pytest.mark.compiled
@pytest.mark.parametrize("arch", nvrtc.ARCHS)
@pytest.mark.parametrize("source", kernels.all_sources(), ids=lambda s: s.path.name)
def test_every_instantiation_compiles_cleanly(source, arch):
    """No warnings, every instantiation reported by ptxas, no register spills."""
    compiled, log = nvrtc.compile_kernels(source, arch)
    assert not re.search(r"warning", log, re.I), log
    assert [c.expression for c in compiled] == source.name_expressions()
    spilling = [c for c in compiled if c.spill_stores or c.spill_loads]
    assert not spilling, f"register spills on {arch}: {spilling}"
    assert all(0 < c.registers <= 64 for c in compiled), compiled


HOST_ONLY = {   # g++ accepts each of these; NVRTC does not, and CuPy would fail at run time
    "INFINITY": "y[0] = x[0] < T(-INFINITY) ? T(0) : x[0];",
    "std::max": "y[0] = std::max(x[0], T(0));",
}


@pytest.mark.compiled
@pytest.mark.emulated
@pytest.mark.parametrize("name", HOST_ONLY)
def test_nvrtc_rejects_host_only_names_that_the_emulator_accepts(tmp_path, name):
    path = tmp_path / "host_only.cu"
    header = "#include <algorithm>\n" if name.startswith("std") else ""
    path.write_text(header + "template <typename T>\n__global__ void k(const T* x, T* y) { "
                    + HOST_ONLY[name] + " }\n")
    emulator.build(path, kernels.compile_options(tmp_path), ["k<float>", "k<double>"])
    with pytest.raises(nvrtc.CompileError):
        nvrtc.compile_source(path.read_text(), path.name, tmp_path, ["k<float>"], "sm_90")


@pytest.mark.compiled
@pytest.mark.emulated
def test_the_listing_command_names_every_kernel_with_its_registers():
    done = subprocess.run([sys.executable, "-m", "minran.cuda"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if "<" in line and ".cu " in line]
    expected = [f"{s.path.name} {e}" for s in kernels.all_sources() for e in s.name_expressions()]
    assert [row.split()[0] + " " + row.split()[1] for row in rows] == expected
    for row in rows:   # sm_80 and sm_90 registers, spills and smem, then the emulator
        assert re.search(r"\s\d+\s+0/0\s+\d+\s+\d+\s+0/0\s+\d+\s+ok$", row), row
