"""Training a network on CIFAR: the paper's recipe, a log, checkpoints that resume exactly.

`train(config)` is what `train_cifar.py` and the experiment runner call. Each epoch it
trains, evaluates the test set, appends a row to `log.csv` and replaces `checkpoint.pkl`
atomically (write to a temporary name, then rename), so an interruption at any moment
leaves the last finished epoch usable by `--resume`.
"""
import contextlib
import copy
import csv
import itertools
import json
import math
import os
import pathlib
import pickle
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, fields

import numpy as np

from . import backend
from . import functional as F
from .data import BatchIterator, DataError, corrupt_labels, load, normalize
from .data.augment import channel_stats, pixel_mean
from .models import build_model
from .nn.init import manual_seed
from .optim import SGD, CosineSchedule, MultiStepSchedule
from .tensor import no_grad

# The paper (Sec. 4.1): batch 64, lr 0.1 divided by 10 at 64k and 96k iterations, 160k in all.
PAPER_ITERATIONS, PAPER_MILESTONES, PAPER_BATCH = 160_000, (64_000, 96_000), 64
RUN_FILES = ("checkpoint.pkl", "log.csv", "result.json")


class TrainError(RuntimeError):
    """A run that cannot start or go on; the message names the option or file and the fix."""


class CheckpointError(TrainError):
    pass


@dataclass
class TrainConfig:
    arch: str = "attention92"
    dataset: str = "cifar10"
    data_dir: str = None
    epochs: int = None            # None: the paper's 160k iterations (at batch 64)
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
    """(iterations per epoch, epochs, iterations in all, lr milestones in iterations).

    Without `epochs` the run is the paper's: 160,000 iterations at batch 64 (as many images
    at other batch sizes), which is no whole number of epochs: the last epoch stops part way,
    at exactly that iteration. With `epochs` it is epochs x iterations per epoch. The paper's
    schedule divides the lr by 10 at 40% and 60% of the run (64k and 96k of 160k)."""
    per_epoch = math.ceil(train_size / config.batch_size)
    if config.epochs is None:
        total = round(PAPER_ITERATIONS * PAPER_BATCH / config.batch_size)
        epochs = math.ceil(total / per_epoch)
    else:
        epochs = config.epochs
        total = epochs * per_epoch
    return per_epoch, epochs, total, milestones(config.schedule, total)


def milestones(schedule, total):
    if schedule == "paper":
        return [round(total * m / PAPER_ITERATIONS) for m in PAPER_MILESTONES]
    if schedule == "step":
        return [total // 2, total * 3 // 4]
    if schedule == "cosine":
        return []
    raise ValueError(f"unknown schedule {schedule!r}: use paper, step or cosine")


def check_labels(labels, num_classes, what):
    """Labels outside 0..K-1 are an error here, at load, not an index error inside the loss."""
    labels = np.asarray(labels)
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{what}: {int(bad.sum())} labels lie outside the {num_classes} classes "
                        f"0..{num_classes - 1} (the first, image {i}, has label {labels[i]}); "
                        f"fix the labels or the list of classes")


def _take(images, labels, n, option, what):
    if n is None:
        return images, labels
    if n < 1 or n > len(images):
        raise TrainError(f"{option} {n}: must be between 1 and the {len(images):,} {what} images")
    return images[:n], labels[:n]


class Run:
    """Everything a training run holds: data, model, optimiser, schedule, history."""

    def __init__(self, config, dataset=None):
        self.config = c = config
        dtype = np.dtype(c.dtype)
        data = dataset if dataset is not None else load(c.dataset, c.data_dir)
        self.classes = data.classes
        check_labels(data.train_labels, len(self.classes), "the training labels")
        check_labels(data.test_labels, len(self.classes), "the test labels")
        rng = np.random.default_rng(c.seed)
        train_images, train_labels = _take(data.train_images, data.train_labels, c.subset,
                                           "--subset", "training")
        test_images, test_labels = _take(data.test_images, data.test_labels, c.test_subset,
                                         "--test-subset", "test")
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
        self.per_epoch, self.epochs, self.total, _ = plan(c, len(self.train_x))
        self._make_schedule(self.total)
        self.epoch, self.history = 0, []

    def _make_schedule(self, total):
        """The lr schedule planned over `total` iterations. A run extended with more epochs
        keeps the schedule it was planned with: its extra epochs go on at the final lr."""
        c = self.config
        self.schedule_total = total
        if c.schedule == "cosine":
            self.schedule = CosineSchedule(self.optimizer, c.lr, total)
        else:
            self.schedule = MultiStepSchedule(self.optimizer, c.lr, milestones(c.schedule, total))

    @property
    def iteration(self):
        return self.schedule.iteration

    # ---- checkpoints --------------------------------------------------------------------
    def state(self):
        return {"config": asdict(self.config), "epoch": self.epoch, "history": self.history,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(), "schedule_total": self.schedule_total,
                "plan": {"per_epoch": self.per_epoch, "epochs": self.epochs, "total": self.total},
                "rng": self.rng.bit_generator.state, "classes": self.classes,
                "mean": self.mean, "std": self.std}

    def load_state(self, state, path="the checkpoint"):
        load_weights(self.model, state, path)
        self._make_schedule(state.get("schedule_total", self.total))
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.rng.bit_generator.state = state["rng"]
        self.epoch, self.history = state["epoch"], list(state["history"])
        if self.config.epochs is not None:  # whole epochs from here (after a paper run's short last one)
            self.total = self.iteration + (self.epochs - self.epoch) * self.per_epoch


def load_weights(model, state, path="the checkpoint"):
    """The checkpoint's weights into the model, or one short line saying why they do not fit
    (not the model's whole list of parameter names)."""
    try:
        model.load_state_dict(state["model"])
    except (KeyError, ValueError) as error:
        own = set(model.state_dict())
        saved = set(state["model"])
        missing, unexpected = sorted(own - saved), sorted(saved - own)
        if missing or unexpected:
            detail = (f"{len(missing)} of the model's {len(own)} weights are missing"
                      + (f" (first {missing[0]!r})" if missing else "")
                      + f" and {len(unexpected)} are unknown to it"
                      + (f" (first {unexpected[0]!r})" if unexpected else ""))
        else:
            detail = str(error).split("\n")[0][:200]
        arch = state.get("config", {}).get("arch", "?")
        raise CheckpointError(
            f"{path}: its weights do not fit its architecture {arch}: {detail}. The file is "
            f"damaged or was written by another version of minran; use another checkpoint "
            f"or start a new run") from None


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


CHECKPOINT_KEYS = ("config", "epoch", "history", "model", "optimizer", "schedule", "rng")


def load_checkpoint(path):
    """A checkpoint's state, or CheckpointError saying in one line what is wrong with the file.
    Checkpoints are pickles: load only those you made or trust."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; give the checkpoint.pkl of a run "
                              f"(it is written into the run's --out folder after each epoch)")
    try:
        with open(path, "rb") as f:
            state = pickle.load(f)
    except Exception as error:  # EOFError, UnpicklingError, ... : a truncated or foreign file
        raise CheckpointError(f"{path}: not a whole checkpoint ({type(error).__name__}: "
                              f"{str(error)[:120]}); it is truncated or damaged: use an intact "
                              f"copy, or start a new run") from None
    if not isinstance(state, dict) or any(k not in state for k in CHECKPOINT_KEYS):
        raise CheckpointError(f"{path}: a pickle, but not a minran checkpoint (it lacks "
                              f"{', '.join(CHECKPOINT_KEYS)}); give a run's checkpoint.pkl")
    return state


def write_log(path, history):
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            # Every row's columns: a run resumed from an older checkpoint has fewer in its
            # first rows (left empty there).
            columns = list(dict.fromkeys(key for row in history for key in row))
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(history)
    save_atomic(path, write)


def existing_run_files(out):
    """The files of an earlier run in `out` (checkpoint, log, result), by name."""
    return [name for name in RUN_FILES if (pathlib.Path(out) / name).exists()]


def check_writable(out):
    """Make `out` and write a file in it now, so that a folder that cannot take the run's
    files fails before training, not after the first epoch."""
    out = pathlib.Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise TrainError(f"--out {out}: cannot write there ({type(error).__name__}: "
                         f"{error.strerror or error}); choose a folder you can write to") from None


def clean_lr(lr):
    """0.1 * 0.1 is 0.010000000000000002 in floating point: log it as 0.01."""
    return float(f"{lr:.10g}")


def duration(seconds):
    """A rough human duration: '45 s', '3 min 20 s', '5.2 h', '3.1 days', '2.4 weeks'."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {seconds % 60:.0f} s"
    for unit, size in (("weeks", 7 * 86400), ("days", 86400), ("h", 3600)):
        if seconds >= 2 * size or unit == "h":
            return f"{seconds / size:.1f} {unit}"


# ---- the loops ------------------------------------------------------------------------------
def _sync(array):
    return float(array)  # reading one number waits for the GPU


def estimate_seconds(run):
    """Seconds the rest of the run should take here, from three training steps (the first
    one a warm-up; augmentation included) and one test batch, on a throwaway copy of the
    model and with a random generator of its own: the run itself is untouched."""
    c = run.config
    model = copy.deepcopy(run.model)
    opt = SGD(model.parameters(), lr=c.lr, momentum=c.momentum,
              nesterov=c.nesterov and c.momentum > 0, weight_decay=c.weight_decay)
    n = min(c.batch_size, len(run.train_x))
    batches = BatchIterator(run.train_x[:n], run.train_y[:n], n, np.random.default_rng(0),
                            augment=c.augment, device=c.device)
    model.train()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        (x, y), = batches
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        _sync(loss.data)
        times.append(time.perf_counter() - start)
    step = min(times[1:]) * c.batch_size / n
    m = min(c.batch_size, len(run.test_x))
    model.eval()
    with no_grad():
        start = time.perf_counter()
        (x, _), = BatchIterator(run.test_x[:m], run.test_y[:m], m, rng=None, shuffle=False,
                                device=c.device)
        _sync(model(x).data.sum())
        per_test_image = (time.perf_counter() - start) / m
    epochs_left = run.epochs - run.epoch
    return step * (run.total - run.iteration) + per_test_image * len(run.test_x) * epochs_left


def evaluate(model, images, labels, batch_size=500, device="cpu", progress=False):
    """Mean loss and accuracy over a whole set, in eval mode, without a graph."""
    from tqdm import tqdm
    modes = [(m, m.training) for m in model.modules()]   # each module's own, given back
    model.eval()
    loss_sum, correct = 0.0, 0
    batches = BatchIterator(images, labels, batch_size, rng=None, shuffle=False, device=device)
    try:
        with no_grad():
            for x, y in tqdm(batches, desc="testing", disable=not progress, leave=False,
                             file=sys.stderr):
                logits = model(x)
                loss_sum += float(F.cross_entropy(logits, y).data) * len(y)
                correct += int((logits.data.argmax(axis=1) == y).sum())
    finally:
        for m, mode in modes:
            m.train(mode)
    return loss_sum / len(labels), correct / len(labels)


def train_epoch(run, bar=None, steps=None):
    """One pass over the shuffled training set, or its first `steps` batches (the paper's
    last epoch stops part way, at iteration 160,000)."""
    c, model, opt = run.config, run.model, run.optimizer
    model.train()
    batches = BatchIterator(run.train_x, run.train_y, c.batch_size, run.rng, shuffle=True,
                            augment=c.augment, device=c.device)
    steps = len(batches) if steps is None else min(steps, len(batches))
    xp = backend.cupy if c.device == "gpu" else np
    loss_sum, correct, seen = xp.zeros((), np.float64), xp.zeros((), np.int64), 0
    start = time.perf_counter()
    for step, (x, y) in enumerate(itertools.islice(batches, steps)):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        lr = opt.lr
        opt.step()
        run.schedule.step()  # after the step: it sets the lr of the next iteration
        # Kept on the device: reading a number would wait for the GPU every step.
        loss_sum += loss.data * len(y)
        correct += (logits.data.argmax(axis=1) == y).sum()
        seen += len(y)
        if bar is not None and (step % 10 == 9 or step == steps - 1):
            elapsed = time.perf_counter() - start
            bar.set_postfix(loss=f"{float(loss_sum) / seen:.3f}", acc=f"{float(correct) / seen:.3f}",
                            img_s=f"{seen / elapsed:.0f}", lr=f"{lr:.3g}", refresh=False)
            bar.update(step + 1 - bar.n)
    return float(loss_sum) / seen, float(correct) / seen, seen / (time.perf_counter() - start)


def train(config, dataset=None, resume=None, log=print, resumed_from=None):
    """Train to the end of the plan; returns the history (one dict per epoch).

    `resume` is a checkpoint's path or its loaded state; `config` may differ from the
    checkpoint's only where that is safe (train_cifar.py checks): device, data folder,
    progress, the output folder, and more epochs."""
    out = pathlib.Path(config.out)
    check_writable(out)
    run = Run(config, dataset)
    if resume is not None:
        if isinstance(resume, (str, os.PathLike)):
            resumed_from, resume = resumed_from or str(resume), load_checkpoint(resume)
        run.load_state(resume, resumed_from or "the checkpoint")
        log(f"resumed after epoch {run.epoch} (iteration {run.iteration:,})")
    first_epoch = run.epoch
    ckpt = out / "checkpoint.pkl"
    if run.iteration >= run.total:
        raise TrainError(f"{resumed_from or 'the checkpoint'}: its run has already trained all its "
                         f"{run.epochs} epochs ({run.total:,} iterations); pass a larger --epochs "
                         f"to extend it, or --eval-only to test it")
    cpu = config.device == "cpu"
    with backend.cpu_blas_threads(1) if cpu else contextlib.nullcontext() as threads:
        log(f"{config.arch} on {config.dataset} ({len(run.train_x):,} train / "
            f"{len(run.test_x):,} test images, {run.model.num_parameters():,} parameters), "
            f"{run.epochs} epochs, {run.total:,} iterations of batch {config.batch_size}, "
            f"device {config.device}" + (f" with {threads}" if threads else "") + f", {config.dtype}")
        try:
            log(f"expected time: about {duration(estimate_seconds(run))} here, testing included "
                f"(timed on a few steps before starting)")
            while run.epoch < run.epochs and run.iteration < run.total:
                _epoch(run, out, log)
        except KeyboardInterrupt:
            if run.epoch > first_epoch:
                log(f"interrupted: epoch {run.epoch} is the last one saved, in {ckpt}; "
                    f"continue with --resume {ckpt}")
            elif resume is not None:
                log(f"interrupted before an epoch finished: nothing new was saved, and the "
                    f"checkpoint resumed from (epoch {run.epoch}) is unchanged; continue with "
                    f"--resume {resumed_from or 'CHECKPOINT'}")
            else:
                log("interrupted before the first epoch finished: nothing was saved, and there is "
                    "no checkpoint to resume from yet; start the run again")
            raise
    final = run.history[-1]  # the last epoch's test accuracy, never the best epoch's
    result = {"arch": config.arch, "dataset": config.dataset, "epochs": run.epoch,
              "iterations": run.iteration,
              "final_test_acc": final["test_acc"], "final_test_loss": final["test_loss"],
              "note": "accuracy of the last epoch on the test set (never the best epoch)",
              "config": asdict(config)}
    save_atomic(out / "result.json", lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    log(f"final test accuracy (last epoch): {final['test_acc']:.4f}  -> {out / 'result.json'}")
    return run.history


def _epoch(run, out, log):
    """Train one epoch, test, log it and save the checkpoint."""
    from tqdm import tqdm
    config = run.config
    started = time.perf_counter()
    lr = run.optimizer.lr
    steps = min(run.per_epoch, run.total - run.iteration)
    with tqdm(total=steps, desc=f"epoch {run.epoch + 1}/{run.epochs}",
              disable=not config.progress, leave=False, file=sys.stderr) as bar:
        train_loss, train_acc, speed = train_epoch(run, bar, steps)
    lr_end = run.schedule.lr_at(run.iteration - 1)  # the lr of the epoch's last step
    test_loss, test_acc = evaluate(run.model, run.test_x, run.test_y, config.eval_batch_size,
                                   config.device, progress=config.progress)
    run.epoch += 1
    row = {"epoch": run.epoch, "train_loss": round(train_loss, 5),
           "train_acc": round(train_acc, 5), "test_loss": round(test_loss, 5),
           "test_acc": round(test_acc, 5), "lr": clean_lr(lr), "lr_end": clean_lr(lr_end),
           "iteration": run.iteration, "images_per_s": round(speed, 1),
           "seconds": round(time.perf_counter() - started, 2)}
    run.history.append(row)
    save_checkpoint(out / "checkpoint.pkl", run.state())
    write_log(out / "log.csv", run.history)
    lrs = f"{row['lr']:.3g}" + (f" -> {row['lr_end']:.3g}" if row["lr_end"] != row["lr"] else "")
    log(f"epoch {run.epoch:>3}/{run.epochs}  train loss {train_loss:.4f} acc "
        f"{train_acc:.4f}  test loss {test_loss:.4f} acc {test_acc:.4f}  lr {lrs}  "
        f"{speed:.0f} img/s  {row['seconds']:.1f}s")
