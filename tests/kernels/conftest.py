"""The three tiers of the kernel tests, and when each runs.

  emulated  every kernel's own .cu source on the CPU (minran/cuda/emulator.py); needs g++
  compiled  every instantiation compiled by NVRTC for sm_80 and sm_90; needs nvidia-cuda-nvrtc
  gpu       the same test functions on a CUDA device through CuPy; needs a GPU

A tier that cannot run here is skipped with a one-line reason, except where
MINRAN_REQUIRE_KERNEL_TIERS=1 (CI sets it): then a missing compiler or wheel fails the run,
so a green CI always means the two CPU tiers ran.
"""
import os

import pytest

from minran import backend
from minran.cuda import emulator, nvrtc

REQUIRED = os.environ.get("MINRAN_REQUIRE_KERNEL_TIERS") == "1"


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
        pytest.skip(f"{tier} tier: {reason}")
