import os
import pathlib

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

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
