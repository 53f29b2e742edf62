"""Lesson 7: batch normalisation behaves differently in training and in evaluation.

Files: minran/functional/normalization.py, minran/nn/module.py (buffers, train/eval)
Paper: every residual unit is pre-activation: bn-relu before each convolution (Sec. 3.2).
"""
import numpy as np

from minran import Tensor, nn

rng = np.random.default_rng(0)
bn = nn.BatchNorm2d(3)
x = Tensor((rng.standard_normal((16, 3, 4, 4)) * 5 + 10).astype(np.float32))

y = bn(x)   # training: the batch's own statistics
print("train mode: per-channel mean", y.data.mean(axis=(0, 2, 3)).round(4),
      "std", y.data.std(axis=(0, 2, 3)).round(4))
print("running mean moved 10% toward the batch mean:", bn.running_mean.round(3))

for _ in range(50):
    bn(x)
bn.eval()   # evaluation: the running statistics, so one image's output does not depend on others
single = bn(Tensor(x.data[:1]))
print("eval mode on one image works; running var (unbiased) =", bn.running_var.round(2))
print("state_dict keys:", list(bn.state_dict()))

# Exercises
# 1. Put bn back in train mode and feed a batch of one 1x1 image: read the error.
# 2. normalization.py computes the variance in two passes. Try E[x^2] - E[x]^2 in float32 on
#    x = 1e4 + noise and compare.
