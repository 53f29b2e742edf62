"""The fast ops against their plain versions (minran/reference/), forward and backward.

Every op of minran.functional is run on hypothesis-drawn shapes and options in float64 and
must give its reference's output and, for a random output gradient v, its reference's
input gradients. The references are not trusted blindly either: each reference backward is
checked against central differences of its own forward, so a slip in either the fast op or
its reference fails here, and the two cannot drift apart.
"""
import importlib

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import minran.functional as F
from minran import Tensor, reference as R
from minran.nn import Parameter
from minran.optim import SGD

from . import helpers

seeds = st.integers(0, 2**16)
TOLERANCE = dict(rtol=1e-10, atol=1e-12)


def normal(shape, seed, scale=1.0, shift=0.0):
    return helpers.randn(shape, seed, False, scale, shift).data


def fast(fn, arrays, seed):
    """fn on Tensors of `arrays`: its output, the output gradient v drawn from `seed`, and
    the gradient of <v, output> for every array (zeros where none reached it)."""
    tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = fn(*tensors)
    v = np.random.default_rng(seed + 7).standard_normal(out.shape)
    out.backward(Tensor(v))
    grads = [t.grad.data if t.grad is not None else np.zeros_like(t.data) for t in tensors]
    return out.data, v, grads


def assert_same(fn, forward, backward, arrays, seed):
    """The fast op fn and the reference (forward(*arrays), backward(v, *arrays)) agree."""
    out, v, grads = fast(fn, arrays, seed)
    np.testing.assert_allclose(out, forward(*arrays), err_msg="forward", **TOLERANCE)
    expected = backward(v, *arrays)
    expected = expected if isinstance(expected, tuple) else (expected,)
    assert len(expected) == len(grads)
    for i, (got, want) in enumerate(zip(grads, expected)):
        np.testing.assert_allclose(got, want, err_msg=f"gradient of input {i}", **TOLERANCE)


@st.composite
def windows(draw, pool=False):
    """(x shape, kernel, stride, padding): helpers.windows with a batch and channels."""
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    size, kernel, stride, padding = draw(helpers.windows(pool))
    return (N, C) + size, kernel, stride, padding


LOPSIDED = ((1, 2) + helpers.LOPSIDED[0],) + helpers.LOPSIDED[1:]


# ---- convolution ---------------------------------------------------------------------------
@given(windows(), st.integers(1, 3), st.booleans(), seeds)
@example(LOPSIDED, 2, True, 0)
def test_conv2d_is_its_reference(window, Cout, bias, seed):
    shape, kernel, stride, padding = window
    arrays = [normal(shape, seed), normal((Cout, shape[1]) + kernel, seed + 1)]
    if bias:
        arrays.append(normal(Cout, seed + 2))
    assert_same(lambda x, w, *b: F.conv2d(x, w, *b, stride=stride, padding=padding),
                lambda x, w, *b: R.conv.conv2d(x, w, *b, stride=stride, padding=padding),
                lambda g, x, w, *b: R.conv.conv2d_backward(g, x, w, *b, stride=stride,
                                                           padding=padding)[:len(arrays)],
                arrays, seed)


@given(windows(), seeds)
@example(LOPSIDED, 0)
def test_im2col_and_col2im_are_their_references(window, seed):
    shape, kernel, stride, padding = window
    x = normal(shape, seed)
    cols = F.im2col(x, kernel, stride, padding)
    np.testing.assert_array_equal(cols, R.conv.im2col(x, kernel, stride, padding))
    c = normal(cols.shape, seed + 1)
    np.testing.assert_allclose(F.col2im(c, shape, kernel, stride, padding),
                               R.conv.col2im(c, shape, kernel, stride, padding), **TOLERANCE)


# ---- pooling -------------------------------------------------------------------------------
@given(windows(pool=True), st.booleans(), st.booleans(), st.booleans(), seeds)
@example(LOPSIDED, True, False, False, 0)
def test_max_pool2d_is_its_reference(window, ties, specials, default_stride, seed):
    """Ties (small integers) go to the first maximum in row order in both; NaN and +-inf
    in a window behave the same way in both."""
    shape, kernel, stride, padding = window
    stride = None if default_stride else stride
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, shape).astype(np.float64) if ties else rng.standard_normal(shape)
    if specials:
        x.reshape(-1)[rng.choice(x.size, min(3, x.size), replace=False)] = [np.nan, -np.inf, np.inf][:min(3, x.size)]
    out, v, (gx,) = fast(lambda t: F.max_pool2d(t, kernel, stride, padding), [x], seed)
    np.testing.assert_array_equal(out, R.pooling.max_pool2d(x, kernel, stride, padding))
    # A pixel that wins three or more windows adds their gradients in another order.
    np.testing.assert_allclose(gx, R.pooling.max_pool2d_backward(v, x, kernel, stride, padding),
                               **TOLERANCE)


@given(windows(pool=True), st.booleans(), seeds)
def test_avg_pool2d_is_its_reference(window, default_stride, seed):
    shape, kernel, stride, padding = window
    stride = None if default_stride else stride
    assert_same(lambda x: F.avg_pool2d(x, kernel, stride, padding),
                lambda x: R.pooling.avg_pool2d(x, kernel, stride, padding),
                lambda g, x: R.pooling.avg_pool2d_backward(g, x.shape, kernel, stride, padding),
                [normal(shape, seed)], seed)


@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 5), st.integers(1, 5), seeds)
def test_global_avg_pool_is_its_reference(N, C, H, W, seed):
    assert_same(F.global_avg_pool, R.pooling.global_avg_pool,
                lambda g, x: R.pooling.global_avg_pool_backward(g, x.shape),
                [normal((N, C, H, W), seed)], seed)


# ---- batch norm ----------------------------------------------------------------------------
@given(st.integers(2, 3), st.integers(1, 3), st.sampled_from([(), (1, 1), (2, 3)]),
       st.booleans(), st.booleans(), st.booleans(), seeds)
def test_batch_norm_is_its_reference(N, C, spatial, training, affine, relu, seed):
    x = normal((N, C) + spatial, seed, scale=2.0, shift=1.0)
    rm, rv = normal(C, seed + 3), np.abs(normal(C, seed + 4)) + 0.5
    stats = {name: (rm.copy(), rv.copy()) for name in ("fast", "reference")}
    arrays = [x] + ([normal(C, seed + 1, shift=1.0), normal(C, seed + 2)] if affine else [])

    def op(x, *wb):
        return F.batch_norm(x, *(wb or (None, None)), *stats["fast"], training, relu=relu)

    def forward(x, *wb):
        return R.normalization.batch_norm(x, *(wb or (None, None)), *stats["reference"],
                                          training, relu=relu)

    def backward(g, x, *wb):
        # Evaluation normalises with the running statistics as they were before the pass.
        grads = R.normalization.batch_norm_backward(g, x, *(wb or (None, None)), training, rm, rv,
                                                    relu=relu)
        return grads[:len(arrays)]
    assert_same(op, forward, backward, arrays, seed)
    for got, want in zip(stats["fast"], stats["reference"]):   # moved the same way in training
        np.testing.assert_allclose(got, want, **TOLERANCE)
    if not training:
        np.testing.assert_array_equal(stats["fast"][0], rm)


# ---- bilinear upsampling -------------------------------------------------------------------
@given(st.integers(1, 2), st.integers(1, 2), st.integers(1, 5), st.integers(1, 5),
       st.integers(1, 9), st.integers(1, 9), st.booleans(), seeds)
@example(1, 2, 2, 3, 5, 4, False, 0)
def test_upsample_bilinear_is_its_reference(N, C, H, W, Ho, Wo, align_corners, seed):
    np.testing.assert_allclose(F.interpolation_matrix(H, Ho, align_corners),
                               R.upsample.interpolation_matrix(H, Ho, align_corners), **TOLERANCE)
    assert_same(lambda x: F.upsample_bilinear(x, (Ho, Wo), align_corners),
                lambda x: R.upsample.upsample_bilinear(x, (Ho, Wo), align_corners),
                lambda g, x: R.upsample.upsample_bilinear_backward(g, x.shape, (Ho, Wo), align_corners),
                [normal((N, C, H, W), seed)], seed)


# ---- activations, the attention module's ops, linear and the losses -------------------------
shapes = st.lists(st.integers(1, 3), min_size=1, max_size=4).map(tuple)
maps = st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(1, 4))


@pytest.mark.parametrize("name", ["relu", "sigmoid"])
@given(shapes, seeds)
def test_activations_are_their_references(name, shape, seed):
    x = normal(shape, seed, scale=3.0)
    if name == "relu":   # both send nothing back at exactly 0; elsewhere the slope is 0 or 1
        x.reshape(-1)[0] = 0.0
    ref = getattr(R.activation, name)
    assert_same(getattr(F, name), ref, getattr(R.activation, f"{name}_backward"), [x], seed)


@given(maps, st.booleans(), seeds)
def test_attention_combine_is_its_reference(shape, residual, seed):
    assert_same(lambda m, t: F.attention_combine(m, t, residual),
                lambda m, t: R.attention.attention_combine(m, t, residual),
                lambda g, m, t: R.attention.attention_combine_backward(g, m, t, residual),
                [normal(shape, seed), normal(shape, seed + 1)], seed)


@pytest.mark.parametrize("name", ["channel_normalize", "spatial_normalize"])
@given(maps, st.booleans(), seeds)
def test_mask_activations_are_their_references(name, shape, tiny, seed):
    x = normal(shape, seed, scale=2.0, shift=1.0)
    if tiny and name == "channel_normalize":   # one position below eps: the clamped branch
        x[0, :, 0, 0] = 1e-14
    assert_same(getattr(F, name), getattr(R.attention, name),
                getattr(R.attention, f"{name}_backward"), [x], seed)


@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4), st.booleans(), seeds)
def test_linear_is_its_reference(N, fin, fout, bias, seed):
    arrays = [normal((N, fin), seed), normal((fout, fin), seed + 1)]
    if bias:
        arrays.append(normal(fout, seed + 2))
    assert_same(F.linear, R.linear.linear,
                lambda g, *a: R.linear.linear_backward(g, *a)[:len(arrays)], arrays, seed)


@given(st.integers(1, 4), st.integers(1, 5), st.integers(0, 1), seeds)
def test_losses_are_their_references(N, K, axis, seed):
    z = normal((N, K), seed, scale=3.0)
    assert_same(lambda t: F.log_softmax(t, axis), lambda z: R.loss.log_softmax(z, axis),
                lambda g, z: R.loss.log_softmax_backward(g, z, axis), [z], seed)
    labels = np.random.default_rng(seed).integers(0, K, N)
    assert_same(lambda t: F.cross_entropy(t, labels), lambda z: R.loss.cross_entropy(z, labels),
                lambda g, z: R.loss.cross_entropy_backward(g, z, labels), [z], seed)


# ---- elementwise and shape ops -------------------------------------------------------------
@pytest.mark.parametrize("name", ["add", "sub", "mul", "div"])
@given(mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3), seeds)
def test_binary_ops_are_their_references(name, shapes, seed):
    a, b = normal(shapes.input_shapes[0], seed), normal(shapes.input_shapes[1], seed + 1)
    if name == "div":
        b = np.abs(b) + 0.5
    assert_same(getattr(F, name), getattr(R.elementwise, name),
                getattr(R.elementwise, f"{name}_backward"), [a, b], seed)


@pytest.mark.parametrize("name", ["neg", "exp", "log", "sqrt"])
@given(shapes, seeds)
def test_unary_ops_are_their_references(name, shape, seed):
    x = normal(shape, seed)
    if name in ("log", "sqrt"):
        x = np.abs(x) + 0.5
    assert_same(getattr(F, name), getattr(R.elementwise, name),
                getattr(R.elementwise, f"{name}_backward"), [x], seed)


@given(st.lists(st.integers(1, 3), min_size=1, max_size=4).map(tuple), st.booleans(), seeds, st.data())
def test_reductions_and_reshapes_are_their_references(shape, keepdims, seed, data):
    n = len(shape)
    axis = data.draw(st.one_of(st.none(), st.integers(-n, n - 1),
                               st.lists(st.integers(0, n - 1), min_size=1, unique=True).map(tuple)))
    axes = tuple(data.draw(st.permutations(range(n))))
    x = normal(shape, seed)
    for name in ("reduce_sum", "mean"):
        fn = F.sum if name == "reduce_sum" else F.mean
        ref, ref_backward = getattr(R.shape, name), getattr(R.shape, f"{name}_backward")
        assert_same(lambda t: fn(t, axis, keepdims), lambda x: ref(x, axis, keepdims),
                    lambda g, x: ref_backward(g, x, axis, keepdims), [x], seed)
    assert_same(lambda t: F.transpose(t, axes), lambda x: R.shape.transpose(x, axes),
                lambda g, x: R.shape.transpose_backward(g, x, axes), [x], seed)
    assert_same(lambda t: F.reshape(t, (-1,)), lambda x: R.shape.reshape(x, (-1,)),
                lambda g, x: R.shape.reshape_backward(g, x, (-1,)), [x], seed)


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.sampled_from([(), (2,), (1,)]),
       st.sampled_from([(), (2,)]), seeds)
def test_matmul_is_its_reference(n, k, m, batch_a, batch_b, seed):
    a, b = normal(batch_a + (n, k), seed), normal(batch_b + (k, m), seed + 1)
    assert_same(F.matmul, R.shape.matmul, R.shape.matmul_backward, [a, b], seed)


# ---- the optimiser -------------------------------------------------------------------------
@given(st.sampled_from([0.0, 0.9]), st.booleans(), st.sampled_from([0.0, 1e-2]), seeds)
def test_sgd_is_its_reference_over_several_steps(momentum, nesterov, weight_decay, seed):
    nesterov = nesterov and momentum > 0
    rng = np.random.default_rng(seed)
    start = [rng.standard_normal((3, 2)), rng.standard_normal(4)]
    params = [Parameter(p.copy()) for p in start]
    opt = SGD(params, lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    plain, buffers = [p.copy() for p in start], [None, None]
    for step in range(4):
        grads = [rng.standard_normal(p.shape) for p in start]
        for p, g in zip(params, grads):
            p.grad = Tensor(g.copy())
        opt.step()
        plain, buffers = R.sgd.sgd_step(plain, grads, buffers, 0.1, momentum, nesterov, weight_decay)
        for p, q in zip(params, plain):
            np.testing.assert_allclose(p.data, q, err_msg=f"step {step}", **TOLERANCE)


# ---- the references themselves -------------------------------------------------------------
def numeric_gradients(forward, arrays, v, eps=1e-6):
    """The gradient of <v, forward(*arrays)> for every array, by central differences."""
    grads = []
    for a in arrays:
        grad = np.zeros(a.shape)
        for index in np.ndindex(*a.shape):
            keep = a[index]
            a[index] = keep + eps
            plus = (v * forward(*arrays)).sum()
            a[index] = keep - eps
            minus = (v * forward(*arrays)).sum()
            a[index] = keep
            grad[index] = (plus - minus) / (2 * eps)
        grads.append(grad)
    return grads


def _bn(training, relu):
    rm, rv = np.array([0.3, -0.2]), np.array([0.8, 1.5])
    return (lambda x, w, b: R.normalization.batch_norm(x, w, b, rm.copy(), rv.copy(), training,
                                                       relu=relu),
            lambda g, x, w, b: R.normalization.batch_norm_backward(g, x, w, b, training, rm, rv,
                                                                   relu=relu))


r = np.random.default_rng(0)
x4, w4 = r.standard_normal((2, 2, 4, 5)), r.standard_normal((3, 2, 2, 3))
# (name, forward, backward, inputs): inputs away from kinks and ties, where the derivative exists.
REFERENCES = [
    ("conv2d", lambda x, w, b: R.conv.conv2d(x, w, b, (2, 1), (1, 2)),
     lambda g, x, w, b: R.conv.conv2d_backward(g, x, w, b, (2, 1), (1, 2)), [x4, w4, r.standard_normal(3)]),
    ("max_pool2d", lambda x: R.pooling.max_pool2d(x, (2, 3), (1, 2), (1, 1)),
     lambda g, x: R.pooling.max_pool2d_backward(g, x, (2, 3), (1, 2), (1, 1)), [x4]),
    ("avg_pool2d", lambda x: R.pooling.avg_pool2d(x, (3, 2), (2, 1), (1, 1)),
     lambda g, x: R.pooling.avg_pool2d_backward(g, x.shape, (3, 2), (2, 1), (1, 1)), [x4]),
    ("global_avg_pool", R.pooling.global_avg_pool,
     lambda g, x: R.pooling.global_avg_pool_backward(g, x.shape), [x4]),
    ("batch_norm (training)", *_bn(True, False), [x4 * 2 + 1, r.standard_normal(2), r.standard_normal(2)]),
    ("batch_norm (evaluation, relu)", *_bn(False, True), [x4 * 2 + 1, r.standard_normal(2), r.standard_normal(2)]),
    ("upsample_bilinear", lambda x: R.upsample.upsample_bilinear(x, (7, 3), True),
     lambda g, x: R.upsample.upsample_bilinear_backward(g, x.shape, (7, 3), True), [x4]),
    ("upsample_bilinear (half-pixel)", lambda x: R.upsample.upsample_bilinear(x, (9, 2), False),
     lambda g, x: R.upsample.upsample_bilinear_backward(g, x.shape, (9, 2), False), [x4]),
    ("relu", R.activation.relu, R.activation.relu_backward, [x4]),
    ("sigmoid", R.activation.sigmoid, R.activation.sigmoid_backward, [x4]),
    ("attention_combine (ARL)", R.attention.attention_combine, R.attention.attention_combine_backward, [x4, x4 + 1]),
    ("attention_combine (NAL)", lambda m, t: R.attention.attention_combine(m, t, False),
     lambda g, m, t: R.attention.attention_combine_backward(g, m, t, False), [x4, x4 + 1]),
    ("channel_normalize", R.attention.channel_normalize, R.attention.channel_normalize_backward, [x4]),
    ("spatial_normalize", R.attention.spatial_normalize, R.attention.spatial_normalize_backward, [x4]),
    ("linear", R.linear.linear, R.linear.linear_backward, [r.standard_normal((3, 4)), r.standard_normal((2, 4)), r.standard_normal(2)]),
    ("log_softmax", lambda z: R.loss.log_softmax(z, 0), lambda g, z: R.loss.log_softmax_backward(g, z, 0), [r.standard_normal((3, 4))]),
    ("cross_entropy", lambda z: R.loss.cross_entropy(z, np.array([2, 0, 3])),
     lambda g, z: R.loss.cross_entropy_backward(g, z, np.array([2, 0, 3])), [r.standard_normal((3, 4))]),
    ("add", R.elementwise.add, R.elementwise.add_backward, [r.standard_normal((2, 1, 3)), r.standard_normal((4, 1))]),
    ("sub", R.elementwise.sub, R.elementwise.sub_backward, [r.standard_normal((2, 1, 3)), r.standard_normal((4, 1))]),
    ("mul", R.elementwise.mul, R.elementwise.mul_backward, [r.standard_normal((2, 1, 3)), r.standard_normal((4, 1))]),
    ("div", R.elementwise.div, R.elementwise.div_backward, [r.standard_normal((2, 1, 3)), r.random((4, 1)) + 0.5]),
    ("neg", R.elementwise.neg, R.elementwise.neg_backward, [x4]),
    ("exp", R.elementwise.exp, R.elementwise.exp_backward, [x4]),
    ("log", R.elementwise.log, R.elementwise.log_backward, [np.abs(x4) + 0.5]),
    ("sqrt", R.elementwise.sqrt, R.elementwise.sqrt_backward, [np.abs(x4) + 0.5]),
    ("sum", lambda x: R.shape.reduce_sum(x, (0, -1), True),
     lambda g, x: R.shape.reduce_sum_backward(g, x, (0, -1), True), [x4]),
    ("mean", lambda x: R.shape.mean(x, 2), lambda g, x: R.shape.mean_backward(g, x, 2), [x4]),
    ("transpose", lambda x: R.shape.transpose(x, (2, 0, 3, 1)),
     lambda g, x: R.shape.transpose_backward(g, x, (2, 0, 3, 1)), [x4]),
    ("reshape", lambda x: R.shape.reshape(x, (5, -1)), lambda g, x: R.shape.reshape_backward(g, x, (5, -1)), [x4]),
    ("matmul", R.shape.matmul, R.shape.matmul_backward, [r.standard_normal((2, 3, 4)), r.standard_normal((4, 2))]),
]


@pytest.mark.parametrize("name, forward, backward, inputs", REFERENCES, ids=[c[0] for c in REFERENCES])
def test_each_reference_backward_is_the_derivative_of_its_forward(name, forward, backward, inputs):
    arrays = [a.copy() for a in inputs]
    out = forward(*arrays)
    v = np.random.default_rng(1).standard_normal(np.shape(out))
    got = backward(v, *arrays)
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(arrays), f"{name}: a gradient per input"
    for i, (g, want) in enumerate(zip(got, numeric_gradients(forward, arrays, v))):
        np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-7, err_msg=f"{name}: input {i}")


def test_every_op_has_a_reference_and_its_file_says_where():
    """Each public op's file names its reference file, which holds a function of the op's
    own name (reduce_sum for F.sum) and, for an op with a gradient, its backward."""
    no_gradient = {"im2col", "col2im", "interpolation_matrix"}   # functions of arrays, not ops
    for name in F.__all__:
        op = getattr(F, name)
        if name == "counting_macs":
            continue
        file = op.__module__.rsplit(".", 1)[1]
        doc = importlib.import_module(op.__module__).__doc__
        assert f"minran/reference/{file}.py" in doc, f"{op.__module__}'s docstring must name its reference"
        module = getattr(R, file)
        assert callable(getattr(module, op.__name__, None)), f"minran/reference/{file}.py has no {op.__name__}"
        if op.__name__ not in no_gradient:
            assert callable(getattr(module, f"{op.__name__}_backward", None)), \
                f"minran/reference/{file}.py has no {op.__name__}_backward"
    assert "minran/reference/sgd.py" in importlib.import_module("minran.optim.sgd").__doc__
