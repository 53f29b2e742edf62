"""Lesson 12: training, and reading a learning curve.

Files: minran/trainer.py, minran/optim/sgd.py, minran/optim/schedules.py, minran/plots.py,
       minran/functional/loss.py, minran/functional/linear.py, minran/models/network.py,
       minran/models/summary.py, minran/models/resnet.py, minran/functional/loss.cu and
       minran/optim/sgd.cu (the CUDA twins of the loss and the update), minran/run_folder.py
       (what a run's folder promises) and minran/cli.py (how train_cifar.py checks options)
Paper: Sec. 4.1 (SGD, Nesterov 0.9, weight decay 1e-4, lr 0.1 /10 at 64k and 96k).

A tiny Attention-56 learns a synthetic task (is the top or the bottom half of the image
brighter? plus noise) with the same trainer, and the same augmentation, train_cifar.py uses.
Watch train and test accuracy: the test accuracy of the LAST epoch is the result; picking
the best epoch on the test set is cheating.

Why top against bottom, and not left against right: the paper's augmentation mirrors half
the images left to right and keeps their labels. On a left/right task that turns half the
training images into the other class's evidence, and the network learns nothing (test
accuracy stays near chance). Augmentation must not change the answer.

Watch the first epochs too: training accuracy climbs to 0.9 while test accuracy sits at
0.48, the share of one class: every test image gets the same answer. Evaluation uses batch
norm's running statistics, averages over recent batches (momentum 0.1) that lag behind
weights still moving fast; as the learning rate comes down they catch up, and test accuracy
jumps to that of training.
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
    """n noisy grey images; label 0 has a brighter top half, label 1 a brighter bottom."""
    y = rng.integers(0, 2, n)
    x = rng.integers(60, 140, (n, 3, 32, 32))
    x[y == 0, :, :16, :] += 80
    x[y == 1, :, 16:, :] += 80
    return x.clip(0, 255).astype(np.uint8), y


(train_x, train_y), (test_x, test_y) = make(256), make(128)
data = Dataset(train_x, train_y, test_x, test_y, ["top", "bottom"])

out = pathlib.Path(tempfile.mkdtemp()) / "run"
# float64: a run this small is chaotic, and in float32 a change in the last bit of some sum
# (an op adding in another order) moves the epoch at which test accuracy jumps; in float64
# such changes stay far below anything the curve shows.
config = TrainConfig(arch="attention56", dataset="top-vs-bottom", widths=(4, 8, 8, 8), epochs=5,
                     batch_size=32, lr=0.1, schedule="cosine", out=str(out), progress=False,
                     dtype="float64")
# The network the trainer builds: this architecture and these widths, one output per class.
table = build_model(config.arch, widths=config.widths, num_classes=len(data.classes)).summary()
history = train(config, dataset=data)
learning_curves_svg(history, out / "curves.svg")
print("learning curves written to", out / "curves.svg")

# Exercises
# 1. Set lr=1.0: what does the loss column do? And lr=0.001?
# 2. Train with schedule="paper" and epochs=10: at which epochs does the lr drop?
# 3. Make the task left against right (x[..., :16] and x[..., 16:]) and train it with the
#    default augmentation, then with augment=False in the TrainConfig.
