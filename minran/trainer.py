"""Training a network on CIFAR: the paper's recipe, a log, checkpoints that resume exactly.

`train(config)` is what `train_cifar.py` and the experiment runner call. Each epoch it
trains, evaluates the test set, appends a row to `log.csv` and replaces `checkpoint.pkl`
atomically (write to a temporary name, then rename), so an interruption at any moment
leaves the last finished epoch usable by `--resume`.
"""
import csv
import json
import math
import os
import pathlib
import pickle
import sys
import time
from dataclasses import asdict, dataclass, fields

import numpy as np

from . import backend
from . import functional as F
from .data import BatchIterator, corrupt_labels, load, normalize
from .data.augment import channel_stats, pixel_mean
from .models import build_model
from .nn.init import manual_seed
from .optim import SGD, CosineSchedule, MultiStepSchedule
from .tensor import Tensor, no_grad

# The paper (Sec. 4.1): batch 64, lr 0.1 divided by 10 at 64k and 96k iterations, 160k in all.
PAPER_ITERATIONS, PAPER_MILESTONES = 160_000, (64_000, 96_000)


@dataclass
class TrainConfig:
    arch: str = "attention92"
    dataset: str = "cifar10"
    data_dir: str = None
    epochs: int = None            # None: as many as the schedule's iterations need
    batch_size: int = 64
    lr: float = 0.1
    schedule: str = "paper"       # paper | step | cosine
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    subset: int = None            # train on the first N training images (quick runs)
    test_subset: int = None
    seed: int = 0
    out: str = "runs/cifar"
    device: str = "cpu"
    dtype: str = "float32"
    label_noise: float = 0.0
    width: int = 1
    widths: tuple = None          # explicit channel widths (small test and lesson networks)
    residual: bool = True
    activation: str = "mixed"
    mask: str = "encoder-decoder"
    mean: str = "channel"         # channel | pixel (the paper's per-pixel mean) | channel-std
    augment: bool = True
    eval_batch_size: int = 500
    progress: bool = True

    @classmethod
    def from_dict(cls, values):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def parse_widths(text):
    """'8,32,64,128' -> (8, 32, 64, 128): the --widths option of the command lines."""
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        widths = ()
    if len(widths) not in (4, 5) or min(widths) < 1:
        raise ValueError(f"--widths: expected 4 (or 5) positive comma-separated channel counts "
                         f"stem,stage1,stage2,stage3 such as 8,32,64,128, got {text!r}")
    return widths


def plan(config, train_size):
    """Iterations per epoch, epochs, and the lr milestones (in iterations) for the run."""
    per_epoch = math.ceil(train_size / config.batch_size)
    if config.epochs is None:
        # The paper's 160k iterations (at batch 64, about 205 epochs of 50k images).
        epochs = math.ceil(PAPER_ITERATIONS * 64 / config.batch_size / per_epoch)
    else:
        epochs = config.epochs
    total = epochs * per_epoch
    if config.schedule == "paper" and config.epochs is None:   # the paper's own iterations
        milestones = [round(m * 64 / config.batch_size) for m in PAPER_MILESTONES]
    elif config.schedule == "paper":  # shorter runs: 64k / 160k = 0.4 and 96k / 160k = 0.6
        milestones = [round(total * m / PAPER_ITERATIONS) for m in PAPER_MILESTONES]
    elif config.schedule == "step":
        milestones = [total // 2, total * 3 // 4]
    elif config.schedule == "cosine":
        milestones = []
    else:
        raise ValueError(f"unknown schedule {config.schedule!r}: use paper, step or cosine")
    return per_epoch, epochs, total, milestones


class Run:
    """Everything a training run holds: data, model, optimiser, schedule, history."""

    def __init__(self, config, dataset=None):
        self.config = c = config
        dtype = np.dtype(c.dtype)
        data = dataset if dataset is not None else load(c.dataset, c.data_dir)
        self.classes = data.classes
        rng = np.random.default_rng(c.seed)
        train_images, train_labels = data.train_images, data.train_labels
        if c.subset:
            train_images, train_labels = train_images[:c.subset], train_labels[:c.subset]
        test_images, test_labels = data.test_images, data.test_labels
        if c.test_subset:
            test_images, test_labels = test_images[:c.test_subset], test_labels[:c.test_subset]
        if c.label_noise:
            train_labels = corrupt_labels(train_labels, c.label_noise, len(self.classes), rng)
        # Normalisation statistics come from the training images only.
        if c.mean == "pixel":
            mean, std = pixel_mean(train_images), None
        else:
            mean, std = channel_stats(train_images)
            std = std if c.mean == "channel-std" else None
        self.mean, self.std = mean, std
        self.train_x = normalize(train_images, mean, std, dtype)
        self.test_x = normalize(test_images, mean, std, dtype)
        self.train_y, self.test_y = train_labels, test_labels
        self.rng = rng

        manual_seed(c.seed)
        self.model = build_model(c.arch, num_classes=len(self.classes),
                                 in_channels=self.train_x.shape[1], width=c.width,
                                 residual=c.residual, activation=c.activation, mask=c.mask,
                                 widths=tuple(c.widths) if c.widths else None)
        self.model.to(device=c.device, dtype=dtype)
        self.optimizer = SGD(self.model.parameters(), lr=c.lr, momentum=c.momentum,
                             nesterov=c.nesterov and c.momentum > 0, weight_decay=c.weight_decay)
        self.per_epoch, self.epochs, self.total, milestones = plan(c, len(self.train_x))
        if c.schedule == "cosine":
            self.schedule = CosineSchedule(self.optimizer, c.lr, self.total)
        else:
            self.schedule = MultiStepSchedule(self.optimizer, c.lr, milestones)
        self.epoch, self.history = 0, []

    # ---- checkpoints --------------------------------------------------------------------
    def state(self):
        return {"config": asdict(self.config), "epoch": self.epoch, "history": self.history,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(),
                "rng": self.rng.bit_generator.state, "classes": self.classes,
                "mean": self.mean, "std": self.std}

    def load_state(self, state):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.rng.bit_generator.state = state["rng"]
        self.epoch, self.history = state["epoch"], list(state["history"])


def save_atomic(path, write):
    """Write through a temporary file and rename, so `path` is always whole or absent."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def save_checkpoint(path, state):
    def write(tmp):
        with open(tmp, "wb") as f:
            pickle.dump(state, f, protocol=pickle.HIGHEST_PROTOCOL)
    save_atomic(path, write)


def load_checkpoint(path):
    """Checkpoints are pickles: load only those you made or trust."""
    with open(path, "rb") as f:
        return pickle.load(f)


def write_log(path, history):
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)
    save_atomic(path, write)


# ---- the loops ------------------------------------------------------------------------------
def evaluate(model, images, labels, batch_size=500, device="cpu"):
    """Mean loss and accuracy over a whole set, in eval mode, without a graph."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    batches = BatchIterator(images, labels, batch_size, rng=None, shuffle=False, device=device)
    with no_grad():
        for x, y in batches:
            logits = model(x)
            loss_sum += float(F.cross_entropy(logits, y).data) * len(y)
            correct += int((logits.data.argmax(axis=1) == y).sum())
    model.train(was_training)
    return loss_sum / len(labels), correct / len(labels)


def train_epoch(run, bar=None):
    c, model, opt = run.config, run.model, run.optimizer
    model.train()
    batches = BatchIterator(run.train_x, run.train_y, c.batch_size, run.rng, shuffle=True,
                            augment=c.augment, device=c.device)
    xp = backend.cupy if c.device == "gpu" else np
    loss_sum, correct, seen = xp.zeros((), np.float64), xp.zeros((), np.int64), 0
    start = time.perf_counter()
    for step, (x, y) in enumerate(batches):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        run.schedule.step()
        # Kept on the device: reading a number would wait for the GPU every step.
        loss_sum += loss.data * len(y)
        correct += (logits.data.argmax(axis=1) == y).sum()
        seen += len(y)
        if bar is not None and (step % 10 == 9 or step == len(batches) - 1):
            elapsed = time.perf_counter() - start
            bar.set_postfix(loss=f"{float(loss_sum) / seen:.3f}", acc=f"{float(correct) / seen:.3f}",
                            img_s=f"{seen / elapsed:.0f}", lr=f"{opt.lr:.3g}", refresh=False)
            bar.update(step + 1 - bar.n)
    return float(loss_sum) / seen, float(correct) / seen, seen / (time.perf_counter() - start)


def train(config, dataset=None, resume=None, log=print):
    """Train to the end of the schedule; returns the history (one dict per epoch)."""
    from tqdm import tqdm
    out = pathlib.Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    run = Run(config, dataset)
    if resume is not None:  # a checkpoint's path or its loaded state
        run.load_state(load_checkpoint(resume) if isinstance(resume, (str, os.PathLike)) else resume)
        log(f"resumed after epoch {run.epoch}")
    ckpt = out / "checkpoint.pkl"
    log(f"{config.arch} on {config.dataset} ({len(run.train_x)} train / {len(run.test_x)} test "
        f"images, {run.model.num_parameters():,} parameters), {run.epochs} epochs x "
        f"{run.per_epoch} iterations, device {config.device}, {config.dtype}")
    try:
        while run.epoch < run.epochs:
            started = time.perf_counter()
            lr = run.optimizer.lr
            with tqdm(total=run.per_epoch, desc=f"epoch {run.epoch + 1}/{run.epochs}",
                      disable=not config.progress, leave=False, file=sys.stderr) as bar:
                train_loss, train_acc, speed = train_epoch(run, bar)
            test_loss, test_acc = evaluate(run.model, run.test_x, run.test_y,
                                           config.eval_batch_size, config.device)
            run.epoch += 1
            row = {"epoch": run.epoch, "train_loss": round(train_loss, 5),
                   "train_acc": round(train_acc, 5), "test_loss": round(test_loss, 5),
                   "test_acc": round(test_acc, 5), "lr": lr, "images_per_s": round(speed, 1),
                   "seconds": round(time.perf_counter() - started, 2)}
            run.history.append(row)
            save_checkpoint(ckpt, run.state())
            write_log(out / "log.csv", run.history)
            log(f"epoch {run.epoch:>3}/{run.epochs}  train loss {train_loss:.4f} acc "
                f"{train_acc:.4f}  test loss {test_loss:.4f} acc {test_acc:.4f}  lr {lr:.3g}  "
                f"{speed:.0f} img/s  {row['seconds']:.1f}s")
    except KeyboardInterrupt:
        where = f"{ckpt} (after epoch {run.epoch})" if run.epoch else "no checkpoint yet"
        log(f"interrupted: the last finished epoch is saved in {where}; "
            f"continue with --resume {ckpt}")
        raise
    final = run.history[-1]
    result = {"arch": config.arch, "dataset": config.dataset, "epochs": run.epoch,
              "final_test_acc": final["test_acc"], "final_test_loss": final["test_loss"],
              "note": "accuracy of the last epoch on the test set (never the best epoch)",
              "config": asdict(config)}
    save_atomic(out / "result.json", lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    log(f"final test accuracy (last epoch): {final['test_acc']:.4f}  -> {out / 'result.json'}")
    return run.history
