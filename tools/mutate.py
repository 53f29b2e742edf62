#!/usr/bin/env python3
"""Mutation testing, small: plant one realistic one-line bug at a time in a COPY of the
project and check that the tests notice (docs/MUTATION.md has the last pass and its score).

    python tools/mutate.py                       # every mutant, one at a time
    python tools/mutate.py --area ops kernels    # ops | kernels | optim | models | data | trainer
    python tools/mutate.py --only col2im-crops-width-by-height-padding
    python tools/mutate.py --list                # the mutants, without running anything
    python tools/mutate.py --root ../old-tree    # another checkout's tests (e.g. before a fix)

Each mutant is a file, a fragment of it (found there exactly once unless `nth` says which),
and a replacement: the kind of slip a person makes (a height where a width belongs, an
off-by-one, a dropped factor, two lines in the wrong order). The tree is copied once to a
temporary folder; each mutant is applied there, the tests of its area run with -x and a
fixed hypothesis seed, and the file is restored. A mutant is killed when the tests fail or
run past --timeout. The working tree is never written. Kernel mutants (.cu, .cuh) are
compiled from the copy: each op module reads the .cu file beside it, and the emulator caches
its builds by a hash of the source, so every mutant is rebuilt (a second or two).
"""
import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

AREA_TESTS = {  # the tests that should catch a bug in each area, fastest first (-x stops early)
    "ops": ["tests/test_ops.py", "tests/test_fast_paths.py", "tests/test_batch_norm_relu.py",
            "tests/test_engine.py", "tests/test_nn_optim.py", "tests/test_models.py",
            "tests/test_lessons.py"],
    # the kernels' own tiers: emulated (the .cu source on the CPU) and compiled (NVRTC)
    "kernels": ["tests/kernels/test_kernel_ops.py", "tests/kernels/test_kernel_gradcheck.py",
                "tests/kernels/test_network_step.py", "tests/kernels/test_emulator.py",
                "tests/kernels/test_compiled.py", "tests/kernels/test_package.py",
                "tests/test_lessons.py::"
                "test_18_the_cuda_kernel_on_the_cpu_equals_numpy_and_the_race_is_caught"],
    "optim": ["tests/test_nn_optim.py", "tests/test_models.py", "tests/test_train.py"],
    "models": ["tests/test_models.py", "tests/test_lessons.py"],
    "data": ["tests/test_data.py", "tests/test_lessons.py", "tests/test_train.py"],
    "trainer": ["tests/test_pictures.py", "tests/test_lessons.py", "tests/test_train.py"],
}


@dataclass
class Mutant:
    name: str
    area: str
    path: str
    old: str
    new: str
    nth: int = None  # which occurrence, where the fragment is not unique


M = Mutant
FN, OPT, MOD, DATA = "minran/functional/", "minran/optim/", "minran/models/", "minran/data/"
MUTANTS = [
    # ---- ops: convolution ------------------------------------------------------------------
    M("output-size-ignores-padding", "ops", FN + "conv.py",
      "return (size + 2 * padding - kernel) // stride + 1", "return (size + padding - kernel) // stride + 1"),
    M("output-size-rounds-up", "ops", FN + "conv.py",
      "return (size + 2 * padding - kernel) // stride + 1",
      "return (size + 2 * padding - kernel + stride - 1) // stride + 1"),
    M("im2col-pads-width-by-height", "ops", FN + "conv.py",
      "padded[:, :, ph:ph + H, pw:pw + W] = x", "padded[:, :, ph:ph + H, ph:ph + W] = x"),
    M("im2col-swaps-strides", "ops", FN + "conv.py",
      "cols[:, :, i, j] = x[:, :, i:i + sh * Ho:sh, j:j + sw * Wo:sw]",
      "cols[:, :, i, j] = x[:, :, i:i + sh * Ho:sw, j:j + sw * Wo:sh]"),
    M("col2im-crops-width-by-height-padding", "ops", FN + "conv.py",
      "return x[:, :, ph:ph + H, pw:pw + W]", "return x[:, :, ph:ph + H, ph:ph + W]"),
    M("col2im-assigns-instead-of-adding", "ops", FN + "conv.py",
      "x[:, :, i:i + sh * Ho:sh, j:j + sw * Wo:sw] += cols[:, :, i, j]",
      "x[:, :, i:i + sh * Ho:sh, j:j + sw * Wo:sw] = cols[:, :, i, j]"),
    M("conv-pointwise-ignores-padding", "ops", FN + "conv.py",
      "pointwise = kernel == (1, 1) and stride == (1, 1) and padding == (0, 0)",
      "pointwise = kernel == (1, 1) and stride == (1, 1)"),
    M("conv-weight-grad-mean-over-batch", "ops", FN + "conv.py",
      "g2[s].transpose(0, 2, 1)).sum(axis=0)", "g2[s].transpose(0, 2, 1)).mean(axis=0)"),
    M("conv-bias-grad-mean", "ops", FN + "conv.py",
      "gb = g.sum(axis=(0, 2, 3))", "gb = g.mean(axis=(0, 2, 3))"),
    M("conv-size-check-width-by-height-padding", "ops", FN + "conv.py",
      "kw > W + 2 * padding[1]:", "kw > W + 2 * padding[0]:"),
    M("conv-macs-forget-batch", "ops", FN + "conv.py",
      'count_macs("conv2d", N * Cout', 'count_macs("conv2d", Cout'),
    # the stride-1 input gradient as a convolution of g with the flipped kernel
    M("conv-flipped-kernel-flips-rows-only", "ops", FN + "conv.py",
      "w.data[:, :, ::-1, ::-1]", "w.data[:, :, ::-1, :]"),
    M("conv-flipped-kernel-channels-not-swapped", "ops", FN + "conv.py",
      ".transpose(1, 0, 2, 3).reshape(Cin, Cout * kh * kw)", ".reshape(Cin, Cout * kh * kw)"),
    M("conv-flipped-padding-width-by-height", "ops", FN + "conv.py",
      "kw - 1 - padding[1])", "kw - 1 - padding[0])"),
    M("conv-flipped-path-for-any-stride", "ops", FN + "conv.py",
      "flipped = (stride == (1, 1) and padding[0] < kh", "flipped = (padding[0] < kh"),
    M("conv-input-grad-by-forward-weight", "ops", FN + "conv.py",
      "xp.matmul(w2.T, g2[s], out=gx[s].reshape(-1, C, H * W))",
      "xp.matmul(w2, g2[s], out=gx[s].reshape(-1, C, H * W))"),
    # ---- ops: the thread pool that every NumPy twin runs on (minran/parallel.py) -----------
    M("parallel-slices-drop-the-last", "ops", "minran/parallel.py",
      "for i in range(count + 1)]", "for i in range(count)]"),
    M("parallel-slices-ignore-the-remainder", "ops", "minran/parallel.py",
      "bounds = [i * size + min(i, extra)", "bounds = [i * size"),
    M("parallel-slices-round-down", "ops", "minran/parallel.py",
      "count = min(n, -(-count // SHARES) * SHARES)", "count = min(n, count // SHARES * SHARES)"),
    M("parallel-total-adds-the-first-twice", "ops", "minran/parallel.py",
      "for part in parts[1:]:", "for part in parts:"),
    M("parallel-elementwise-slices-broadcast-operands", "ops", "minran/parallel.py",
      "            or any(a.shape != arrays[0].shape for a in arrays)\n", ""),
    M("parallel-run-does-not-wait-for-helpers", "ops", "minran/parallel.py",
      "    job.finished.wait()\n", ""),
    # ---- ops: pooling ----------------------------------------------------------------------
    M("pool-window-width-uses-height-stride", "ops", FN + "pooling.py",
      "slice(j, j + sw * Wo, sw)", "slice(j, j + sw * Wo, sh)"),
    M("maxpool-ties-go-to-the-last", "ops", FN + "pooling.py",
      "for k, (out_index, x_index) in enumerate(windows):",
      "for k, (out_index, x_index) in enumerate(windows[::-1]):"),
    M("maxpool-pads-with-zeros", "ops", FN + "pooling.py",
      "out = xp.full((N, C) + geometry[-2:], -xp.inf, dtype=x.dtype)",
      "out = xp.zeros((N, C) + geometry[-2:], dtype=x.dtype)"),
    M("maxpool-running-max-rebound-not-written", "ops", FN + "pooling.py",
      "xp.maximum(view, xs[x_index], out=view)", "view = xp.maximum(view, xs[x_index])"),
    M("maxpool-clips-width-by-height-padding", "ops", FN + "pooling.py",
      "inside(j, pw, sw, W, Wo)", "inside(j, ph, sw, W, Wo)"),
    M("maxpool-clip-first-rounds-down", "ops", FN + "pooling.py",
      "first = max(0, -((offset - pad) // stride))", "first = max(0, (pad - offset) // stride)"),
    M("maxpool-clip-last-off-by-one", "ops", FN + "pooling.py",
      "last = min(out_size, (size - 1 - offset + pad) // stride + 1)",
      "last = min(out_size, (size - offset + pad) // stride + 1)"),
    M("maxpool-grad-to-every-tied-maximum", "ops", FN + "pooling.py",
      "            won &= free[out_index]\n", ""),
    M("maxpool-grad-winner-never-marked", "ops", FN + "pooling.py",
      "free[out_index] ^= won", "free[out_index] |= won"),
    M("maxpool-grad-assigns-overlapping-windows", "ops", FN + "pooling.py",
      "gxs[x_index] += gs[out_index] * won", "gxs[x_index] = gs[out_index] * won"),
    M("avgpool-square-area", "ops", FN + "pooling.py",
      "out /= kh * kw", "out /= kh * kh"),
    M("avgpool-grad-not-divided", "ops", FN + "pooling.py",
      "gpad[view] += g / (kh * kw)", "gpad[view] += g"),
    M("pool-default-stride-one", "ops", FN + "pooling.py",
      "stride = kernel if stride is None", "stride = (1, 1) if stride is None"),
    M("pool-padding-check-width-by-height", "ops", FN + "pooling.py",
      "padding[1] > kernel[1] // 2", "padding[1] > kernel[0] // 2"),
    M("global-avg-pool-grad-square", "ops", FN + "pooling.py",
      "(g / (H * W))", "(g / (H * H))"),
    # ---- ops: upsampling -------------------------------------------------------------------
    M("align-corners-scale-in-over-out", "ops", FN + "upsample.py",
      "scale = (size_in - 1) / (size_out - 1)", "scale = size_in / size_out"),
    M("half-pixel-forgets-minus-half", "ops", FN + "upsample.py",
      "(out + 0.5) * (size_in / size_out) - 0.5", "(out + 0.5) * (size_in / size_out)"),
    M("half-pixel-not-clamped", "ops", FN + "upsample.py",
      "src = np.maximum((out + 0.5) * (size_in / size_out) - 0.5, 0.0)",
      "src = (out + 0.5) * (size_in / size_out) - 0.5"),
    M("upsample-width-matrix-from-height", "ops", FN + "upsample.py",
      "interpolation_matrix(W, Wo, align_corners)", "interpolation_matrix(H, Wo, align_corners)"),
    M("upsample-grad-transposes-width-matrix", "ops", FN + "upsample.py",
      "_sliced_products(g, Ay.T, Ax, (N, C, H, W))", "_sliced_products(g, Ay.T, Ax.T, (N, C, H, W))"),
    M("upsample-weights-swapped", "ops", FN + "upsample.py",
      "np.add.at(A, (np.arange(size_out), i0), 1 - frac)", "np.add.at(A, (np.arange(size_out), i0), frac)"),
    # ---- ops: attention --------------------------------------------------------------------
    M("combine-mask-grad-uses-mask", "ops", FN + "attention.py",
      "return (parallel.elementwise(xp.multiply, g, t),", "return (parallel.elementwise(xp.multiply, g, m),"),
    M("combine-arl-and-nal-swapped", "ops", FN + "attention.py",
      "parallel.elementwise(_residual_combine if residual else array_module(m).multiply, m, t)",
      "parallel.elementwise(array_module(m).multiply if residual else _residual_combine, m, t)"),
    M("combine-trunk-grad-always-residual", "ops", FN + "attention.py",
      "parallel.elementwise(_residual_combine if residual else xp.multiply, m, g)",
      "parallel.elementwise(_residual_combine, m, g)"),
    M("channel-norm-over-space", "ops", FN + "attention.py",
      "norm = xp.sqrt((x * x).sum(axis=1, keepdims=True))",
      "norm = xp.sqrt((x * x).sum(axis=(2, 3), keepdims=True))"),
    M("channel-norm-grad-forgets-projection", "ops", FN + "attention.py",
      "through_norm = inv * (g - y * (g * y).sum(axis=1, keepdims=True))", "through_norm = inv * g"),
    M("spatial-norm-mean-over-channels-too", "ops", FN + "attention.py",
      "centred = x - x.mean(axis=(2, 3), keepdims=True)",
      "centred = x - x.mean(axis=(1, 2, 3), keepdims=True)"),
    M("spatial-norm-eps-outside-root", "ops", FN + "attention.py",
      "inv_std = 1 / xp.sqrt((centred * centred).mean(axis=(2, 3), keepdims=True) + eps)",
      "inv_std = 1 / (xp.sqrt((centred * centred).mean(axis=(2, 3), keepdims=True)) + eps)"),
    M("spatial-norm-count-square", "ops", FN + "attention.py",
      "*sums, H * W)", "*sums, H * H)"),
    # ---- ops: batch norm -------------------------------------------------------------------
    M("bn-running-var-biased", "ops", FN + "normalization.py",
      "running_var += momentum * var * (n / (n - 1))", "running_var += momentum * var"),
    M("bn-running-mean-momentum-inverted", "ops", FN + "normalization.py",
      "running_mean *= 1 - momentum", "running_mean *= momentum"),
    M("bn-normalises-by-unbiased-variance", "ops", FN + "normalization.py",
      "(parallel.total(parallel.run(squares, parts)) / n)", "(parallel.total(parallel.run(squares, parts)) / (n - 1))"),
    M("bn-forgets-square-root", "ops", FN + "normalization.py",
      "inv_std = 1 / xp.sqrt(var + eps)", "inv_std = 1 / (var + eps)"),
    M("bn-backward-sum-not-averaged", "ops", FN + "normalization.py",
      "gx += g_sum / n", "gx += g_sum"),
    M("bn-input-grad-forgets-weight", "ops", FN + "normalization.py",
      "scale = inv_std * w\n", "scale = inv_std\n"),
    M("bn-eval-grad-through-batch-statistics", "ops", FN + "normalization.py",
      "        if training:\n            centred = x[s] - m", "        if True:\n            centred = x[s] - m"),
    M("bn-weight-grad-is-bias-grad", "ops", FN + "normalization.py",
      "_per_channel(xp, gr, x[s] - m)", "_per_channel(xp, gr)"),
    M("bn-forward-shift-sign", "ops", FN + "normalization.py",
      "_image(b - mean * a, x)", "_image(b + mean * a, x)"),
    M("bn-backward-xhat-term-forgets-inv-std", "ops", FN + "normalization.py",
      "k = _image(-scale * inv_std * g_xhat_sum / n, x)", "k = _image(-scale * g_xhat_sum / n, x)"),
    M("bn-backward-mean-term-not-averaged", "ops", FN + "normalization.py",
      "c = _image(-scale * g_sum / n, x)", "c = _image(-scale * g_sum, x)"),
    M("bn-relu-mask-lets-zeros-through", "ops", FN + "normalization.py",
      "xp.multiply(g[s], out[s] > 0, out=gx[s])", "xp.multiply(g[s], out[s] >= 0, out=gx[s])"),
    M("bn-relu-mask-forgotten-in-second-pass", "ops", FN + "normalization.py",
      "xp.multiply(gx[s] if relu else g[s], scale, out=gx[s])", "xp.multiply(g[s], scale, out=gx[s])"),
    # ---- ops: activations, elementwise, shape, linear, loss --------------------------------
    M("relu-grad-at-zero-is-one", "ops", FN + "activation.py",
      "multiply(g, x > 0, out=out)", "multiply(g, x >= 0, out=out)"),
    M("sigmoid-grad-forgets-one-minus", "ops", FN + "activation.py",
      "out *= 1 - y", "out *= y"),
    M("sigmoid-negative-branch", "ops", FN + "activation.py",
      "numerator = xp.maximum(e, x >= 0, dtype=x.dtype)", "numerator = xp.maximum(e, x < 0, dtype=x.dtype)"),
    M("sub-grad-keeps-sign", "ops", FN + "elementwise.py",
      "unbroadcast(-g, b.shape)", "unbroadcast(g, b.shape)"),
    M("div-grad-forgets-denominator", "ops", FN + "elementwise.py",
      "-ga * a.data / b.data", "-ga * a.data"),
    M("mul-grads-swapped", "ops", FN + "elementwise.py",
      "return unbroadcast(g * b.data, a.shape), unbroadcast(g * a.data, b.shape)",
      "return unbroadcast(g * a.data, a.shape), unbroadcast(g * b.data, b.shape)"),
    M("sqrt-grad-forgets-half", "ops", FN + "elementwise.py",
      "(g / (2 * y),)", "(g / y,)"),
    M("neg-forward-and-grad-both-identity", "ops", FN + "elementwise.py",
      "Tensor._from_op(-x.data, (x,), lambda g: (-g,), \"neg\")",
      "Tensor._from_op(x.data, (x,), lambda g: (g,), \"neg\")"),
    M("unbroadcast-sums-last-axis", "ops", FN + "_util.py",
      "grad = grad.sum(axis=0)", "grad = grad.sum(axis=-1)"),
    M("mean-grad-counts-last-axis-only", "ops", FN + "shape.py",
      "count *= x.shape[a]", "count = x.shape[a]"),
    M("axes-negative-not-wrapped", "ops", FN + "shape.py",
      "return tuple(a % ndim for a in axes)", "return tuple(axes)"),
    M("transpose-grad-not-inverted", "ops", FN + "shape.py",
      "lambda g: (g.transpose(inverse),)", "lambda g: (g.transpose(axes),)"),
    M("matmul-grad-transposes-all-axes", "ops", FN + "shape.py",
      "gb = xp.matmul(xp.swapaxes(a.data, -1, -2), g)", "gb = xp.matmul(a.data.T, g)"),
    M("linear-weight-grad-transposed", "ops", FN + "linear.py",
      "g.T @ x.data,", "x.data.T @ g,"),
    M("linear-macs-forget-batch", "ops", FN + "linear.py",
      'count_macs("linear", x.shape[0] * w.shape[0] * w.shape[1])', 'count_macs("linear", w.shape[0] * w.shape[1])'),
    M("log-softmax-shifts-by-global-max", "ops", FN + "loss.py",
      "shifted = z - z.max(axis=axis, keepdims=True)", "shifted = z - z.max()"),
    M("log-softmax-grad-forgets-sum", "ops", FN + "loss.py",
      "g - x.xp.exp(y) * g.sum(axis=axis, keepdims=True)", "g - x.xp.exp(y)"),
    M("cross-entropy-sum-not-mean", "ops", FN + "loss.py",
      "-logp[xp.arange(N), labels].mean()", "-logp[xp.arange(N), labels].sum()"),
    M("cross-entropy-grad-not-averaged", "ops", FN + "loss.py",
      "return grad * (g / N)", "return grad * g"),
    M("macs-counter-overwrites", "ops", FN + "macs.py",
      "_counter[op] = _counter.get(op, 0) + int(n)", "_counter[op] = int(n)"),
    # ---- kernels: the CUDA twins, run on the CPU by the emulator (and compiled by NVRTC) ----
    M("block-sum-round-without-barrier", "kernels", FN + "common.cuh",
      "partial[threadIdx.x + stride];\n        __syncthreads();", "partial[threadIdx.x + stride];"),
    M("block-sum-reads-before-all-parked", "kernels", FN + "common.cuh",
      "    partial[threadIdx.x] = value;\n    __syncthreads();\n", "    partial[threadIdx.x] = value;\n"),
    M("block-sum-returns-without-final-barrier", "kernels", FN + "common.cuh",
      "    T total = partial[0];\n    __syncthreads();", "    T total = partial[0];"),
    M("block-sum-skips-the-last-round", "kernels", FN + "common.cuh",
      "stride > 0; stride /= 2", "stride > 1; stride /= 2"),
    M("relu-kernel-grad-at-zero-is-one", "kernels", FN + "activation.cu",
      "gx[i] = x[i] > T(0) ? g[i] : T(0)", "gx[i] = x[i] >= T(0) ? g[i] : T(0)"),
    M("sigmoid-kernel-negative-branch", "kernels", FN + "activation.cu",
      ": e / (T(1) + e);", ": T(1) / (T(1) + e);"),
    M("combine-kernel-residual-flag-inverted", "kernels", FN + "attention.cu",
      "(residual ? T(1) + mask[i] : mask[i])", "(residual ? mask[i] : T(1) + mask[i])", nth=0),
    M("combine-kernel-mask-grad-uses-mask", "kernels", FN + "attention.cu",
      "g_mask[i] = g[i] * trunk[i];", "g_mask[i] = g[i] * mask[i];"),
    M("channel-norm-kernel-forgets-channel-stride", "kernels", FN + "attention.cu",
      "const long long first = index / HW * C * HW + index % HW;",
      "const long long first = index / HW * HW + index % HW;", nth=0),
    M("channel-norm-kernel-grad-forgets-y", "kernels", FN + "attention.cu",
      "inv * (g[i] - y[i] * dot)", "inv * (g[i] - dot)"),
    M("spatial-norm-kernel-unbiased-variance", "kernels", FN + "attention.cu",
      "block_sum(squares) / T(HW) + eps", "block_sum(squares) / T(HW - 1) + eps"),
    M("spatial-norm-kernel-grad-forgets-mean", "kernels", FN + "attention.cu",
      "(g[first + i] - g_mean - y[first + i] * gy_mean)", "(g[first + i] - y[first + i] * gy_mean)"),
    M("im2col-kernel-width-by-height-stride", "kernels", FN + "conv.cu",
      "w = ow * sw + j - pw;", "w = ow * sh + j - pw;"),
    M("im2col-kernel-reads-one-past-the-row", "kernels", FN + "conv.cu",
      "w >= 0 && w < W) ? x[", "w >= 0 && w <= W) ? x["),
    M("gathers-read-one-output-row-past-the-end", "kernels", FN + "common.cuh",
      "strided / stride >= out_size) return -1;", "strided / stride > out_size) return -1;"),
    M("gathers-ignore-the-stride", "kernels", FN + "common.cuh",
      "strided < 0 || strided % stride != 0 ||", "strided < 0 ||"),
    M("col2im-kernel-column-index-kh-kw-swapped", "kernels", FN + "conv.cu",
      "(((plane * kh + i) * kw + j) * Ho", "(((plane * kw + i) * kh + j) * Ho"),
    M("loss-kernel-grad-not-averaged", "kernels", FN + "loss.cu",
      "* (g[0] / T(N))", "* g[0]"),
    M("loss-kernel-max-misses-the-last-logit", "kernels", FN + "loss.cu",
      "for (int k = 1; k < K; ++k) top", "for (int k = 1; k < K - 1; ++k) top"),
    M("bn-kernel-channel-index-forgets-hw", "kernels", FN + "normalization.cu",
      "int c = (int)(i / HW % C);", "int c = (int)(i % C);", nth=0),
    M("bn-kernel-statistics-unbiased-variance", "kernels", FN + "normalization.cu",
      "T v = block_sum(squares) / T(count);", "T v = block_sum(squares) / T(count - 1);"),
    M("bn-kernel-relu-mask-lets-zeros-through", "kernels", FN + "normalization.cu",
      "relu && !(out[i] > T(0))", "relu && !(out[i] >= T(0))"),
    M("bn-kernel-relu-flag-inverted", "kernels", FN + "normalization.cu",
      "out[i] = relu && y < T(0)", "out[i] = !relu && y < T(0)"),
    M("bn-kernel-eval-flag-inverted", "kernels", FN + "normalization.cu",
      "if (!training) {", "if (training) {"),
    M("maxpool-kernel-ties-go-to-the-last", "kernels", FN + "pooling.cu",
      "k < kh * kw && winner < 0; ++k", "k < kh * kw; ++k"),
    M("maxpool-kernel-nan-does-not-propagate", "kernels", FN + "pooling.cu",
      "if (value > best || value != value) best = value;", "if (value > best) best = value;"),
    M("maxpool-kernel-grad-offsets-by-kernel-height", "kernels", FN + "pooling.cu",
      "argmax[o] == i * kw + j", "argmax[o] == i * kh + j"),
    M("avgpool-kernel-square-area", "kernels", FN + "pooling.cu",
      "out[index] = sum / T(kh * kw);", "out[index] = sum / T(kh * kh);"),
    M("upsample-kernel-weights-swapped", "kernels", FN + "upsample.cu",
      "T wy1 = T(ty.frac), wy0 = T(1.0 - ty.frac)", "T wy1 = T(1.0 - ty.frac), wy0 = T(ty.frac)"),
    M("upsample-kernel-border-weight-one-tap", "kernels", FN + "upsample.cu",
      "(t.i0 == i ? 1.0 - t.frac : 0.0) + (t.i1 == i ? t.frac : 0.0)",
      "(t.i0 == i ? 1.0 - t.frac : (t.i1 == i ? t.frac : 0.0))"),
    M("upsample-kernel-grad-first-output-off-by-one", "kernels", FN + "upsample.cu",
      ".i0 < i - 1) ++o;", ".i0 < i) ++o;"),
    M("upsample-kernel-grad-stops-one-row-early", "kernels", FN + "upsample.cu",
      "if (ty.i0 > iy) break;", "if (ty.i0 >= iy) break;"),
    M("sgd-kernel-nesterov-branches-swapped", "kernels", OPT + "sgd.cu",
      "g = nesterov ? g + momentum * b : b;", "g = nesterov ? b : g + momentum * b;"),
    M("sgd-kernel-weight-decay-sign", "kernels", OPT + "sgd.cu",
      "g += weight_decay * p[i];", "g -= weight_decay * p[i];"),
    M("sgd-kernel-buffer-not-stored", "kernels", OPT + "sgd.cu",
      "        buf[i] = b;\n", ""),
    # ---- optimiser -------------------------------------------------------------------------
    M("sgd-weight-decay-sign", "optim", OPT + "sgd.py",
      "g = g + self.weight_decay * p.data", "g = g - self.weight_decay * p.data"),
    M("sgd-first-buffer-aliases-grad", "optim", OPT + "sgd.py",
      "buf = self.buffers[i] = g.copy()", "buf = self.buffers[i] = g"),
    M("sgd-first-buffer-zero", "optim", OPT + "sgd.py",
      "buf = self.buffers[i] = g.copy()", "buf = self.buffers[i] = 0 * g"),
    M("sgd-momentum-as-dampening", "optim", OPT + "sgd.py",
      "buf *= self.momentum", "buf *= 1 - self.momentum"),
    M("sgd-nesterov-branches-swapped", "optim", OPT + "sgd.py",
      "g = g + self.momentum * buf if self.nesterov else buf",
      "g = buf if self.nesterov else g + self.momentum * buf"),
    M("sgd-step-uphill", "optim", OPT + "sgd.py",
      "p.data -= self.lr * g", "p.data += self.lr * g"),
    M("sgd-weight-decay-after-momentum", "optim", OPT + "sgd.py",
      "p.data -= self.lr * g", "p.data -= self.lr * (g + self.weight_decay * p.data)"),
    M("sgd-state-shares-buffers", "optim", OPT + "sgd.py",
      "backend.to_numpy(b).copy()", "backend.to_numpy(b)"),
    M("sgd-load-forgets-lr", "optim", OPT + "sgd.py",
      'self.lr, self.momentum = state["lr"], state["momentum"]', 'self.momentum = state["momentum"]'),
    M("sgd-load-shares-state-arrays", "optim", OPT + "sgd.py",
      "p.xp.array(b, dtype=p.dtype)", "p.xp.asarray(b, dtype=p.dtype)"),
    M("sgd-nesterov-allowed-without-momentum", "optim", OPT + "sgd.py",
      "if nesterov and momentum <= 0:", "if nesterov and momentum < 0:"),
    M("multistep-off-by-one", "optim", OPT + "schedules.py",
      "sum(iteration >= m for m in self.milestones)", "sum(iteration > m for m in self.milestones)"),
    M("multistep-gamma-times-count", "optim", OPT + "schedules.py",
      "self.base_lr * self.gamma ** sum(", "self.base_lr * self.gamma * sum("),
    M("cosine-not-clamped-after-total", "optim", OPT + "schedules.py",
      "t = min(iteration, self.total) / self.total", "t = iteration / self.total"),
    M("cosine-upside-down", "optim", OPT + "schedules.py",
      "(1 + math.cos(math.pi * t))", "(1 - math.cos(math.pi * t))"),
    M("cosine-ignores-min-lr", "optim", OPT + "schedules.py",
      "return self.min_lr + 0.5 * (self.base_lr - self.min_lr)", "return 0.5 * self.base_lr"),
    M("schedule-sets-no-initial-lr", "optim", OPT + "schedules.py",
      "optimizer.lr = self.lr_at(0)", "pass"),
    M("schedule-step-lags-one", "optim", OPT + "schedules.py",
      "self.optimizer.lr = self.lr_at(self.iteration)", "self.optimizer.lr = self.lr_at(self.iteration - 1)", nth=0),
    M("schedule-load-keeps-lr", "optim", OPT + "schedules.py",
      "self.optimizer.lr = self.lr_at(self.iteration)", "pass", nth=1),
    # ---- models ----------------------------------------------------------------------------
    M("attention452-r2", "models", MOD + "network.py",
      '"attention452": Variant((6, 6, 6), p=2, t=4, r=3)', '"attention452": Variant((6, 6, 6), p=2, t=4, r=2)'),
    M("projection-shortcut-takes-raw-input", "models", MOD + "residual_unit.py",
      "self.shortcut(a)", "self.shortcut(x)"),
    M("spatial-mask-without-normalisation", "models", MOD + "attention_module.py",
      "return F.sigmoid(F.spatial_normalize(h))", "return F.sigmoid(h)"),
    M("mixed-mask-without-sigmoid", "models", MOD + "attention_module.py",
      'if self.activation == "mixed":\n            return F.sigmoid(h)',
      'if self.activation == "mixed":\n            return h'),
    M("mask-upsamples-to-the-wrong-level", "models", MOD + "attention_module.py",
      "h = F.upsample_bilinear(h, sizes[level], align_corners=True)",
      "h = F.upsample_bilinear(h, sizes[level - 1], align_corners=True)"),
    M("mask-skip-from-the-wrong-level", "models", MOD + "attention_module.py",
      "h = self.mask_up[level - 1](h + skips[level - 1])", "h = self.mask_up[level - 1](h + skips[0])"),
    M("stage-pooling-depths-reversed", "models", MOD + "network.py",
      "POOLINGS = (3, 2, 1)", "POOLINGS = (1, 2, 3)"),
    # ---- data ------------------------------------------------------------------------------
    M("crop-offset-excludes-far-edge", "data", DATA + "augment.py",
      "top = rng.integers(0, 2 * pad + 1, N)", "top = rng.integers(0, 2 * pad, N)"),
    M("flip-is-vertical", "data", DATA + "augment.py",
      "batch[..., ::-1]", "batch[..., ::-1, :]"),
    M("flip-one-in-ten", "data", DATA + "augment.py",
      "flip = rng.random(len(batch)) < 0.5", "flip = rng.random(len(batch)) < 0.1"),
    M("augment-forgets-flip", "data", DATA + "augment.py",
      "return random_flip(random_crop(batch, rng, pad), rng)", "return random_crop(batch, rng, pad)"),
    M("channel-std-is-mean-of-image-stds", "data", DATA + "augment.py",
      "x.std(axis=(0, 2, 3))", "x.std(axis=(2, 3)).mean(axis=0)"),
    M("normalize-without-255", "data", DATA + "augment.py",
      "scale = 255.0 if std is None", "scale = 1.0 if std is None"),
    M("noise-may-keep-the-label", "data", DATA + "noise.py",
      "shift = rng.integers(1, num_classes, len(labels))", "shift = rng.integers(0, num_classes, len(labels))"),
    M("loader-drops-last-batch", "data", DATA + "loader.py",
      "for i in range(len(self)):", "for i in range(len(self) - 1):"),
    M("loader-shuffle-inverted", "data", DATA + "loader.py",
      "order = self.rng.permutation(len(self.images)) if self.shuffle else np.arange(len(self.images))",
      "order = np.arange(len(self.images)) if self.shuffle else self.rng.permutation(len(self.images))"),
    M("loader-len-rounds-down", "data", DATA + "loader.py",
      "return n if self.drop_last or len(self.images) % self.batch_size == 0 else n + 1", "return n"),
    M("cifar-rows-read-as-hwc", "data", DATA + "cifar.py",
      "data.reshape(-1, 3, 32, 32)", "data.reshape(-1, 32, 32, 3).transpose(0, 3, 1, 2)"),
    M("cifar-forgets-batch-5", "data", DATA + "cifar.py",
      "for i in range(1, 6)", "for i in range(1, 5)"),
    M("cifar100-coarse-labels", "data", DATA + "cifar.py",
      'label_key=b"fine_labels"', 'label_key=b"coarse_labels"'),
    M("cifar-extract-skips-verify", "data", DATA + "cifar.py",
      "    _verify(source, archive)\n    staging", "    staging"),
    M("cifar-env-var-ignored", "data", DATA + "cifar.py",
      "os.environ.get(ENV_VAR) or pathlib.Path.home()", "pathlib.Path.home()"),
    # ---- trainer and train_cifar.py --------------------------------------------------------
    M("checkpoint-written-in-place", "trainer", "minran/trainer.py",
      "pickle.HIGHEST_PROTOCOL)\n    save_atomic(path, write)", "pickle.HIGHEST_PROTOCOL)\n    write(path)"),
    M("result-reports-best-epoch", "trainer", "minran/trainer.py",
      "final = run.history[-1]", 'final = max(run.history, key=lambda r: r["test_acc"])'),
    M("evaluate-in-training-mode", "trainer", "minran/trainer.py",
      "    model.eval()\n    loss_sum", "    loss_sum"),
    M("schedule-steps-before-optimiser", "trainer", "minran/trainer.py",
      "        opt.step()\n        run.schedule.step()", "        run.schedule.step()\n        opt.step()"),
    M("normalisation-stats-include-test", "trainer", "minran/trainer.py",
      "mean, std = channel_stats(train_images)",
      "mean, std = channel_stats(np.concatenate([train_images, test_images]))"),
    M("epochs-round-down", "trainer", "minran/trainer.py",
      "per_epoch = math.ceil(train_size / config.batch_size)", "per_epoch = train_size // config.batch_size"),
    M("paper-milestones-not-scaled-by-batch", "trainer", "minran/trainer.py",
      "return [round(total * m / PAPER_ITERATIONS) for m in PAPER_MILESTONES]",
      "return list(PAPER_MILESTONES)"),
    M("trainer-drops-nesterov", "trainer", "minran/trainer.py",
      "nesterov=c.nesterov and c.momentum > 0", "nesterov=False", nth=0),
    M("trainer-drops-weight-decay", "trainer", "minran/trainer.py",
      "weight_decay=c.weight_decay)", "weight_decay=0.0)", nth=0),
    M("trainer-std-always-divided", "trainer", "minran/trainer.py",
      'std = std if c.mean == "channel-std" else None', "std = std"),
    M("evaluate-loss-not-weighted-by-batch", "trainer", "minran/trainer.py",
      "loss_sum += float(F.cross_entropy(logits, y).data) * len(y)",
      "loss_sum += float(F.cross_entropy(logits, y).data)"),
    M("resume-forgets-rng", "trainer", "minran/trainer.py",
      '        self.rng.bit_generator.state = state["rng"]\n', ""),
    M("trainer-ignores-label-noise", "trainer", "minran/trainer.py",
      "        if c.label_noise:\n", "        if False:\n"),
    M("evaluate-on-train-set", "trainer", "minran/trainer.py",
      "test_loss, test_acc = evaluate(run.model, run.test_x, run.test_y,",
      "test_loss, test_acc = evaluate(run.model, run.train_x, run.train_y,"),
    M("nal-flag-inverted", "trainer", "train_cifar.py",
      "residual=not args.nal", "residual=args.nal"),
    M("augment-flag-inverted", "trainer", "train_cifar.py",
      "augment=not args.no_augment", "augment=args.no_augment"),
    M("eval-only-forgets-weights", "trainer", "train_cifar.py",
      "    load_weights(run.model, state, args.eval_only)\n", ""),
    M("cli-drops-label-noise", "trainer", "train_cifar.py",
      "label_noise=args.label_noise,", "label_noise=0.0,"),
]


def apply(text, mutant):
    count = text.count(mutant.old)
    if mutant.nth is None and count != 1 or mutant.nth is not None and count <= mutant.nth:
        raise SystemExit(f"{mutant.name}: fragment found {count} times in {mutant.path}; "
                         f"the source changed, update the mutant\n  {mutant.old!r}")
    at = -1
    for _ in range((mutant.nth or 0) + 1):
        at = text.index(mutant.old, at + 1)
    return text[:at] + mutant.new + text[at + len(mutant.old):]


def run_tests(copy, tests, timeout):
    shutil.rmtree(copy / ".hypothesis", ignore_errors=True)  # no replayed examples
    env = {**os.environ, "PYTHONPATH": str(copy), "MINRAN_HYPOTHESIS": "fast"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-rf", "-p", "no:cacheprovider",
               "--hypothesis-seed=0", *tests]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return "killed", "timeout", "", time.perf_counter() - start
    seconds = time.perf_counter() - start
    if done.returncode == 0:
        return "survived", "", "", seconds
    failed = [line.split(" ")[1] for line in done.stdout.splitlines() if line.startswith("FAILED ")]
    errors = [line for line in done.stdout.splitlines() if line.startswith("ERROR ")]
    # the first error line pytest printed: shows a mutant that did not even build (a kernel
    # that fails to compile would be "killed" by no test at all)
    why = next((line[1:].strip() for line in done.stdout.splitlines() if line.startswith("E ")), "")
    return "killed", (failed or errors or [f"exit {done.returncode}"])[0], why[:300], seconds


def builds(copy):
    """('', '') when every .cu file of the copy compiles for the emulator; else ('warned',
    line) when only the emulator's -Werror stops it (an unused parameter, a narrowing: CI's
    emulated tier fails to build, so the mutant is caught), or ('rejected', line)."""
    done = subprocess.run([sys.executable, "-c", "from minran.cuda import kernels\n"
                           "for s in kernels.all_sources(): s.module('emulator')"],
                          cwd=copy, env={**os.environ, "PYTHONPATH": str(copy)},
                          capture_output=True, text=True)
    if done.returncode == 0:
        return "", ""
    lines = done.stderr.splitlines()
    first = next((line for line in lines if "error:" in line or "warning:" in line), lines[-1])
    warned = "warnings being treated as errors" in done.stderr or "[-Werror" in first
    return ("warned" if warned else "rejected"), first.strip()[:300]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=pathlib.Path(__file__).resolve().parents[1], type=pathlib.Path)
    p.add_argument("--area", nargs="+", choices=list(AREA_TESTS))
    p.add_argument("--only", nargs="+", help="mutant names")
    p.add_argument("--list", action="store_true")
    p.add_argument("--timeout", type=int, default=1200, help="seconds per mutant")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--tests", nargs="+", help="run these test files instead of each area's "
                   "(e.g. to see which mutants only an incidental test kills)")
    p.add_argument("--skip-missing", action="store_true",
                   help="leave out mutants whose fragment this tree lacks (another version's code)")
    args = p.parse_args(argv)
    chosen = [m for m in MUTANTS if (not args.area or m.area in args.area)
              and (not args.only or m.name in args.only)]
    if args.only and len(chosen) != len(args.only):
        raise SystemExit(f"unknown mutants: {set(args.only) - {m.name for m in chosen}}")
    for m in list(chosen):  # check every fragment before spending time on any
        try:
            apply((args.root / m.path).read_text(), m)
        except SystemExit as missing:
            if not args.skip_missing:
                raise
            print(f"left out: {missing}", file=sys.stderr)
            chosen.remove(m)
    if args.list:
        for m in chosen:
            print(f"{m.area:<8} {m.name:<45} {m.path}\n         - {m.old!r}\n         + {m.new!r}")
        return
    with tempfile.TemporaryDirectory(prefix="minran-mutants-") as tmp:
        copy = pathlib.Path(tmp) / "tree"
        skipped = {".git", ".venv", ".hypothesis", ".pytest_cache", "runs", "data", "build"}

        def ignore(folder, names):  # top-level outputs and caches only: minran/data is code
            top = pathlib.Path(folder) == args.root
            return [n for n in names if n == "__pycache__" or n.endswith(".egg-info") or top and n in skipped]
        shutil.copytree(args.root, copy, ignore=ignore)
        packages = sorted({str(pathlib.Path(m.path).parent).replace("/", ".") for m in MUTANTS} - {"."})
        where = subprocess.run([sys.executable, "-c", f"import {', '.join(packages)}\n"
                                f"for p in ({', '.join(packages)},): print(p.__file__)"], cwd=copy,
                               env={**os.environ, "PYTHONPATH": str(copy)}, capture_output=True, text=True)
        found = where.stdout.split()
        assert len(found) == len(packages) and all(f.startswith(str(copy)) for f in found), \
            f"tests would import {packages} from {found or where.stderr}"
        # The kernels are read from the .cu file beside each imported op module, so the copy's
        # (mutated) sources are what the emulator and NVRTC compile. A kernel tier that cannot
        # run here would be skipped, and every kernel mutant would "survive": refuse instead.
        check = subprocess.run(
            [sys.executable, "-c", "from minran.cuda import kernels, emulator, nvrtc\n"
             "for s in kernels.all_sources(): print(s.path)\n"
             "print('emulated:', emulator.unavailable_reason())\n"
             "print('compiled:', nvrtc.unavailable_reason())"],
            cwd=copy, env={**os.environ, "PYTHONPATH": str(copy)}, capture_output=True, text=True)
        lines = check.stdout.splitlines()
        sources = [line for line in lines if line.endswith(".cu")]
        assert sources and all(s.startswith(str(copy)) for s in sources), \
            f"the kernels would be compiled from {sources or check.stderr}"
        if any(m.area == "kernels" for m in chosen):
            missing = [line for line in lines if line.split(":")[0] in ("emulated", "compiled")
                       and not line.endswith(": None")]
            if missing:
                raise SystemExit(f"the kernel tiers cannot run here: {missing}")
        results = []
        for i, m in enumerate(chosen, 1):
            path = copy / m.path
            original = path.read_text()
            path.write_text(apply(original, m))
            try:
                unbuilt, why = builds(copy) if path.suffix in (".cu", ".cuh") else ("", "")
                if unbuilt == "warned":  # the emulated tier would not build: caught in CI
                    status, by, seconds = "killed", "the emulator's build (-Werror)", 0.0
                elif unbuilt:  # a mutant the compiler rejects is no bug a test could miss
                    status, by, seconds = "broken", "", 0.0
                else:
                    status, by, why, seconds = run_tests(copy, args.tests or AREA_TESTS[m.area],
                                                         args.timeout)
            finally:
                path.write_text(original)
            results.append({"name": m.name, "area": m.area, "path": m.path, "status": status,
                            "killed_by": by, "why": why, "seconds": round(seconds, 1)})
            if args.json:  # as it goes: a long pass stopped half-way keeps what it found
                pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
            print(f"[{i}/{len(chosen)}] {status:<8} {m.area:<8} {m.name:<45} {by} ({seconds:.0f}s)", flush=True)
    broken = [r["name"] for r in results if r["status"] == "broken"]
    if broken:
        print(f"left out, the compiler rejects them (fix the mutant): {', '.join(broken)}")
        results = [r for r in results if r["status"] != "broken"]
    killed = sum(r["status"] == "killed" for r in results)
    print(f"\n{killed} of {len(results)} mutants killed ({100 * killed / max(1, len(results)):.1f}%)")
    for area in AREA_TESTS:
        mine = [r for r in results if r["area"] == area]
        if mine:
            print(f"  {area:<8} {sum(r['status'] == 'killed' for r in mine)}/{len(mine)}")
    survivors = [r["name"] for r in results if r["status"] == "survived"]
    if survivors:
        print("survivors:", ", ".join(survivors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
