"""Lesson 12: training, and reading a learning curve.

Files: minran/trainer.py, minran/optim/sgd.py, minran/optim/schedules.py, minran/plots.py,
       minran/functional/loss.py, minran/functional/linear.py, minran/models/network.py,
       minran/models/summary.py, minran/models/resnet.py
Paper: Sec. 4.1 (SGD, Nesterov 0.9, weight decay 1e-4, lr 0.1 /10 at 64k and 96k).

A tiny Attention-56 learns a synthetic task (bright-left vs bright-right images, plus
noise) with the same trainer train_cifar.py uses. Watch train and test accuracy: the test
accuracy of the LAST epoch is the result; picking the best epoch on the test set is cheating.
"""
import pathlib
import tempfile

import numpy as np

from minran.data import Dataset
from minran.models import build_model
from minran.plots import learning_curves_svg
from minran.trainer import TrainConfig, train

rng = np.random.default_rng(0)


def make(n):
    y = rng.integers(0, 2, n)
    x = rng.integers(60, 140, (n, 3, 32, 32))
    x[y == 0, :, :, :16] += 80
    x[y == 1, :, :, 16:] += 80
    return x.clip(0, 255).astype(np.uint8), y


(train_x, train_y), (test_x, test_y) = make(256), make(128)
data = Dataset(train_x, train_y, test_x, test_y, ["left", "right"])
build_model("attention56", widths=(4, 8, 8, 8)).summary()

out = pathlib.Path(tempfile.mkdtemp()) / "run"
config = TrainConfig(arch="attention56", widths=(4, 8, 8, 8), epochs=3, batch_size=32, lr=0.05,
                     schedule="cosine", out=str(out), progress=False)
history = train(config, dataset=data)
learning_curves_svg(history, out / "curves.svg")
print("learning curves written to", out / "curves.svg")

# Exercises
# 1. Set lr=1.0: what does the loss column do? And lr=0.001?
# 2. Train with schedule="paper" and epochs=10: at which epochs does the lr drop?
