"""Lesson 7: batch normalisation behaves differently in training and in evaluation.

Files: minran/functional/normalization.py, minran/nn/module.py (buffers, train/eval),
       minran/functional/normalization.cu (its CUDA twin, with the ReLU fused in),
       minran/reference/normalization.py (the plain version: the textbook, channel by channel)
Paper: every residual unit is pre-activation: bn-relu before each convolution (Sec. 3.2).
"""
import numpy as np

import minran.functional as F
from minran import Tensor, nn, reference

rng = np.random.default_rng(0)
bn = nn.BatchNorm2d(3)
x = Tensor((rng.standard_normal((16, 3, 4, 4)) * 5 + 10).astype(np.float32))

y = bn(x)   # training: the batch's own statistics
print("train mode: per-channel mean", y.data.mean(axis=(0, 2, 3)).round(4),
      "std", y.data.std(axis=(0, 2, 3)).round(4))
batch_mean = x.data.mean(axis=(0, 2, 3), dtype=np.float64)
print("the batch's mean:", batch_mean.round(3))
print("running mean moved 10% of the way there from 0 (momentum 0.1):", bn.running_mean.round(3))

for _ in range(50):
    bn(x)
bn.eval()   # evaluation: the running statistics, so one image's output does not depend on others
single = bn(Tensor(x.data[:1]))
print("eval mode on one image works; running var (unbiased) =", bn.running_var.round(2))
print("state_dict keys:", list(bn.state_dict()))

# The backward, plain and fast. Through xhat = (x - mean) / std, the gradient reaching x
# needs two sums over the batch of the gradient reaching xhat (gxhat = g * w):
#     gx = (n * gxhat - sum(gxhat) - xhat * sum(gxhat * xhat)) / (n * std)
# The last two terms are there because the mean and the std depend on every x of the
# channel. minran/reference/normalization.py writes this plainly, channel by channel.
# batch_norm gets the same two sums for free from the bias and weight gradients it computes
# anyway, never stores xhat (it rebuilds x - mean one slice of the batch at a time), and
# writes gx as g * w / std + (x - mean) * k + c with k and c per channel (slice by slice on
# every core: lesson 19). Both must agree:
x64 = Tensor(x.data.astype(np.float64), requires_grad=True)
w64 = Tensor(rng.standard_normal(3) + 1, requires_grad=True)
b64 = Tensor(rng.standard_normal(3), requires_grad=True)
g = rng.standard_normal(x64.shape)
F.batch_norm(x64, w64, b64, None, None, training=True).backward(Tensor(g))
plain, plain_w, plain_b = reference.normalization.batch_norm_backward(g, x64.data, w64.data, b64.data,
                                                                      training=True)
print("fast vs plain backward, largest difference:", np.abs(x64.grad.data - plain).max())
print("weight and bias gradients agree too:",
      np.allclose(w64.grad.data, plain_w) and np.allclose(b64.grad.data, plain_b))
# The forward folds normalise-then-scale into one multiply and one add per value:
# (x - mean) / std * w + b = x * a + c with a = w / std and c = b - mean * a.
y64 = F.batch_norm(Tensor(x64.data), w64, b64, None, None, training=True).data
plain_y = reference.normalization.batch_norm(x64.data, w64.data, b64.data, None, None, training=True)
print("x * a + c == the plain formula:", np.allclose(y64, plain_y))
assert np.allclose(x64.grad.data, plain, rtol=1e-10, atol=1e-12)

# Exercises
# 0. Write the backward yourself: fill in lessons/exercises/07_batch_norm_backward.py, then
#    run `python -m lessons.check 07` (from the repository's root).
# 1. Put bn back in train mode and feed a batch of one 1x1 image: read the error.
# 2. normalization.py computes the variance in two passes. Try E[x^2] - E[x]^2 in float32 on
#    x = 1e4 + noise and compare.
