"""cuBLAS as minran calls it (cuda/blas.py): the planned call, computed by the reference that
states what cuBLAS does with those numbers, must be the row-major product minran wants; on a
GPU, cuBLAS itself must agree with it."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minran import backend
from minran.cuda import blas

from .tiers import DTYPES, assert_same_bits, tolerance


@st.composite
def products(draw):
    """(a, b, out shape, trans_a, trans_b): batched or not, either operand shared (2-D)."""
    batch = draw(st.integers(1, 4))
    M, K, N = draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    trans_a, trans_b = draw(st.booleans()), draw(st.booleans())
    shared = draw(st.sampled_from(["none", "a", "b", "both"]))
    a_shape = (K, M) if trans_a else (M, K)
    b_shape = (N, K) if trans_b else (K, N)
    if shared not in ("a", "both"):
        a_shape = (batch,) + a_shape
    if shared not in ("b", "both"):
        b_shape = (batch,) + b_shape
    out_shape = (M, N) if shared == "both" else (batch, M, N)
    return a_shape, b_shape, out_shape, trans_a, trans_b


def operand(shape, trans):
    return lambda a: np.swapaxes(a, -1, -2) if trans else a


@given(products(), st.sampled_from(DTYPES), st.integers(0, 2**16), st.booleans())
def test_the_planned_call_computes_the_row_major_product(product, dtype, seed, strided_out):
    a_shape, b_shape, out_shape, trans_a, trans_b = product
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(a_shape).astype(dtype)
    b = rng.standard_normal(b_shape).astype(dtype)
    want = np.matmul(operand(a_shape, trans_a)(a), operand(b_shape, trans_b)(b))
    if strided_out:   # out a view with longer rows than it uses (a leading dimension > N)
        wide = np.full(out_shape[:-1] + (out_shape[-1] + 3,), np.nan, dtype=dtype)
        out = wide[..., 1:out_shape[-1] + 1]
    else:
        out = np.full(out_shape, np.nan, dtype=dtype)   # beta = 0: NaN must not leak in
    blas.gemm(a, b, out, trans_a, trans_b)
    np.testing.assert_allclose(out, want, **tolerance(dtype))
    if strided_out:   # and nothing outside the view was written
        assert np.isnan(wide[..., 0]).all() and np.isnan(wide[..., out_shape[-1] + 1:]).all()


def test_a_known_plan():
    """out (batch 5, 3x4) = W (3x2, shared) @ cols (5, 2x4): cuBLAS sees C^T = cols^T W^T."""
    call = blas.plan(np.zeros((3, 2)), np.zeros((5, 2, 4)), np.zeros((5, 3, 4)))
    assert call == blas.Call(transa=blas.OP_N, transb=blas.OP_N, m=4, n=3, k=2, lda=4,
                             stride_a=8, ldb=2, stride_b=0, ldc=4, stride_c=12, batch=5)
    call = blas.plan(np.zeros((2, 3)), np.zeros((5, 4, 2)), np.zeros((5, 3, 4)), trans_a=True,
                     trans_b=True)
    assert (call.transa, call.transb, call.lda, call.ldb) == (blas.OP_T, blas.OP_T, 2, 3)


def test_an_operand_with_a_batch_of_one_is_shared_by_every_item():
    """(1, M, K) against (B, K, N): the single matrix is every item's (a stride of 0), as a
    2-D operand is; its own batch stride would take item i from past its end."""
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((1, 3, 4)), rng.standard_normal((6, 4, 2))
    assert blas.plan(a, b, np.zeros((6, 3, 2))).stride_b == 0   # cuBLAS's B is our a
    out = np.full((6, 3, 2), np.nan)
    blas.gemm(a, b, out)
    np.testing.assert_allclose(out, np.matmul(a, b), **tolerance(np.float64))
    out = np.full((6, 2, 3), np.nan)
    blas.gemm(b, a, out, trans_a=True, trans_b=True)
    np.testing.assert_allclose(out, np.matmul(b.transpose(0, 2, 1), a.transpose(0, 2, 1)),
                               **tolerance(np.float64))


def test_alpha_and_beta():
    a, b = np.arange(6.0).reshape(2, 3), np.arange(12.0).reshape(3, 4)
    out = np.ones((2, 4))
    blas.gemm(a, b, out, alpha=2.0, beta=3.0)
    assert_same_bits(out, 2 * a @ b + 3, "alpha and beta")


@pytest.mark.parametrize("a, b, out, message", [
    ((2, 3), (4, 5), (2, 5), "does not give out"),
    ((2, 3), (3, 5), (2, 4), "does not give out"),
    ((3, 2, 3), (2, 3, 5), (3, 2, 5), "does not give out"),
    ((2, 3), (3, 5), (4, 2, 5), "does not give out"),
])
def test_shapes_that_do_not_chain_are_refused(a, b, out, message):
    with pytest.raises(blas.BlasError, match=message):
        blas.gemm(np.zeros(a), np.zeros(b), np.zeros(out))


def test_rows_that_are_not_contiguous_are_refused():
    with pytest.raises(blas.BlasError, match="rows of a must be contiguous"):
        blas.gemm(np.zeros((4, 6))[:, ::2], np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(blas.BlasError, match="float32 or all float64"):
        blas.gemm(np.zeros((2, 2), np.float32), np.zeros((2, 2)), np.zeros((2, 2)))


def test_the_reference_refuses_a_matrix_that_reaches_past_its_array():
    """What a wrong leading dimension or stride does on a GPU: read another array."""
    call = blas.Call(blas.OP_N, blas.OP_N, m=2, n=2, k=2, lda=2, stride_a=4, ldb=2, stride_b=4,
                     ldc=2, stride_c=4, batch=2)
    flat = np.zeros(7)   # two 2x2 matrices need 8
    with pytest.raises(blas.BlasError, match="reaches element 7 of an array of 7"):
        blas.reference(call, 1.0, flat, 0, np.zeros(8), 0, 0.0, np.zeros(8), 0)


@pytest.mark.gpu
@given(products(), st.sampled_from(DTYPES), st.integers(0, 2**16))
def test_cublas_agrees_with_the_reference(product, dtype, seed):
    a_shape, b_shape, out_shape, trans_a, trans_b = product
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(a_shape).astype(dtype)
    b = rng.standard_normal(b_shape).astype(dtype)
    want = np.full(out_shape, np.nan, dtype=dtype)
    blas.gemm(a, b, want, trans_a, trans_b)
    cupy = backend.cupy
    out = cupy.full(out_shape, np.nan, dtype=dtype)
    blas.gemm(cupy.asarray(a), cupy.asarray(b), out, trans_a, trans_b)
    np.testing.assert_allclose(cupy.asnumpy(out), want, **tolerance(dtype))
