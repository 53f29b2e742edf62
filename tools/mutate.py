#!/usr/bin/env python3
"""Mutation testing, small: plant one realistic one-line bug at a time in a COPY of the
project and check that the tests notice (docs/MUTATION.md has the last pass and its score).

    python tools/mutate.py                       # every mutant, one at a time
    python tools/mutate.py --area ops kernels    # ops kernels emulator optim models data
                                                 # trainer modes state gpu
    python tools/mutate.py --only col2im-crops-width-by-height-padding
    python tools/mutate.py --list                # the mutants, without running anything
    python tools/mutate.py --root ../old-tree    # another checkout's tests (e.g. before a fix)

Each mutant is a file, a fragment of it (found there exactly once unless `nth` says which),
and a replacement: the kind of slip a person makes (a height where a width belongs, an
off-by-one, a dropped factor, two lines in the wrong order). The tree is copied once to a
temporary folder; each mutant is applied there, the tests of its area run with -x and a
fixed hypothesis seed, and the file is restored. A mutant is killed when the tests fail or
run past --timeout. The working tree is never written. Kernel mutants (.cu, .cuh, and
emulator.h) are compiled from the copy: each op module reads the .cu file beside it, and the
emulator caches its builds by a hash of the sources, so every mutant is rebuilt (a second or
two); one that only the emulator's -Werror stops counts as killed by the build.
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

LESSON_18 = ("tests/test_lessons.py::"
             "test_18_the_cuda_kernel_on_the_cpu_equals_numpy_and_the_race_is_caught")
LESSON_19 = "tests/test_lessons.py::test_19_making_it_fast_measures_what_it_says"
AREA_TESTS = {  # the tests that should catch a bug in each area, fastest first (-x stops early)
    "ops": ["tests/test_ops.py", "tests/test_fast_paths.py", "tests/test_batch_norm_relu.py",
            "tests/test_engine.py", "tests/test_nn_optim.py", "tests/test_models.py",
            "tests/test_lessons.py"],
    # the kernels' own tiers: emulated (the .cu source on the CPU) and compiled (NVRTC)
    "kernels": ["tests/kernels/test_huge_launches.py", "tests/kernels/test_kernel_ops.py",
                "tests/kernels/test_step_kernels.py", "tests/kernels/test_kernel_sizes.py",
                "tests/kernels/test_emulator.py", "tests/kernels/test_warps.py",
                "tests/kernels/test_installs.py", "tests/kernels/test_kernel_gradcheck.py",
                "tests/kernels/test_network_step.py", "tests/kernels/test_package.py",
                "tests/kernels/test_compiled.py", LESSON_18],
    # the emulator's own checks, and the warp/atomic kernels they are proven on (warps.cu)
    "emulator": ["tests/kernels/test_warps.py", "tests/kernels/test_emulator.py",
                 "tests/kernels/test_kernel_ops.py", "tests/kernels/test_step_kernels.py",
                 "tests/kernels/test_kernel_sizes.py", "tests/kernels/test_huge_launches.py",
                 LESSON_18],
    "optim": ["tests/test_nn_optim.py", "tests/test_behaviour_state.py",
              "tests/test_flat_parameters.py", "tests/test_models.py", "tests/test_train.py"],
    "models": ["tests/test_models.py", "tests/test_lessons.py"],
    "data": ["tests/test_data.py", "tests/test_behaviour_resume.py", "tests/test_lessons.py",
             "tests/test_train.py"],
    "trainer": ["tests/test_behaviour_epoch_log.py", "tests/test_behaviour_resume.py",
                "tests/test_behaviour_modes.py", "tests/test_pictures.py", "tests/test_cli.py",
                "tests/test_run_folder.py", "tests/test_train.py", "tests/test_lessons.py"],
    # issue 22's library areas: switches entered more than once, states that do not fit
    "modes": ["tests/test_behaviour_modes.py", "tests/test_engine.py", "tests/test_nn_optim.py",
              "tests/test_models.py", "tests/test_train.py"],
    "state": ["tests/test_behaviour_state.py", "tests/test_nn_optim.py",
              "tests/test_flat_parameters.py", "tests/test_train.py"],
    # the GPU step: stand-in GPU, cuBLAS plans, flat parameters, totals, CUDA graph, launcher
    "gpu": ["tests/kernels/test_blas.py", "tests/kernels/test_step_kernels.py",
            "tests/kernels/test_installs.py", "tests/kernels/test_huge_launches.py",
            "tests/test_flat_parameters.py", "tests/test_standin.py", "tests/test_behaviour_gpu.py",
            "tests/test_engine.py", "tests/test_behaviour_epoch_log.py", "tests/test_gpu_step.py",
            LESSON_19],
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
      "gb = g.sum(axis=(0, 2, 3))", "gb = g.mean(axis=(0, 2, 3))", nth=0),
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
      "flipped = stride == (1, 1) and padding[0] < kh", "flipped = padding[0] < kh"),
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
      "running_var += momentum * var * (n / (n - 1))", "running_var += momentum * var", nth=0),
    M("bn-running-mean-momentum-inverted", "ops", FN + "normalization.py",
      "running_mean *= 1 - momentum", "running_mean *= momentum", nth=0),
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
      "gx[i] = g[i] * T(x[i] > T(0))", "gx[i] = g[i] * T(x[i] >= T(0))"),
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
      "g[i] * (out[i] > T(0) ? T(1) : T(0))", "g[i] * (out[i] >= T(0) ? T(1) : T(0))"),
    M("bn-kernel-relu-flag-inverted", "kernels", FN + "normalization.cu",
      "out[i] = relu && y <= T(0)", "out[i] = !relu && y <= T(0)", nth=0),
    M("bn-kernel-eval-flag-inverted", "kernels", FN + "normalization.cu",
      "T result = training ? scale", "T result = !training ? scale"),
    M("maxpool-kernel-ties-go-to-the-last", "kernels", FN + "pooling.cu",
      "k < kh * kw && winner < 0; ++k", "k < kh * kw; ++k"),
    M("maxpool-kernel-nan-does-not-propagate", "kernels", FN + "pooling.cu",
      "if (value >= best || value != value) best = value;", "if (value >= best) best = value;"),
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
      "g = g + self.weight_decay * p", "g = g - self.weight_decay * p"),
    M("sgd-first-buffer-aliases-grad", "optim", OPT + "sgd.py",
      "buf = g.copy()", "buf = g"),
    M("sgd-first-buffer-zero", "optim", OPT + "sgd.py",
      "buf = g.copy()", "buf = 0 * g"),
    M("sgd-momentum-as-dampening", "optim", OPT + "sgd.py",
      "buf *= self.momentum", "buf *= 1 - self.momentum"),
    M("sgd-nesterov-branches-swapped", "optim", OPT + "sgd.py",
      "g = g + self.momentum * buf if self.nesterov else buf",
      "g = buf if self.nesterov else g + self.momentum * buf"),
    M("sgd-step-uphill", "optim", OPT + "sgd.py",
      "p -= self.lr * g   # in place", "p += self.lr * g   # in place"),
    M("sgd-weight-decay-after-momentum", "optim", OPT + "sgd.py",
      "p -= self.lr * g   # in place", "p -= self.lr * (g + self.weight_decay * p)   # in place"),
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
      "    save_atomic(path, write)\n", "    write(path)\n", nth=0),
    M("result-reports-best-epoch", "trainer", "minran/trainer.py",
      "final = run.history[-1]", 'final = max(run.history, key=lambda r: r["test_acc"])'),
    M("evaluate-in-training-mode", "trainer", "minran/trainer.py",
      "    with model.evaluating(), no_grad():\n        for x, y in tqdm(batches",
      "    with no_grad():\n        for x, y in tqdm(batches"),
    M("schedule-steps-before-optimiser", "trainer", "minran/trainer.py",
      "        run.train_step(x.data, y)\n        run.schedule.step()",
      "        run.schedule.step()\n        run.train_step(x.data, y)"),
    M("normalisation-stats-include-test", "trainer", "minran/trainer.py",
      "mean, std = channel_stats(train_images)",
      "mean, std = channel_stats(np.concatenate([train_images, test_images]))"),
    M("epochs-round-down", "trainer", "minran/trainer.py",
      "per_epoch = math.ceil(train_size / config.batch_size)", "per_epoch = train_size // config.batch_size"),
    M("paper-milestones-not-scaled-by-batch", "trainer", "minran/trainer.py",
      "return [max(1, round(total * m / PAPER_ITERATIONS)) for m in PAPER_MILESTONES]",
      "return list(PAPER_MILESTONES)"),
    M("trainer-drops-nesterov", "trainer", "minran/trainer.py",
      "nesterov=c.nesterov and c.momentum > 0", "nesterov=False", nth=0),
    M("trainer-drops-weight-decay", "trainer", "minran/trainer.py",
      "weight_decay=c.weight_decay)", "weight_decay=0.0)", nth=0),
    M("trainer-std-always-divided", "trainer", "minran/trainer.py",
      'std = std if c.mean == "channel-std" else None', "std = std"),
    M("evaluate-loss-not-weighted-by-batch", "trainer", "minran/trainer.py",
      "loss_sum += F.cross_entropy(logits, y).data.astype(np.float64) * len(y)",
      "loss_sum += F.cross_entropy(logits, y).data.astype(np.float64)"),
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
    # ==== issue 22's classes (phase B) =========================================================
    # ---- kernels: races (one writer per element, or a barrier between) ---------------------
    M("bn-kernel-statistics-written-by-every-thread", "kernels", FN + "normalization.cu",
      "    if (threadIdx.x == 0) {\n        mean[c] = m;", "    {\n        mean[c] = m;"),
    M("bn-kernel-gradient-sums-written-by-every-thread", "kernels", FN + "normalization.cu",
      "    if (threadIdx.x == 0) {\n        g_sum[c] = total;", "    {\n        g_sum[c] = total;"),
    M("spatial-norm-kernel-inv-std-written-by-every-thread", "kernels", FN + "attention.cu",
      "if (threadIdx.x == 0) inv_std[blockIdx.x] = scale;", "inv_std[blockIdx.x] = scale;"),
    M("step-kernel-totals-updated-by-every-thread", "kernels", "minran/step.cu",
      "    if (threadIdx.x == 0) {\n        const T l = loss[0];", "    {\n        const T l = loss[0];"),
    M("avgpool-kernel-grad-as-a-scatter", "kernels", FN + "pooling.cu",
      "    long long index = global_index();\n"
      "    if (index >= (long long)N * C * H * W) return;\n"
      "    int w = (int)(index % W), h = (int)(index / W % H);\n"
      "    long long plane = index / ((long long)W * H) * Ho * Wo;\n"
      "    T sum = T(0);\n"
      "    for (int i = 0; i < kh; ++i) {\n"
      "        int oh = output_reading(h, i, sh, ph, Ho);\n"
      "        if (oh < 0) continue;\n"
      "        for (int j = 0; j < kw; ++j) {\n"
      "            int ow = output_reading(w, j, sw, pw, Wo);\n"
      "            if (ow < 0) continue;\n"
      "            sum += g[plane + (long long)oh * Wo + ow] / T(kh * kw);\n"
      "        }\n"
      "    }\n"
      "    gx[index] = sum;",
      "    long long index = global_index();   // one thread per output pixel, scattering\n"
      "    if (index >= (long long)N * C * Ho * Wo) return;\n"
      "    int ow = (int)(index % Wo), oh = (int)(index / Wo % Ho);\n"
      "    T* plane = gx + index / ((long long)Wo * Ho) * H * W;\n"
      "    for (int i = 0; i < kh; ++i) {\n"
      "        for (int j = 0; j < kw; ++j) {\n"
      "            int h = oh * sh + i - ph, w = ow * sw + j - pw;\n"
      "            if (h >= 0 && h < H && w >= 0 && w < W)\n"
      "                plane[(long long)h * W + w] += g[index] / T(kh * kw);\n"
      "        }\n"
      "    }"),
    # ---- kernels: out of bounds --------------------------------------------------------------
    M("relu-kernel-bound-inclusive", "kernels", FN + "activation.cu",
      "if (i < n) y[i] = x[i] <= T(0)", "if (i <= n) y[i] = x[i] <= T(0)"),
    M("loss-kernel-sum-reads-one-logit-past-the-row", "kernels", FN + "loss.cu",
      "for (int k = 0; k < K; ++k) total += exp(z[k] - top);",
      "for (int k = 0; k <= K; ++k) total += exp(z[k] - top);"),
    M("block-sum-first-stride-is-the-block", "kernels", FN + "common.cuh",
      "for (int stride = MINRAN_BLOCK / 2; stride > 0;", "for (int stride = MINRAN_BLOCK; stride > 0;"),
    M("bn-launch-one-block-too-many", "kernels", FN + "normalization.py",
      "int(relu), blocks=C)", "int(relu), blocks=C + 1)", nth=0),
    M("pool-launch-one-thread-too-many", "kernels", FN + "pooling.py",
      "threads=out.size)", "threads=out.size + 1)", nth=0),
    # ---- kernels: outputs some element of which is never written -------------------------------
    M("relu-kernel-grad-written-only-where-it-passes", "kernels", FN + "activation.cu",
      "if (i < n) gx[i] = g[i] * T(x[i] > T(0));", "if (i < n && x[i] > T(0)) gx[i] = g[i];"),
    M("sigmoid-kernel-stops-one-short", "kernels", FN + "activation.cu",
      "    if (i >= n) return;\n    T e = exp(", "    if (i >= n - 1) return;\n    T e = exp("),
    M("col2im-kernel-adds-to-what-x-held", "kernels", FN + "conv.cu",
      "    x[index] = sum;", "    x[index] += sum;"),
    M("spatial-norm-launch-one-map-short", "kernels", FN + "attention.py",
      "blocks=N * C)", "blocks=N * C - 1)", nth=0),
    M("pool-launch-one-thread-short", "kernels", FN + "pooling.py",
      "threads=out.size)", "threads=out.size - 1)", nth=0),
    M("bn-grad-launch-one-channel-short", "kernels", FN + "normalization.py",
      "int(training), int(relu), int(add), blocks=C)", "int(training), int(relu), int(add), blocks=C - 1)"),
    M("launcher-rounds-the-blocks-down", "kernels", "minran/cuda/kernels.py",
      "blocks = -(-threads // BLOCK)", "blocks = threads // BLOCK"),
    # ---- kernels: loops over a channel or map that go round once -------------------------------
    M("bn-kernel-mean-loop-runs-once", "kernels", FN + "normalization.cu",
      "for (long long k = threadIdx.x; k < count; k += MINRAN_BLOCK) sum +=",
      "for (long long k = threadIdx.x; k < count && k < MINRAN_BLOCK; k += MINRAN_BLOCK) sum +="),
    M("bn-kernel-grad-sums-loop-runs-once", "kernels", FN + "normalization.cu",
      "for (long long k = threadIdx.x; k < count; k += MINRAN_BLOCK) {",
      "for (long long k = threadIdx.x; k < count && k < MINRAN_BLOCK; k += MINRAN_BLOCK) {", nth=2),
    M("spatial-norm-kernel-sum-loop-runs-once", "kernels", FN + "attention.cu",
      "for (long long i = threadIdx.x; i < HW; i += MINRAN_BLOCK) sum += map[i];",
      "for (long long i = threadIdx.x; i < HW && i < MINRAN_BLOCK; i += MINRAN_BLOCK) sum += map[i];"),
    M("step-kernel-row-loop-runs-once", "kernels", "minran/step.cu",
      "n < N; n += MINRAN_BLOCK)", "n < N && n < MINRAN_BLOCK; n += MINRAN_BLOCK)"),
    # ---- kernels: 64-bit index arithmetic (tests/kernels/test_huge_launches.py) ---------------
    M("global-index-32-bit-product", "kernels", FN + "common.cuh",
      "return (long long)blockIdx.x * blockDim.x + threadIdx.x;",
      "return blockIdx.x * blockDim.x + threadIdx.x;"),
    M("maxpool-kernel-offset-in-plane-32-bit", "kernels", FN + "pooling.cu",
      "T value = plane[(long long)h * W + w];", "T value = plane[h * W + w];"),
    M("maxpool-kernel-winner-offset-32-bit", "kernels", FN + "pooling.cu",
      "&& plane[(long long)h * W + w] == best", "&& plane[h * W + w] == best"),
    M("avgpool-kernel-offset-in-plane-32-bit", "kernels", FN + "pooling.cu",
      "sum += plane[(long long)h * W + w];", "sum += plane[h * W + w];"),
    M("upsample-kernel-row-offset-32-bit", "kernels", FN + "upsample.cu",
      "plane + (long long)ty.i1 * W", "plane + ty.i1 * W"),
    M("upsample-kernel-grad-offset-32-bit", "kernels", FN + "upsample.cu",
      "plane[(long long)oy * Wo + ox]", "plane[oy * Wo + ox]"),
    M("im2col-kernel-bound-32-bit", "kernels", FN + "conv.cu",
      "if (index >= (long long)N * C * kh * kw * Ho * Wo) return;",
      "if (index >= N * C * kh * kw * Ho * Wo) return;"),
    M("col2im-kernel-plane-32-bit", "kernels", FN + "conv.cu",
      "    long long plane = index / ((long long)W * H);\n",
      "    int plane = (int)(index / ((long long)W * H));\n"),
    M("channel-norm-kernel-channel-offset-32-bit", "kernels", FN + "attention.cu",
      "squares += x[first + (long long)c * HW] * x[first + (long long)c * HW];",
      "squares += x[first + c * HW] * x[first + c * HW];"),
    M("spatial-norm-kernel-loop-counter-32-bit", "kernels", FN + "attention.cu",
      "for (long long i = threadIdx.x; i < HW; i += MINRAN_BLOCK) sum += map[i];",
      "for (int i = threadIdx.x; i < HW; i += MINRAN_BLOCK) sum += map[i];"),
    M("step-kernel-row-loop-counter-32-bit", "kernels", "minran/step.cu",
      "for (long long n = threadIdx.x; n < N;", "for (int n = threadIdx.x; n < N;"),
    M("bn-kernel-count-32-bit", "kernels", FN + "normalization.cu",
      "const long long count = (long long)N * HW;", "const long long count = N * HW;", nth=0),
    # ---- kernels: the sign of a zero (tiers.assert_same_bits) --------------------------------
    M("relu-kernel-keeps-negative-zero", "kernels", FN + "activation.cu",
      "x[i] <= T(0) ? T(0) : x[i]", "x[i] < T(0) ? T(0) : x[i]"),
    M("relu-kernel-grad-stopped-as-positive-zero", "kernels", FN + "activation.cu",
      "gx[i] = g[i] * T(x[i] > T(0))", "gx[i] = x[i] > T(0) ? g[i] : T(0)"),
    M("maxpool-kernel-keeps-the-first-of-equal-values", "kernels", FN + "pooling.cu",
      "if (value >= best || value != value)", "if (value > best || value != value)"),
    # ---- emulator: warps, shuffles, atomics, block sizes (warps.cu's correct kernels) -----
    M("warp-sum-first-offset-32", "emulator", "tests/kernels/warps.cu",
      "i < n ? x[i] : T(0);\n    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync",
      "i < n ? x[i] : T(0);\n    for (int offset = 32; offset > 0; offset /= 2) v += __shfl_down_sync", nth=0),
    M("warp-sum-stops-before-offset-1", "emulator", "tests/kernels/warps.cu",
      "i < n ? x[i] : T(0);\n    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync",
      "i < n ? x[i] : T(0);\n    for (int offset = 16; offset > 1; offset /= 2) v += __shfl_down_sync", nth=0),
    M("warp-butterfly-mask-leaves-out-lane-31", "emulator", "tests/kernels/warps.cu",
      "v += __shfl_xor_sync(0xffffffffu, v, mask);", "v += __shfl_xor_sync(0x7fffffffu, v, mask);"),
    M("warp-partial-sum-adds-lanes-that-do-not-exist", "emulator", "tests/kernels/warps.cu",
      "        if (lane + offset < lanes) v += other;", "        v += other;"),
    M("warp-partial-sum-returns-before-the-shuffle", "emulator", "tests/kernels/warps.cu",
      "    T v = i < n ? x[i] : T(0);\n    for (unsigned offset = 16;",
      "    if (i >= n) return;\n    T v = x[i];\n    for (unsigned offset = 16;"),
    M("warp-grid-index-assumes-blocks-of-256", "emulator", "tests/kernels/warps.cu",
      "return (long long)blockIdx.x * blockDim.x * blockDim.y * blockDim.z + thread_in_block();",
      "return (long long)blockIdx.x * 256 + thread_in_block();"),
    M("warp-shared-sum-without-syncwarp", "emulator", "tests/kernels/warps.cu",
      "        if (lane < stride) partial[lane] += partial[lane + stride];\n        __syncwarp();",
      "        if (lane < stride) partial[lane] += partial[lane + stride];"),
    M("atomic-sum-as-a-plain-add", "emulator", "tests/kernels/warps.cu",
      "    atomicAdd(&sum[0], x[i]);", "    sum[0] += x[i];"),
    M("atomic-histogram-as-plain-increments", "emulator", "tests/kernels/warps.cu",
      "if (i < n) atomicAdd(&bins[(int)x[i]], 1);", "if (i < n) bins[(int)x[i]] += 1;"),
    # ---- emulator: its own checks (test_emulator.py's planted faults) ----------------------
    M("emulator-blocks-never-race", "emulator", "minran/cuda/emulator.h",
      "        if (global)\n            for (int j = 0; j < 2; ++j)",
      "        if (false)\n            for (int j = 0; j < 2; ++j)"),
    M("emulator-atomics-race-each-other", "emulator", "minran/cuda/emulator.h",
      "return !(a == READ && b == READ) && !(a == ATOMIC && b == ATOMIC);",
      "return !(a == READ && b == READ);"),
    M("emulator-reads-out-of-bounds-unchecked", "emulator", "minran/cuda/emulator.h",
      "    if (a < r.lo || a + size > r.hi)", "    if (kind != READ && (a < r.lo || a + size > r.hi))"),
    M("emulator-shared-memory-not-poisoned", "emulator", "minran/cuda/emulator.h",
      "memset((void*)regions[i].lo, 0xFF,", "memset((void*)regions[i].lo, 0x00,"),
    M("emulator-partial-warp-sync-orders-the-whole-warp", "emulator", "minran/cuda/emulator.h",
      "            if (mask == existing) {", "            if (true) {"),
    M("emulator-outputs-not-poisoned", "emulator", "minran/cuda/emulator.py",
      "                    e.bytes.fill(e.poison)", "                    e.bytes[:] = e.pristine"),
    M("emulator-one-thread-order", "emulator", "minran/cuda/emulator.py",
      "runs = list(_orders) if len(_orders) > 1 else list(_orders) * 2", "runs = [_orders[0]] * 2"),
    # ---- modes: switches entered more than once (test_behaviour_modes.py) ----------------------
    M("no-grad-keeps-one-previous-state", "modes", "minran/tensor.py",
      "        self._previous.append(_grad_enabled)", "        self._previous = [_grad_enabled]"),
    M("no-grad-exit-turns-gradients-on", "modes", "minran/tensor.py",
      "        _grad_enabled = self._previous.pop()", "        self._previous.pop()\n        _grad_enabled = True"),
    M("counting-macs-inner-block-counts-into-the-outer", "modes", FN + "macs.py",
      "        _counter = {}\n", "        _counter = {} if _counter is None else _counter\n"),
    M("counting-macs-keeps-one-previous-counter", "modes", FN + "macs.py",
      "        self._previous.append(_counter)", "        self._previous = [_counter]"),
    M("kernels-use-restores-only-without-an-error", "modes", "minran/cuda/kernels.py",
      "    previous, _mode = _mode, new_mode\n    try:\n        yield\n    finally:\n        _mode = previous",
      "    previous, _mode = _mode, new_mode\n    yield\n    _mode = previous"),
    M("emulator-orders-restores-only-without-an-error", "modes", "minran/cuda/emulator.py",
      "    previous, _orders = _orders, names\n    try:\n        yield\n    finally:\n        _orders = previous",
      "    previous, _orders = _orders, names\n    yield\n    _orders = previous"),
    M("module-train-sets-only-the-root", "modes", "minran/nn/module.py",
      '        for m in self.modules():\n            object.__setattr__(m, "training", mode)',
      '        object.__setattr__(self, "training", mode)'),
    M("evaluating-gives-back-train-mode-to-all", "modes", "minran/nn/module.py",
      "            for m, mode in modes:\n                m.train(mode)", "            self.train()"),
    M("summary-outside-evaluating", "modes", MOD + "summary.py",
      "    with model.evaluating(), no_grad():", "    with no_grad():"),
    # ---- state: loading what does not fit (test_behaviour_state.py) --------------------------
    M("load-state-writes-before-checking-the-rest", "state", "minran/nn/module.py",
      "            targets.append((target, value))",
      "            target[...] = backend.array_module(target).asarray(value, dtype=target.dtype)"),
    M("load-state-strict-refuses-only-missing-keys", "state", "minran/nn/module.py",
      "if strict and (missing or unexpected):", "if strict and missing:"),
    M("load-state-takes-any-dtype", "state", "minran/nn/module.py",
      'if kind not in "iuf":', "if False:"),
    M("load-state-checks-sizes-not-shapes", "state", "minran/nn/module.py",
      "if tuple(np.shape(value)) != tuple(target.shape):", "if np.size(value) != target.size:"),
    M("sgd-load-checks-momentum-sizes-not-shapes", "state", OPT + "sgd.py",
      "if b is not None and tuple(np.shape(b)) != tuple(p.shape):",
      "if b is not None and np.size(b) != p.size:"),
    M("sgd-load-forgets-nesterov", "state", OPT + "sgd.py",
      'self.nesterov, self.weight_decay = state["nesterov"], state["weight_decay"]',
      'self.weight_decay = state["weight_decay"]'),
    M("sgd-load-into-a-flat-buffer-drops-it", "state", OPT + "sgd.py",
      "            for view, b in zip(self.buffers, buffers):\n                view[...] = b",
      "            pass"),
    # ---- trainer: the epoch log (test_behaviour_epoch_log.py) -------------------------------
    M("epoch-lr-read-after-the-epoch", "trainer", "minran/trainer.py",
      "        train_loss, train_acc, speed = train_epoch(run, bar, steps)\n",
      "        train_loss, train_acc, speed = train_epoch(run, bar, steps)\n    lr = run.optimizer.lr\n"),
    M("epoch-lr-end-one-step-late", "trainer", "minran/trainer.py",
      "lr_end = run.schedule.lr_at(run.iteration - 1)", "lr_end = run.schedule.lr_at(run.iteration)"),
    M("epoch-loss-divided-by-full-batches", "trainer", "minran/trainer.py",
      "    return (totals[TrainingStep.LOSS_SUM] / images,",
      "    return (totals[TrainingStep.LOSS_SUM] / (steps * c.batch_size),"),
    M("epoch-images-counted-as-full-batches", "trainer", "minran/trainer.py",
      "    images = totals[TrainingStep.IMAGES]\n    return (",
      "    images = steps * c.batch_size\n    return ("),
    M("step-accuracy-summed-as-batch-means", "trainer", "minran/step.py",
      "totals[1] += (logits.argmax(axis=1) == labels).sum()",
      "totals[1] += (logits.argmax(axis=1) == labels).mean()"),
    M("step-totals-not-cleared-at-an-epoch", "trainer", "minran/step.py",
      "        self.totals.fill(0)\n", ""),
    # ---- trainer and data: everything random across a resume (test_behaviour_resume.py) ----
    M("estimate-draws-from-the-runs-generator", "trainer", "minran/trainer.py",
      "batches = BatchIterator(run.train_x[:n], run.train_y[:n], n, np.random.default_rng(0),",
      "batches = BatchIterator(run.train_x[:n], run.train_y[:n], n, run.rng,"),
    M("resume-forgets-the-optimiser", "trainer", "minran/trainer.py",
      '        self.optimizer.load_state_dict(state["optimizer"])\n', ""),
    M("resume-forgets-the-schedule", "trainer", "minran/trainer.py",
      '        self.schedule.load_state_dict(state["schedule"])\n', ""),
    M("label-noise-from-an-unseeded-generator", "trainer", "minran/trainer.py",
      "corrupt_labels(train_labels, c.label_noise, len(self.classes), rng)",
      "corrupt_labels(train_labels, c.label_noise, len(self.classes), np.random.default_rng())"),
    M("noise-flips-drawn-unseeded", "data", DATA + "noise.py",
      "flip = rng.random(len(labels)) < noise_rate", "flip = np.random.random(len(labels)) < noise_rate"),
    M("crop-left-offset-is-the-top-one", "data", DATA + "augment.py",
      "left = rng.integers(0, 2 * pad + 1, N)", "left = top"),
    M("flip-by-index-parity", "data", DATA + "augment.py",
      "flip = rng.random(len(batch)) < 0.5", "flip = np.arange(len(batch)) % 2 == 1"),
    M("shuffle-unseeded", "data", DATA + "loader.py",
      "order = self.rng.permutation(len(self.images)) if self.shuffle",
      "order = np.random.permutation(len(self.images)) if self.shuffle"),
    # ==== the GPU step (issue 19): stand-in, cuBLAS plans, flat parameters, totals, graphs ====
    # ---- the stand-in GPU's refusals and ordering checks ------------------------------------
    M("standin-host-read-allowed-in-a-capture", "gpu", "minran/cuda/standin.py",
      "def _host_read(what, array=None):\n    if _state.capture is not None:",
      "def _host_read(what, array=None):\n    if False:"),
    M("standin-host-copy-allowed-in-a-capture", "gpu", "minran/cuda/standin.py",
      '        if _state.capture is not None:\n            raise CaptureError("a copy from the host during',
      '        if False:\n            raise CaptureError("a copy from the host during'),
    M("standin-writes-not-recorded", "gpu", "minran/cuda/standin.py",
      "    for block in writes:\n        block.writer = (stream, stream.issued)", "    pass"),
    M("standin-legacy-stream-orders-non-blocking-ones", "gpu", "minran/cuda/standin.py",
      "or (stream.null and not other.non_blocking)", "or stream.null"),
    M("standin-host-wait-not-recorded", "gpu", "minran/cuda/standin.py",
      "        _order(stream, [array._block], [], what)\n    stream.synced = stream.issued\n",
      "        _order(stream, [array._block], [], what)\n"),
    M("standin-event-wait-orders-nothing", "gpu", "minran/cuda/standin.py",
      "            self.waited[event.stream] = max(self.waited.get(event.stream, 0), event.index)",
      "            pass"),
    M("standin-sealed-pool-served-outside-the-capture", "gpu", "minran/cuda/standin.py",
      "if pool.sealed and _state.capture is None:", "if False:"),
    M("standin-captured-launches-counted-twice", "gpu", "minran/cuda/standin.py",
      "        _state.counts.launches -= during.launches\n", ""),
    M("standin-graph-replay-runs-nothing", "gpu", "minran/cuda/standin.py",
      "            for fn, skip in self.work:\n                if not skip:\n                    fn()",
      "            pass"),
    M("standin-numpy-array-meets-a-device-array", "gpu", "minran/cuda/standin.py",
      "    if isinstance(value, np.ndarray):\n        raise TypeError(f\"Unsupported type {type(value)} in {what}",
      "    if False:\n        raise TypeError(f\"Unsupported type {type(value)} in {what}"),
    M("standin-pool-does-not-round-requests", "gpu", "minran/cuda/standin.py",
      "size = -(-max(nbytes, 1) // POOL_ROUND) * POOL_ROUND", "size = max(nbytes, 1)"),
    # ---- cuBLAS plans (blas.py): leading dimensions, strides, transposes -------------------
    M("blas-plan-leading-dimensions-not-swapped", "gpu", "minran/cuda/blas.py",
      "m=n_cols, n=m_rows, k=a_cols, lda=ldb, stride_a=stride_b, ldb=lda,\n                stride_b=stride_a,",
      "m=n_cols, n=m_rows, k=a_cols, lda=lda, stride_a=stride_a, ldb=ldb,\n                stride_b=stride_b,"),
    M("blas-plan-transposes-not-swapped", "gpu", "minran/cuda/blas.py",
      "transa=OP_T if trans_b else OP_N, transb=OP_T if trans_a else OP_N",
      "transa=OP_T if trans_a else OP_N, transb=OP_T if trans_b else OP_N"),
    M("blas-plan-m-and-n-swapped", "gpu", "minran/cuda/blas.py",
      "m=n_cols, n=m_rows,", "m=m_rows, n=n_cols,"),
    M("blas-leading-dimension-ignores-the-row-stride", "gpu", "minran/cuda/blas.py",
      "ld = max(row_stride if rows > 1 else cols, cols, 1)", "ld = max(cols, 1)"),
    M("blas-shared-operand-of-batch-one-gets-a-stride", "gpu", "minran/cuda/blas.py",
      "if array.ndim == 3 and batch > 1 else 0", "if array.ndim == 3 else 0"),
    M("blas-reference-ignores-beta", "gpu", "minran/cuda/blas.py",
      "c[...] = alpha * product + (beta * c if beta else 0)", "c[...] = alpha * product"),
    M("blas-reference-reach-check-off-by-one", "gpu", "minran/cuda/blas.py",
      "if offset < 0 or last >= flat.size:", "if offset < 0 or last > flat.size:"),
    # ---- flat parameters and the flat SGD step ----------------------------------------------
    M("flat-offsets-recorded-after-the-step", "gpu", OPT + "flat.py",
      "            self.offsets.append(offset)\n            offset += p.size",
      "            offset += p.size\n            self.offsets.append(offset)"),
    M("flat-intact-ignores-the-gradient-slots", "gpu", OPT + "flat.py",
      "return all(p.data is view and p._grad_slot is slot", "return all(p.data is view"),
    M("flat-step-with-a-missing-gradient", "gpu", OPT + "flat.py",
      "            if p.grad is None:\n                return False", "            if p.grad is None:\n                continue"),
    M("flat-hand-set-gradient-not-copied-in", "gpu", OPT + "flat.py",
      "                slot[...] = p.grad.data\n", ""),
    M("flat-packing-copies-no-values", "gpu", OPT + "flat.py",
      "            view[...] = p.data\n", ""),
    M("sgd-flat-first-step-never-flagged", "gpu", OPT + "sgd.py",
      "first = not any(started)", "first = False"),
    M("sgd-flat-loaded-momentum-not-packed", "gpu", OPT + "sgd.py",
      "                    self._flat_buffer[offset:offset + p.size] = b.reshape(-1)\n",
      "                    pass\n"),
    M("sgd-flat-first-buffer-zero", "gpu", OPT + "sgd.py",
      "out_buffer[...] = g", "out_buffer[...] = 0"),
    M("sgd-lr-change-not-sent-to-the-device", "gpu", OPT + "sgd.py",
      'if value != getattr(self, "_lr", None):', 'if getattr(self, "_lr", None) is None:'),
    # ---- the step's totals (step.py, step.cu) -------------------------------------------------
    M("step-kernel-argmax-ties-go-to-the-last", "gpu", "minran/step.cu",
      "if (z[k] > top || (z[k] != z[k] && top == top))", "if (z[k] >= top || (z[k] != z[k] && top == top))"),
    M("step-kernel-argmax-skips-nan", "gpu", "minran/step.cu",
      "if (z[k] > top || (z[k] != z[k] && top == top))", "if (z[k] > top)"),
    M("step-kernel-later-bad-step-overwrites-the-first", "gpu", "minran/step.cu",
      "if (!isfinite(l) && totals[4] < 0) {", "if (!isfinite(l)) {"),
    M("step-kernel-counts-the-step-before-the-check", "gpu", "minran/step.cu",
      "        totals[3] += 1;\n", ""),
    M("step-kernel-correct-of-thread-0-only", "gpu", "minran/step.cu",
      "const long long total = block_sum(correct);", "const long long total = correct + 0 * block_sum(correct);"),
    M("step-kernel-loss-not-times-the-batch", "gpu", "minran/step.cu",
      "totals[0] += (double)(l * T(N));", "totals[0] += (double)l;"),
    M("step-later-bad-step-overwrites-the-first", "gpu", "minran/step.py",
      "bad = (totals[4] < 0) & ~xp.isfinite(loss)", "bad = ~xp.isfinite(loss)"),
    M("progress-keeps-the-pinned-buffer-not-a-copy", "gpu", "minran/step.py",
      "self.latest, self.event = self.host.copy(), None", "self.latest, self.event = self.host, None"),
    # ---- the CUDA graph (graph.py) and the trainer's use of it --------------------------------
    M("graph-captures-without-a-warm-up", "gpu", "minran/graph.py",
      "                    if not self._warmed:", "                    if False:"),
    M("graph-batch-not-copied-into-the-buffers", "gpu", "minran/graph.py",
      "            self.x.set(x, stream=self.stream)\n", ""),
    M("graph-records-in-the-shared-pool", "gpu", "minran/graph.py",
      "with cupy.cuda.using_allocator(self.pool.malloc):", "with cupy.cuda.using_allocator(None):"),
    M("graph-starts-without-waiting-for-the-model", "gpu", "minran/graph.py",
      "        cupy.cuda.runtime.deviceSynchronize()\n", ""),
    M("trainer-graph-for-the-short-last-batch", "gpu", "minran/trainer.py",
      "if self.config.cuda_graph and len(x) == self.config.batch_size:", "if self.config.cuda_graph:"),
    # ---- the launcher's fast binder (kernels.py) ------------------------------------------------
    M("binder-takes-a-float-for-an-int", "gpu", "minran/cuda/kernels.py",
      '(f" and type({a}) is not float" if code == 2', '(f" and type({a}) is not float" if code'),
    M("binder-skips-the-dtype-check", "gpu", "minran/cuda/kernels.py",
      'f"    if type({a}) is not T or {a}.dtype is not k{i} "', 'f"    if type({a}) is not T "'),
    M("binder-skips-the-layout-check", "gpu", "minran/cuda/kernels.py",
      'f"or not {a}.flags.c_contiguous:\\n        return None")',
      'f"or False:\\n        return None")'),
    M("binder-caches-a-float-zero", "gpu", "minran/cuda/kernels.py",
      "    if value == 0 and kind in _FLOATS:\n        return converted\n", ""),
    M("launcher-grid-limit-off-by-one", "gpu", "minran/cuda/kernels.py",
      "if blocks > MAX_BLOCKS:", "if blocks >= MAX_BLOCKS:"),
    # ---- tensor.py: gradient slots and the accumulating-op protocol -------------------------
    M("slot-handed-out-twice-in-one-backward", "gpu", "minran/tensor.py",
      "if self._grad_slot is None or self.grad is not None or self._slot_taken:",
      "if self._grad_slot is None or self.grad is not None:"),
    M("slot-gradient-of-another-array-not-copied-in", "gpu", "minran/tensor.py",
      "            if g is not slot:\n                slot[...] = g\n", ""),
    M("slot-later-gradient-replaces-the-first", "gpu", "minran/tensor.py",
      "            slot += g", "            slot[...] = g"),
    M("engine-drops-the-waiting-gradient", "gpu", "minran/tensor.py",
      "                    pg = partial[i]   # nothing of its own for this input: give it back",
      "                    pass"),
    M("engine-hands-accumulating-ops-nothing", "gpu", "minran/tensor.py",
      "                partial = [grads.pop(id(p), None) if p is not None else None\n"
      "                           for p in node._parents]",
      "                partial = [None for p in node._parents]"),
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
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-rfE", "-p", "no:cacheprovider",
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
    errors = [f"{line.split(' ')[1]} (an error, not a failure)"
              for line in done.stdout.splitlines() if line.startswith("ERROR ")]
    # the first error line pytest printed: shows a mutant that did not even build (a kernel
    # that fails to compile would be "killed" by no test at all)
    why = next((line[1:].strip() for line in done.stdout.splitlines() if line.startswith("E ")), "")
    return "killed", (failed or errors or [f"exit {done.returncode}"])[0], why[:300], seconds


def builds(copy, path):
    """('', '') when every .cu file of the copy (and `path`, a test's .cu file) compiles for
    the emulator; else ('warned', line) when only the emulator's -Werror stops it (an unused
    parameter, a narrowing: CI's emulated tier fails to build, so the mutant is caught), or
    ('rejected', line)."""
    code = "from minran.cuda import kernels\nfor s in kernels.all_sources(): s.module('emulator')\n"
    if path.suffix == ".cu" and "minran" not in path.relative_to(copy).parts:
        code += f"kernels.Source({str(path.with_suffix('.py'))!r}).module('emulator')\n"
    done = subprocess.run([sys.executable, "-c", code],
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
        if any(m.area in ("kernels", "emulator", "gpu") for m in chosen):
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
                unbuilt, why = (builds(copy, path) if path.suffix in (".cu", ".cuh", ".h")
                                else ("", ""))
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
