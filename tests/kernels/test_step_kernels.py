"""The kernels the GPU training step added: the totals' update (step.cu) and batch norm's
backward adding a waiting gradient in (normalization.cu), each against its NumPy twin."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minran.functional as F
from minran import Tensor, backend
from minran.step import add_to_totals

from .tiers import DTYPES, TIERS, assert_same_bits, assert_twins_agree, on

seeds = st.integers(0, 2**16)


@pytest.mark.parametrize("tier", TIERS)
@given(st.integers(1, 600), st.integers(1, 12), st.sampled_from(["normal", "ties", "nan row"]),
       st.sampled_from([1.5, np.nan, np.inf]), seeds, st.sampled_from(DTYPES))
def test_step_totals(tier, N, K, logits_kind, second_loss, seed, dtype):
    """Three steps added into the totals: correct predictions as NumPy's argmax counts them
    (the first largest logit, a row's first NaN), the loss times the batch size, the images,
    and the first step whose loss is not a finite number, with that loss (a later one, NaN
    at the third step, does not replace it). More rows than a block has threads, so each
    thread loops over several."""
    rng = np.random.default_rng(seed)
    logits = (rng.integers(-1, 2, (N, K)) if logits_kind == "ties"
              else rng.standard_normal((N, K))).astype(dtype)
    if logits_kind == "nan row":
        logits[rng.integers(N), rng.integers(K)] = np.nan
    labels = rng.integers(0, K, N)
    results = {}
    for where in (tier, "numpy"):
        with on(where) as put:
            totals = put(np.array([0, 0, 0, 7, -1, 0], dtype=np.float64))
            for loss in (np.asarray(0.75, dtype), np.asarray(second_loss, dtype),
                         np.asarray(np.nan, dtype)):
                add_to_totals(totals, put(loss), put(logits), put(labels))
            results[where] = backend.to_numpy(totals)
    want = results["numpy"]
    assert want[1] == 3 * (np.argmax(logits, axis=1) == labels).sum() and want[2] == 3 * N
    first_bad = 9 if np.isfinite(second_loss) else 8
    assert want[3] == 10 and want[4] == first_bad
    np.testing.assert_equal(want[5], np.nan if first_bad == 9 else second_loss)   # NaN == NaN
    assert_same_bits(results[tier], want, f"totals on {tier}")


@pytest.mark.parametrize("tier", TIERS)
@given(st.integers(2, 5), st.integers(1, 4), st.sampled_from([(3, 5), (20, 30)]),
       st.booleans(), st.booleans(), seeds, st.sampled_from(DTYPES))
def test_batch_norm_adds_the_waiting_gradient_of_its_input(tier, N, C, spatial, training, relu,
                                                            seed, dtype):
    """x feeds batch norm and an identity path: on the kernel the engine's waiting gradient of
    x is added in by the backward kernel (add = 1). Maps of 600 values per image make the
    block's loops over a channel run several times."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, C) + spatial) * 2 + 1).astype(dtype)
    w, b = rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype)

    def op(x, w, b):
        xp = x.xp
        rm, rv = xp.zeros(C, dtype=dtype), xp.ones(C, dtype=dtype)
        return F.batch_norm(x, w, b, rm, rv, training, relu=relu) + x * Tensor(
            xp.asarray(2.0, dtype=dtype))
    assert_twins_agree(tier, op, [x, w, b], seed=seed)
