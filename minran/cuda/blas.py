"""Matrix products on the GPU: cuBLAS called directly, one launch per product, with the
reference that says what that call computes.

Why not `cupy.matmul`: a product of a shared 2-D weight with a batch of 3-D columns, the
convolution's shape, is a broadcast in CuPy, which builds three arrays of pointers with three
kernels and allocates them before every product (cupy/_core/_routines_linalg.pyx). cuBLAS's
strided batched GEMM takes the batch as a stride, and a stride of 0 repeats a matrix for
every item: one launch, no allocation.

cuBLAS thinks in column-major matrices; minran's arrays are row-major. A row-major (M, N)
matrix with row stride ld is, read column-major, its transpose: an (N, M) matrix with leading
dimension ld. So the row-major product C = op(A) @ op(B) is asked of cuBLAS as
C^T = op(B)^T @ op(A)^T, which needs no copy of anything: `plan` works out that call, and
`reference` is a plain NumPy statement of what cuBLAS computes from those same numbers, so
the planning is tested on the CPU exactly as cuBLAS will receive it (tests/kernels/test_blas.py).
"""
import ctypes
from dataclasses import dataclass

import numpy as np

from .. import backend

OP_N, OP_T = 0, 1   # cuBLAS's CUBLAS_OP_N and CUBLAS_OP_T


class BlasError(ValueError):
    pass


@dataclass(frozen=True)
class Call:
    """The arguments of one cublas<t>gemmStridedBatched, in its order; strides and leading
    dimensions count elements, offsets (ours, not cuBLAS's) count elements from each
    array's start."""
    transa: int
    transb: int
    m: int
    n: int
    k: int
    lda: int
    stride_a: int
    ldb: int
    stride_b: int
    ldc: int
    stride_c: int
    batch: int


def _matrix(name, array, trans):
    """(rows, cols of op(array) in row-major terms, leading dimension, batch stride, batch)
    for a 2-D or 3-D array whose matrices have contiguous rows."""
    if array.ndim not in (2, 3):
        raise BlasError(f"gemm: {name} must be 2-D or 3-D, got shape {array.shape}")
    item = array.itemsize
    rows, cols = array.shape[-2:]
    row_stride, col_stride = array.strides[-2] // item, array.strides[-1] // item
    if col_stride != 1 and cols > 1:
        raise BlasError(f"gemm: the rows of {name} must be contiguous (strides "
                        f"{array.strides}); pass an array whose last axis has stride "
                        f"{item}")
    ld = max(row_stride if rows > 1 else cols, cols, 1)
    batch = array.shape[0] if array.ndim == 3 else 1
    batch_stride = array.strides[0] // item if array.ndim == 3 and batch > 1 else 0
    if trans:
        rows, cols = cols, rows
    return rows, cols, ld, batch_stride, batch


def plan(a, b, out, trans_a=False, trans_b=False):
    """The cuBLAS call computing out[i] = op(a[i]) @ op(b[i]) for row-major arrays; a 2-D
    operand is the same matrix for every item of the batch (stride 0)."""
    m_rows, a_cols, lda, stride_a, batch_a = _matrix("a", a, trans_a)
    b_rows, n_cols, ldb, stride_b, batch_b = _matrix("b", b, trans_b)
    c_rows, c_cols, ldc, stride_c, batch_c = _matrix("out", out, False)
    batch = max(batch_a, batch_b)
    if a_cols != b_rows or (c_rows, c_cols) != (m_rows, n_cols) or batch_c != batch \
            or {batch_a, batch_b} - {1, batch}:
        raise BlasError(f"gemm: op(a) {_shape(a, trans_a)} @ op(b) {_shape(b, trans_b)} does "
                        f"not give out {out.shape}")
    if batch > 1 and out.ndim == 3 and stride_c == 0:
        raise BlasError("gemm: every item of the batch would write the same out matrix")
    # Column-major: C^T (n_cols x m_rows) = op(B)^T @ op(A)^T, so cuBLAS's A is our b.
    return Call(transa=OP_T if trans_b else OP_N, transb=OP_T if trans_a else OP_N,
                m=n_cols, n=m_rows, k=a_cols, lda=ldb, stride_a=stride_b, ldb=lda,
                stride_b=stride_a, ldc=ldc, stride_c=stride_c, batch=batch)


def _shape(array, trans):
    shape = tuple(array.shape)
    return shape[:-2] + shape[:-3:-1] if trans else shape


def gemm(a, b, out, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    """out = alpha * op(a) @ op(b) + beta * out, item by item of the batch, in one launch.

    On the GPU this is one cublasSgemmStridedBatched (Dgemm... for float64); on NumPy arrays
    (the emulated tier) it is `reference`, fed the very same call."""
    if not (a.dtype == b.dtype == out.dtype) or out.dtype not in (np.float32, np.float64):
        raise BlasError(f"gemm: a, b and out must all be float32 or all float64, got "
                        f"{a.dtype}, {b.dtype}, {out.dtype}")
    call = plan(a, b, out, trans_a, trans_b)
    if backend.device_of(out) == "gpu":
        _cublas(call, a, b, out, alpha, beta)
    else:
        reference(call, alpha, _flat(b), 0, _flat(a), 0, beta, _flat(out), 0)
    return out


def _flat(array):
    """The memory an array reaches, as a flat array starting at its first element (the
    pointer cuBLAS would be given)."""
    if min(array.strides, default=0) < 0:
        raise BlasError(f"gemm: negative strides {array.strides}; pass a forward view")
    span = 1 + sum((n - 1) * s for n, s in zip(array.shape, array.strides)) // array.itemsize \
        if array.size else 0
    return np.lib.stride_tricks.as_strided(array, shape=(span,), strides=(array.itemsize,))


def _cublas(call, a, b, out, alpha, beta):
    cupy = backend.cupy
    cublas = cupy.cuda.cublas
    name = "sgemmStridedBatched" if out.dtype == np.float32 else "dgemmStridedBatched"
    scalars = np.array([alpha, beta], dtype=out.dtype)   # host pointers, read at the call
    step = scalars.itemsize
    getattr(cublas, name)(
        cupy.cuda.device.get_cublas_handle(), call.transa, call.transb, call.m, call.n,
        call.k, scalars.ctypes.data, b.data.ptr, call.lda, call.stride_a, a.data.ptr, call.ldb,
        call.stride_b, scalars.ctypes.data + step, out.data.ptr, call.ldc, call.stride_c,
        call.batch)


def reference(call, alpha, A, a_offset, B, b_offset, beta, C, c_offset):
    """What cublas<t>gemmStridedBatched computes, on flat NumPy arrays, written plainly:
    for every batch item i, the column-major matrices at offset + i * stride, read with
    their leading dimensions, C_i = alpha * op(A_i) @ op(B_i) + beta * C_i."""
    for i in range(call.batch):
        a = _column_major(A, a_offset + i * call.stride_a, call.lda,
                          *((call.k, call.m) if call.transa else (call.m, call.k)))
        b = _column_major(B, b_offset + i * call.stride_b, call.ldb,
                          *((call.n, call.k) if call.transb else (call.k, call.n)))
        c = _column_major(C, c_offset + i * call.stride_c, call.ldc, call.m, call.n)
        product = (a.T if call.transa else a) @ (b.T if call.transb else b)
        c[...] = alpha * product + (beta * c if beta else 0)


def _column_major(flat, offset, ld, rows, cols):
    """The (rows, cols) column-major matrix with leading dimension ld at flat[offset:], as a
    NumPy view; an error if it reaches past the end (cuBLAS would read another array)."""
    if ld < max(rows, 1):
        raise BlasError(f"gemm: leading dimension {ld} is less than the {rows} rows")
    last = offset + (cols - 1) * ld + rows - 1 if rows and cols else offset
    if offset < 0 or last >= flat.size:
        raise BlasError(f"gemm: a {rows}x{cols} matrix with leading dimension {ld} at element "
                        f"{offset} reaches element {last} of an array of {flat.size}")
    return np.lib.stride_tricks.as_strided(flat[offset:], shape=(rows, cols),
                                           strides=(flat.itemsize, ld * flat.itemsize))


def read_scalar(address, dtype):
    """A host-pointer scalar (cuBLAS's alpha and beta in host pointer mode)."""
    ctype = ctypes.c_float if np.dtype(dtype) == np.float32 else ctypes.c_double
    return ctype.from_address(address).value
