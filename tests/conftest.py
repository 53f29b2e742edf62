import os
import pathlib

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from minran import backend
from minran.cuda import emulator, nvrtc

# Fast by default (CI runs on 2 cores); MINRAN_HYPOTHESIS=thorough draws many more cases.
settings.register_profile("fast", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("MINRAN_HYPOTHESIS", "fast"))

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def two_blas_threads():
    """NumPy's OpenBLAS on 2 threads for the test (so a change to 1 shows), put back after."""
    if not backend.blas_libraries():
        pytest.skip("NumPy's BLAS here is not an OpenBLAS that minran can find")
    previous = backend.set_blas_threads(2)
    if backend.blas_threads() != 2:
        backend.set_blas_threads(previous)
        pytest.skip("this OpenBLAS cannot run 2 threads here")
    yield
    backend.set_blas_threads(previous)


# ---- the CUDA kernels' test tiers ------------------------------------------------------------
# emulated: each kernel's own .cu source on the CPU (minran/cuda/emulator.py); needs g++.
# compiled: every instantiation compiled by NVRTC for sm_80 and sm_90; needs nvidia-cuda-nvrtc.
# gpu:      the same test functions on a CUDA device through CuPy; needs a GPU.
# A tier that cannot run here is skipped with a one-line reason, except where
# MINRAN_REQUIRE_KERNEL_TIERS=1 (CI sets it): then a missing compiler or wheel fails the run,
# so a green CI always means the two CPU tiers ran.
REQUIRED = os.environ.get("MINRAN_REQUIRE_KERNEL_TIERS") == "1"
# On a GPU machine (benchmarks/gpu_check.sh), MINRAN_REQUIRE_GPU=1 makes a gpu-tier test that
# cannot run fail instead of skip: a check that skipped everything must not read as passed.
GPU_REQUIRED = os.environ.get("MINRAN_REQUIRE_GPU") == "1"


def _reason(tier):
    if tier == "emulated":
        return emulator.unavailable_reason()
    if tier == "compiled":
        return nvrtc.unavailable_reason()
    return None if backend.gpu_available() else "no CUDA GPU here (CuPy missing or no device)"


def pytest_runtest_setup(item):
    for tier in ("emulated", "compiled", "gpu"):
        if item.get_closest_marker(tier) is None:
            continue
        reason = _reason(tier)
        if reason is None:
            continue
        if REQUIRED and tier != "gpu":
            pytest.fail(f"the {tier} kernel tier must run (MINRAN_REQUIRE_KERNEL_TIERS=1) but "
                        f"cannot: {reason}", pytrace=False)
        if GPU_REQUIRED and tier == "gpu":
            pytest.fail(f"the gpu tier must run (MINRAN_REQUIRE_GPU=1) but cannot: {reason}",
                        pytrace=False)
        pytest.skip(f"{tier} tier: {reason}")


def pytest_report_header():
    return "kernel tiers: " + ", ".join(
        f"{tier} {'runs' if _reason(tier) is None else 'skipped (' + _reason(tier) + ')'}"
        for tier in ("emulated", "compiled", "gpu"))
