"""Lesson 15: training with the trainer, reading a learning curve, and looking at the masks.

Files: minran/trainer.py, minran/optim/schedules.py, minran/plots.py, minran/visualize.py,
       minran/models/resnet.py,
       minran/functional/loss.cu and minran/optim/sgd.cu (the CUDA twins of the loss and
       the update), minran/run_folder.py (what a run's folder promises) and minran/cli.py
       (how train_cifar.py checks options)
Paper: Sec. 4.1 (SGD, Nesterov 0.9, weight decay 1e-4, lr 0.1 /10 at 64k and 96k).

A tiny Attention-56 learns a synthetic task (is the top or the bottom half of the image
brighter? plus noise) with the same trainer, and the same augmentation, train_cifar.py uses:
the loop of lesson 14, with a learning-rate schedule (optim/schedules.py), an evaluation
after every epoch, a log, a checkpoint and a result file around it. (minran/models/resnet.py
is the same stem, units and head without attention modules: the paper's baseline.)
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

Then the masks: where, in the trained network, does each stage's mask put its weight?
"""
import os
import pathlib

import numpy as np

from minran import Tensor
from minran.data import Dataset
from minran.models import build_model
from minran.plots import learning_curves_svg
from minran.trainer import Run, TrainConfig, load_checkpoint, train
from minran.visualize import render, stage_masks

OUT = pathlib.Path(os.environ.get("MINRAN_LESSONS_OUT") or pathlib.Path(__file__).parent / "out")

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

out = OUT / "15_run"   # the run's log.csv, checkpoint.pkl and result.json, replaced each time
# float64: a run this small is chaotic, and in float32 a change in the last bit of some sum
# (an op adding in another order) moves the epoch at which test accuracy jumps; in float64
# such changes stay far below anything the curve shows.
config = TrainConfig(arch="attention56", dataset="top-vs-bottom", widths=(4, 8, 8, 8), epochs=5,
                     batch_size=32, lr=0.1, schedule="cosine", out=str(out), progress=False,
                     dtype="float64")
# The network the trainer builds: this architecture and these widths, one output per class.
table = build_model(config.arch, widths=config.widths, num_classes=len(data.classes)).summary()
history = train(config, dataset=data)
learning_curves_svg(history, OUT / "15_learning_curves.svg", title="lesson 15: top against bottom")
print("learning curves written to", OUT / "15_learning_curves.svg")

# The masks. stage_masks (minran/visualize.py) runs the test images through a network and
# returns, per stage, the mean over channels of that stage's masks, at the image's size.
# For each test image: the mean mask on its brighter half minus that on its darker half.
# The untrained network (the same seed, the weights the run started from) is the control.
run = Run(config, dataset=data)   # the run as it began: its normalised test images, its start


def half_difference(model):
    """Per stage: (mean over test images of mask(brighter half) - mask(darker half), the
    share of test images where that is positive)."""
    model.eval()
    _, maps = stage_masks(model, Tensor(run.test_x))
    top_brighter = test_y == 0
    result = []
    for m in maps:
        top, bottom = m[:, :16].mean(axis=(1, 2)), m[:, 16:].mean(axis=(1, 2))
        difference = np.where(top_brighter, top - bottom, bottom - top)
        result.append((float(difference.mean()), float((difference > 0).mean())))
    return result


untrained = half_difference(run.model)
run.model.load_state_dict(load_checkpoint(out / "checkpoint.pkl")["model"])   # the trained weights
trained = half_difference(run.model)
print("mask on the brighter half minus mask on the darker half, mean over the test images"
      " (and the share of images where it is positive):")
for stage, (before, after) in enumerate(zip(untrained, trained), 1):
    print(f"  stage {stage}: untrained {before[0]:+.4f} ({before[1]:.0%}), trained {after[0]:+.4f} "
          f"({after[1]:.0%})")
# What this shows, and no more: untrained, no stage prefers either half by more than a few
# thousandths. Trained, stage 1's mask is lower on the brighter half of every test image, so
# with H = (1 + M) * T it weights the darker half's trunk features more; stages 2 and 3 show
# no consistent preference. Which half is "the informative one" is not clear-cut in this
# task: the answer is a comparison, and both halves take part in it. And this is one seeded
# run of a tiny network; exercise 4 asks whether other seeds agree.

pictures = OUT / "15_masks"
names = render(run.model, test_x[:8], run.test_x[:8], test_y[:8], data.classes, pictures)
print(f"{len(names)} test images with their masks over them (stage 1, 2, 3; red = high):",
      pictures / "index.md")

# Exercises
# 1. Set lr=1.0: what does the loss column do? And lr=0.001? Look at the curves each time.
# 2. Train with schedule="paper" and epochs=10: at which epochs does the lr drop?
# 3. Make the task left against right (x[..., :16] and x[..., 16:]) and train it with the
#    default augmentation, then with augment=False in the TrainConfig.
# 4. Train with seed=1 and seed=2 in the TrainConfig: do the masks' preferences of the
#    printed table hold? What would you need to claim that attention "looks at" something?
