"""The fast NumPy paths against the plain formulas they replace, with the batch cut into many
slices and shared among threads (minran/parallel.py): the same values and gradients as the
plain formula, bit for bit the same whatever the number of threads, and float64 gradient
checks through the sliced code."""
import os
import threading

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minran.functional as F
from minran import Tensor, backend, gradcheck, parallel
from minran.functional import normalization

from .helpers import randn

seeds = st.integers(0, 2**16)
# Bytes per slice: one image per slice, a few images per slice, or the whole batch at once.
slice_bytes = st.sampled_from([1, 300, 1 << 30])


@pytest.fixture(autouse=True)
def restore_slices():
    before = parallel.SLICE_BYTES, normalization.IMAGE_FROM
    yield
    parallel.SLICE_BYTES, normalization.IMAGE_FROM = before


def run_op(fn, inputs, seed, threads, slice_size):
    """fn(*inputs) and the gradients of <v, fn> for every input, on `threads` threads with
    slices of `slice_size` bytes (and fn's own arrays, e.g. running statistics, inside fn)."""
    parallel.SLICE_BYTES = slice_size
    with parallel.using(threads):
        tensors = [Tensor(a.copy(), requires_grad=True) for a in inputs]
        out = fn(*tensors)
        v = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
        out.backward(v)
        return [out.data] + [t.grad.data for t in tensors], v


def same_on_any_threads(fn, inputs, seed, slice_size):
    """The results on 1 and 3 threads, asserted bit-identical; returns them."""
    one, v = run_op(fn, inputs, seed, 1, slice_size)
    three, _ = run_op(fn, inputs, seed, 3, slice_size)
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a, b)
    return one, v


# ---- the pool itself ----------------------------------------------------------------------
def test_run_keeps_order_and_uses_several_threads():
    barrier = threading.Barrier(2, timeout=30)
    names = set()

    def item(i):
        if i < 2:
            barrier.wait()   # passes only if two threads hold items at the same moment
        names.add(threading.current_thread().name)
        return i * i
    with parallel.using(3):
        assert parallel.run(item, range(10)) == [i * i for i in range(10)]
    assert len(names) >= 2


def test_run_raises_the_items_error_and_stays_usable():
    def item(i):
        if i == 5:
            raise KeyError("item 5")
        return i
    with parallel.using(3):
        with pytest.raises(KeyError, match="item 5"):
            parallel.run(item, range(20))
        assert parallel.run(lambda i: -i, range(4)) == [0, -1, -2, -3]


def test_nested_runs_do_not_wait_on_each_other():
    with parallel.using(2):
        out = parallel.run(lambda i: sum(parallel.run(lambda j: i * j, range(5))), range(6))
    assert out == [i * 10 for i in range(6)]


def test_slices_depend_on_the_shape_alone():
    x = np.zeros((10, 3, 4, 4), np.float32)   # 192 bytes per image
    parallel.SLICE_BYTES = 400
    cuts = parallel.slices(x)
    # 1920 bytes need 5 slices of 400; rounded up to 8 (a multiple of SHARES = 4), as even
    # as 10 images allow, and covering the batch once, in order
    assert [(s.start, s.stop) for s in cuts] == [(0, 2), (2, 4), (4, 5), (5, 6), (6, 7),
                                                 (7, 8), (8, 9), (9, 10)]
    with parallel.using(1):
        assert parallel.slices(x) == cuts
    assert parallel.slices(x, axis_bytes=1000) == [slice(i, i + 1) for i in range(10)]
    assert parallel.slices(x, axis_bytes=40) == [slice(0, 10)]   # fits one slice
    assert parallel.slices(np.zeros((4, 0, 3))) == [slice(0, 4)]   # nothing to split


def test_threads_setting_is_checked():
    with pytest.raises(ValueError):
        parallel.set_threads(0)


# ---- the ops ------------------------------------------------------------------------------
def plain_conv2d(x, w, b, stride, padding):
    """The whole batch at once: W @ im2col(x), and its gradients through col2im."""
    N, C, H, W = x.shape
    Co, _, kh, kw = w.shape
    k, s, p = (kh, kw), (stride, stride), (padding, padding)
    cols = F.im2col(x, k, s, p)
    Ho, Wo = (H + 2 * padding - kh) // stride + 1, (W + 2 * padding - kw) // stride + 1
    out = np.matmul(w.reshape(Co, -1), cols).reshape(N, Co, Ho, Wo)
    if b is not None:
        out = out + b.reshape(1, Co, 1, 1)

    def grads(g):
        g2 = g.reshape(N, Co, Ho * Wo)
        gw = np.matmul(g2, cols.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
        gx = F.col2im(np.matmul(w.reshape(Co, -1).T, g2), x.shape, k, s, p)
        return [gx, gw] + ([g.sum(axis=(0, 2, 3))] if b is not None else [])
    return out, grads


@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.integers(1, 7),
       st.integers(1, 7), st.sampled_from([1, 2, 3]), st.integers(1, 2), st.integers(0, 2),
       st.booleans(), slice_bytes, seeds)
def test_conv2d_equals_the_plain_formula(N, Cin, Cout, H, W, k, stride, padding, bias, size,
                                         seed):
    assume(k <= H + 2 * padding and k <= W + 2 * padding)
    inputs = [randn((N, Cin, H, W), seed).data, randn((Cout, Cin, k, k), seed + 1).data]
    if bias:
        inputs.append(randn((Cout,), seed + 2).data)
    got, v = same_on_any_threads(lambda x, w, *b: F.conv2d(x, w, *b, stride=stride,
                                                           padding=padding), inputs, seed, size)
    out, grads = plain_conv2d(*inputs[:2], inputs[2] if bias else None, stride, padding)
    for a, b in zip(got, [out] + grads(v)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_the_stride_1_input_gradient_is_a_flipped_convolution():
    """The identity conv2d's backward uses for stride 1 (a 3x3 kernel, padding 1, as in every
    residual unit): col2im(W^T g) equals g convolved with the flipped, transposed kernel."""
    rng = np.random.default_rng(0)
    g, w = rng.standard_normal((2, 5, 6, 7)), rng.standard_normal((5, 4, 3, 3))
    by_col2im = F.col2im(np.matmul(w.reshape(5, -1).T, g.reshape(2, 5, -1)), (2, 4, 6, 7),
                         (3, 3), (1, 1), (1, 1))
    flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    by_convolution = F.conv2d(Tensor(g), Tensor(flipped.copy()), padding=1).data
    np.testing.assert_allclose(by_convolution, by_col2im, rtol=1e-12, atol=1e-12)


def plain_batch_norm(x, w, b, training, relu, running, eps=1e-5):
    """Lesson 7's formulas, over axes (0, 2, 3), in float64."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if training:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
    else:
        mean, var = running
    inv_std = (1 / np.sqrt(var + eps)).reshape(shape)
    xhat = (x - mean.reshape(shape)) * inv_std
    y = xhat * w.reshape(shape) + b.reshape(shape)
    out = np.maximum(y, 0) if relu else y

    def grads(g):
        gr = g * (y > 0) if relu else g
        gb, gw = gr.sum(axis=axes), (gr * xhat).sum(axis=axes)
        gxhat = gr * w.reshape(shape)
        if training:
            n = x.size // x.shape[1]
            gx = inv_std / n * (n * gxhat - gxhat.sum(axis=axes, keepdims=True)
                                - xhat * (gxhat * xhat).sum(axis=axes, keepdims=True))
        else:
            gx = gxhat * inv_std
        return [gx, gw, gb]
    return out, grads


@given(st.integers(2, 5), st.integers(1, 4), st.sampled_from([(), (1, 1), (3, 2), (4, 5)]),
       st.booleans(), st.booleans(), st.booleans(), slice_bytes, seeds)
def test_batch_norm_equals_the_plain_formula(N, C, spatial, training, relu, image, size, seed):
    # image: the per-channel numbers written out as whole images (as for large inputs)
    normalization.IMAGE_FROM = 0 if image else 1 << 60
    inputs = [randn((N, C) + spatial, seed, scale=2.0, shift=1.0).data,
              randn((C,), seed + 1).data, randn((C,), seed + 2).data]
    running = {}

    def bn(x, w, b):
        rm, rv = np.linspace(-1, 1, C), np.linspace(0.5, 2, C)
        running[parallel.threads()] = (rm, rv)
        return F.batch_norm(x, w, b, rm, rv, training, relu=relu)
    got, v = same_on_any_threads(bn, inputs, seed, size)
    np.testing.assert_array_equal(running[1][0], running[3][0])
    np.testing.assert_array_equal(running[1][1], running[3][1])
    out, grads = plain_batch_norm(*inputs, training, relu,
                                  (np.linspace(-1, 1, C), np.linspace(0.5, 2, C)))
    for a, b in zip(got, [out] + grads(v)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def plain_max_pool2d(x, k, s, p):
    """The padded input's k*k strided views, the first maximum in row order keeping the
    gradient (the algorithm max_pool2d had before it lost its argmax)."""
    N, C, H, W = x.shape
    Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf)
    views = [(i, j) for i in range(k) for j in range(k)]

    def view(a, i, j):
        return a[:, :, i:i + s * Ho:s, j:j + s * Wo:s]
    out = view(xpad, 0, 0).copy()
    argmax = np.zeros(out.shape, int)
    for n, (i, j) in enumerate(views[1:], 1):
        better = view(xpad, i, j) > out
        out[better], argmax[better] = view(xpad, i, j)[better], n

    def grads(g):
        gpad = np.zeros(xpad.shape)
        for n, (i, j) in enumerate(views):
            view(gpad, i, j)[...] += g * (argmax == n)
        return [gpad[:, :, p:p + H, p:p + W]]
    return out, grads


@given(st.integers(1, 3), st.integers(1, 3), st.integers(2, 9), st.integers(2, 9),
       st.sampled_from([(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 1), (3, 3, 0)]), st.booleans(),
       slice_bytes, seeds)
def test_max_pool2d_equals_the_plain_loop(N, C, H, W, window, ties, size, seed):
    k, s, p = window
    assume(k <= H + 2 * p and k <= W + 2 * p)
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (N, C, H, W)).astype(float) if ties else \
        rng.standard_normal((N, C, H, W))
    got, v = same_on_any_threads(lambda x: F.max_pool2d(x, k, s, p), [x], seed, size)
    out, grads = plain_max_pool2d(x, k, s, p)
    np.testing.assert_array_equal(got[0], out)
    np.testing.assert_array_equal(got[1], grads(v)[0])


@given(st.integers(1, 40), st.integers(1, 4), slice_bytes, seeds)
def test_elementwise_ops_equal_the_plain_formulas(N, C, size, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((N, C, 3, 3)) * 4, rng.standard_normal((N, C, 3, 3))
    got, v = same_on_any_threads(F.sigmoid, [x], seed, size)
    e = np.exp(-np.abs(x))
    s = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    np.testing.assert_array_equal(got[0], s)
    np.testing.assert_array_equal(got[1], v * s * (1 - s))
    got, v = same_on_any_threads(F.relu, [x], seed, size)
    np.testing.assert_array_equal(got[0], np.maximum(x, 0))
    np.testing.assert_array_equal(got[1], v * (x > 0))
    got, v = same_on_any_threads(F.attention_combine, [x, y], seed, size)
    np.testing.assert_array_equal(got[0], (1 + x) * y)
    np.testing.assert_array_equal(got[1], v * y)
    np.testing.assert_array_equal(got[2], v * (1 + x))
    got, v = same_on_any_threads(lambda a, b: a + b, [x, y], seed, size)
    np.testing.assert_array_equal(got[0], x + y)
    # a broadcast operand (a per-channel bias) cannot be cut like the batch: the plain call
    bias = rng.standard_normal((1, C, 1, 1))
    for pair in ([x, bias], [bias, x]):
        got, v = same_on_any_threads(lambda a, b: a + b, pair, seed, size)
        np.testing.assert_array_equal(got[0], x + bias)
        np.testing.assert_allclose(got[1 + (pair[1] is bias)], v.sum(axis=(0, 2, 3), keepdims=True))


@given(st.integers(1, 6), st.integers(1, 3), st.integers(1, 5), st.integers(1, 5),
       st.integers(1, 9), st.integers(1, 9), st.booleans(), slice_bytes, seeds)
def test_upsample_equals_the_plain_products(N, C, H, W, Ho, Wo, corners, size, seed):
    x = np.random.default_rng(seed).standard_normal((N, C, H, W))
    got, v = same_on_any_threads(lambda x: F.upsample_bilinear(x, (Ho, Wo), corners), [x],
                                 seed, size)
    Ay, Ax = (F.interpolation_matrix(H, Ho, corners), F.interpolation_matrix(W, Wo, corners))
    np.testing.assert_array_equal(got[0], Ay @ x @ Ax.T)
    np.testing.assert_array_equal(got[1], Ay.T @ v @ Ax)


def test_the_sliced_paths_really_are_sliced_and_threaded(monkeypatch):
    """The tests above would prove little if the ops ran as one slice: count the slices every
    op of a residual unit hands the pool with SLICE_BYTES = 1."""
    parallel.SLICE_BYTES = 1
    calls = []
    real_run = parallel.run

    def counting_run(fn, items):
        items = list(items)
        calls.append(len(items))
        return real_run(fn, items)
    monkeypatch.setattr(parallel, "run", counting_run)
    x = randn((4, 8, 5, 5), 0)
    from minran.models.residual_unit import ResidualUnit
    unit = ResidualUnit(8, 8).to(dtype=np.float64)
    out = F.max_pool2d(F.sigmoid(unit(x)), 3, 2, 1)
    out.backward(np.ones(out.shape))
    assert len(calls) >= 15 and all(n == 4 for n in calls)


@given(st.sampled_from(["conv", "conv_stride2", "bn", "bn_relu_eval", "pool"]), seeds)
def test_gradcheck_through_the_sliced_paths(op, seed):
    parallel.SLICE_BYTES, normalization.IMAGE_FROM = 1, 0
    with parallel.using(3):
        x = randn((3, 2, 5, 4), seed, scale=2.0)
        if op.startswith("conv"):
            w = randn((3, 2, 3, 3), seed + 1)
            stride = 2 if op == "conv_stride2" else 1
            gradcheck(lambda x, w: F.conv2d(x, w, stride=stride, padding=1), x, w)
        elif op.startswith("bn"):
            w, b = randn((2,), seed + 1), randn((2,), seed + 2)
            training = op == "bn"
            assume(np.abs(F.batch_norm(x, w, b, np.zeros(2), np.ones(2), training).data).min()
                   > 1e-3)
            gradcheck(lambda x, w, b: F.batch_norm(x, w, b, np.zeros(2), np.ones(2), training,
                                                   relu=not training), x, w, b)
        else:
            gradcheck(lambda x: F.max_pool2d(x, 3, 2, 1), x)


def test_the_pool_gives_openblas_one_thread_unless_the_user_chose(monkeypatch, two_blas_threads):
    """The pool's threads do the BLAS calls; OpenBLAS's own spinning threads would fight them
    for the cores. Its first run sets one OpenBLAS thread, unless OPENBLAS_NUM_THREADS (or
    OMP_/MKL_NUM_THREADS) says otherwise."""
    from minran import backend
    for variable in backend.BLAS_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    with parallel.using(1):   # one thread: no pool, nothing changes
        monkeypatch.setattr(parallel, "_blas_settled", False)
        parallel.run(abs, [-1, -2])
        assert backend.blas_threads() == 2
    with parallel.using(2):
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")   # the user's choice wins
        parallel.run(abs, [-1, -2])
        assert backend.blas_threads() == 2
        monkeypatch.setattr(parallel, "_blas_settled", False)
        monkeypatch.delenv("OPENBLAS_NUM_THREADS")
        assert parallel.run(abs, [-1, -2]) == [1, 2]
        assert backend.blas_threads() == 1


_STEPS = """
import resource, sys, numpy as np
from minran import backend
if sys.argv[1] == "keep" and not backend.keep_freed_memory():
    print("unavailable"); raise SystemExit
def step():   # a forward's activations, then a backward that frees them all
    arrays = [np.ones(2**20, dtype=np.float32) for _ in range(16)]   # 64 MiB in 4 MiB pieces
    del arrays
step()
start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
"""


def test_freed_activations_are_kept_for_the_next_step():
    """A step allocates its activations, its backward frees them all; glibc then gives the
    free top of its heap back to the operating system, and the next step faults every page
    back in (a good part of 16,384 pages for 64 MiB). With backend.keep_freed_memory()
    (which the first op on the CPU calls) the next step reuses the same memory."""
    import subprocess
    import sys
    runs = {how: subprocess.run([sys.executable, "-c", _STEPS, how], capture_output=True,
                                text=True, timeout=60, env={   # glibc's own defaults
                                    k: v for k, v in os.environ.items()
                                    if k not in backend.MALLOC_VARIABLES})
            for how in ("default", "keep")}
    if runs["keep"].stdout.strip() == "unavailable":
        pytest.skip("not glibc here: nothing to keep")
    faults = {how: int(run.stdout.split()[-1]) for how, run in runs.items()}
    # 64 MiB is 16,384 pages; glibc's defaults fault half of them or more back in
    assert faults["default"] > 4_000 and faults["keep"] < faults["default"] / 8, faults
