"""Training a network on CIFAR: the paper's recipe, a log, checkpoints that resume exactly.

`train(config)` is what `train_cifar.py` and the experiment runner call. Each epoch it
trains, evaluates the test set, appends a row to `log.csv` and replaces `checkpoint.pkl`
atomically (write to a temporary name, then rename), so an interruption at any moment
leaves the last finished epoch usable by `--resume`. A checkpoint starts with a line holding
the SHA-256 of the rest, which every load checks, so a damaged file is refused, not trained
on. A loss that stops being a finite number stops the run before that epoch is saved. What
the --out folder promises is run_folder.py's.
"""
import contextlib
import copy
import csv
import hashlib
import itertools
import json
import math
import os
import pathlib
import pickle
import sys
import time
import warnings
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from . import backend
from . import functional as F
from .data import BatchIterator, DataError, corrupt_labels, load, normalize
from .data.augment import channel_stats, pixel_mean
from .models import build_model
from .nn.init import manual_seed
from .graph import GraphStep
from .optim import SGD, CosineSchedule, MultiStepSchedule
from .run_folder import RunFolder, temporary
from .step import Progress, TrainingStep
from .tensor import no_grad

# The paper (Sec. 4.1): batch 64, lr 0.1 divided by 10 at 64k and 96k iterations, 160k in all.
PAPER_ITERATIONS, PAPER_MILESTONES, PAPER_BATCH = 160_000, (64_000, 96_000), 64


class TrainError(RuntimeError):
    """A run that cannot start or go on; the message names the option or file and the fix."""


class CheckpointError(TrainError):
    pass


class NonFiniteLoss(TrainError):
    """The `which` ('training' or 'test') loss became `value` (NaN or infinite) at
    `iteration` (counted from 1 over the run; None for the test loss)."""

    def __init__(self, which, iteration, value):
        self.which, self.iteration, self.value = which, iteration, value
        super().__init__(f"the {which} loss became {value}"
                         + (f" at iteration {iteration:,}" if iteration else ""))


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
    cuda_graph: bool = True       # on the GPU: replay each full batch's step as a CUDA graph

    @classmethod
    def from_dict(cls, values):
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


# What a resumed run may change from its checkpoint's config: where it is and how it shows
# progress and runs (train_cifar.py also lets --epochs extend a run). Everything else is the run.
RESUME_MAY_CHANGE = ("out", "device", "data_dir", "progress", "cuda_graph")


def finished(state):
    """Whether a checkpoint's run has trained every iteration it planned (a checkpoint
    written before runs saved their plan cannot say: False, and resuming finds out)."""
    total = state.get("plan", {}).get("total")
    return total is not None and state["schedule"]["iteration"] >= total


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
    """The iterations at which the lr is divided by 10; never 0, so that the first iteration
    runs at the lr asked for (40% of a one-iteration run rounds to 0)."""
    if schedule == "paper":
        return [max(1, round(total * m / PAPER_ITERATIONS)) for m in PAPER_MILESTONES]
    if schedule == "step":
        return [max(1, total // 2), max(1, total * 3 // 4)]
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


def take_first(images, labels, n, option, what):
    """The first n images and labels (all of them for None), or one line naming `option`."""
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
        train_images, train_labels = take_first(data.train_images, data.train_labels, c.subset,
                                           "--subset", "training")
        test_images, test_labels = take_first(data.test_images, data.test_labels, c.test_subset,
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
        self.step = TrainingStep(self.model, self.optimizer)
        # On the GPU all of the run's work goes to one stream (graph.py says why), and each
        # full batch's step is replayed as a CUDA graph recorded on it (made at first use).
        self.stream = backend.cupy.cuda.Stream(non_blocking=True) if c.device == "gpu" else None
        self.graph = None
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

    def train_step(self, x, y):
        """One training step on the host batch (x, y): on the GPU, replayed as a CUDA graph
        when the batch has the full size (and --no-cuda-graph was not given), else run
        eagerly; the result is the same to the last bit (tests/test_gpu_step.py)."""
        if self.config.device != "gpu":
            return self.step(x, y)
        if self.config.cuda_graph and len(x) == self.config.batch_size:
            if self.graph is None:
                self.graph = GraphStep(self.step, x.shape, x.dtype, y.dtype, self.stream)
            return self.graph(x, y)
        return self.step(backend.cupy.asarray(x), backend.cupy.asarray(y))

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
    tmp = temporary(path)
    write(tmp)
    os.replace(tmp, path)


# A checkpoint: this, then "bytes=N sha256=HEX" and a newline, then N bytes of pickled state.
CHECKPOINT_MAGIC = b"minran-checkpoint 2 "


def save_checkpoint(path, state):
    payload = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    header = CHECKPOINT_MAGIC + (f"bytes={len(payload)} "
                                 f"sha256={hashlib.sha256(payload).hexdigest()}\n").encode()

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(header)
            f.write(payload)
    save_atomic(path, write)


CHECKPOINT_KEYS = ("config", "epoch", "history", "model", "optimizer", "schedule", "rng")


def _verified_payload(path, data):
    """The pickled state after the header line, once its length and SHA-256 are checked."""
    end = data.find(b"\n", 0, 200)
    try:
        fields = dict(item.split("=", 1) for item in
                      data[len(CHECKPOINT_MAGIC):end].decode("ascii").split())
        size, digest = int(fields["bytes"]), fields["sha256"]
    except (ValueError, KeyError, UnicodeDecodeError):
        raise CheckpointError(f"{path}: damaged: its first line, which holds the length and "
                              f"checksum of the rest, is unreadable; use an intact copy of the "
                              f"file, or start a new run") from None
    payload = memoryview(data)[end + 1:]
    if len(payload) < size:
        raise CheckpointError(f"{path}: not a whole checkpoint: {size - len(payload):,} of its "
                              f"{size:,} bytes are missing (the file is truncated); use an "
                              f"intact copy, or start a new run")
    if len(payload) != size or hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(f"{path}: damaged: its contents do not match the SHA-256 checksum "
                              f"written with them (bytes were changed or added); use an intact "
                              f"copy of the file, or start a new run")
    return payload


def load_checkpoint(path):
    """A checkpoint's state, or CheckpointError saying in one line what is wrong with the file.

    The SHA-256 written with the state is checked before anything is unpickled. Checkpoints
    written before minran wrote checksums are plain pickles: they still load (the runs made
    so far stay usable), with one line saying that the file could not be checked. They are
    pickles all the same: load only those you made or trust."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file; give the checkpoint.pkl of a run "
                              f"(it is written into the run's --out folder after each epoch)")
    data = path.read_bytes()
    checked = data.startswith(CHECKPOINT_MAGIC)
    payload = _verified_payload(path, data) if checked else data
    try:
        state = pickle.loads(payload)
    except Exception as error:  # EOFError, UnpicklingError, ... : a truncated or foreign file
        raise CheckpointError(f"{path}: not a whole checkpoint ({type(error).__name__}: "
                              f"{str(error)[:120]}); it is truncated or damaged: use an intact "
                              f"copy, or start a new run") from None
    if not isinstance(state, dict) or any(k not in state for k in CHECKPOINT_KEYS):
        raise CheckpointError(f"{path}: a pickle, but not a minran checkpoint (it lacks "
                              f"{', '.join(CHECKPOINT_KEYS)}); give a run's checkpoint.pkl")
    if not checked:
        print(f"warning: {path} has no checksum (it was written before minran wrote them), so "
              f"damage to it cannot be detected; loading it unchecked", file=sys.stderr)
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


def clean_lr(lr):
    """0.1 * 0.1 is 0.010000000000000002 in floating point: log it as 0.01."""
    return float(f"{lr:.10g}")


def count(n, noun):
    """'1 epoch', '3 epochs', '160,000 iterations'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


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
    one a warm-up, the second records the CUDA graph on a GPU; augmentation included) and
    one test batch, on a throwaway copy of the model and with a random generator of its
    own: the run itself is untouched."""
    c = run.config
    model = copy.deepcopy(run.model)
    opt = SGD(model.parameters(), lr=c.lr, momentum=c.momentum,
              nesterov=c.nesterov and c.momentum > 0, weight_decay=c.weight_decay)
    trial = copy.copy(run)   # the run's way of stepping, on the copies
    trial.step, trial.graph = TrainingStep(model, opt), None
    trial.config = replace(c, batch_size=min(c.batch_size, len(run.train_x)))
    n = trial.config.batch_size
    batches = BatchIterator(run.train_x[:n], run.train_y[:n], n, np.random.default_rng(0),
                            augment=c.augment, device=c.device, copy=False)
    model.train()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        (x, y), = batches
        loss, _ = trial.train_step(x.data, y)
        _sync(loss)
        times.append(time.perf_counter() - start)
    if trial.graph is not None:   # give the copy's graph memory back
        del loss
        pool, trial.graph = trial.graph.pool, None
        pool.free_all_blocks()
    step = min(times[1:])   # every step trains min(batch, N) images: the batch timed
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
    batches = BatchIterator(images, labels, batch_size, rng=None, shuffle=False, device=device)
    xp = backend.cupy if device == "gpu" else np
    # Summed on the device, read once at the end (a read per batch would wait for the GPU).
    loss_sum, correct = xp.zeros((), np.float64), xp.zeros((), np.int64)
    with model.evaluating(), no_grad():
        for x, y in tqdm(batches, desc="testing", disable=not progress, leave=False,
                         file=sys.stderr):
            logits = model(x)
            loss_sum += F.cross_entropy(logits, y).data.astype(np.float64) * len(y)
            correct += (logits.data.argmax(axis=1) == y).sum()
    return float(loss_sum) / len(labels), int(correct) / len(labels)


def train_epoch(run, bar=None, steps=None):
    """One pass over the shuffled training set, or its first `steps` batches (the paper's
    last epoch stops part way, at iteration 160,000). The totals are the step's own, on the
    device (step.py); they are read where the progress is shown, every 10th step, without
    waiting for the GPU, and at the end. A loss that stopped being a number is found there,
    and reported with the iteration where it first did."""
    c = run.config
    run.model.train()
    batches = BatchIterator(run.train_x, run.train_y, c.batch_size, run.rng, shuffle=True,
                            augment=c.augment, device=c.device, copy=False)
    steps = len(batches) if steps is None else min(steps, len(batches))
    run.step.start_epoch(run.iteration + 1)
    progress = Progress(run.step.totals, run.stream)
    start, totals = time.perf_counter(), None
    for i, (x, y) in enumerate(itertools.islice(batches, steps)):
        lr = run.optimizer.lr
        run.train_step(x.data, y)
        run.schedule.step()  # after the step: it sets the lr of the next iteration
        if i % 10 == 9 or i == steps - 1:
            totals = progress.final() if i == steps - 1 else progress.update()
            if totals is not None:
                _check_finite(totals)
                if bar is not None and totals[TrainingStep.IMAGES]:
                    images = totals[TrainingStep.IMAGES]
                    bar.set_postfix(loss=f"{totals[TrainingStep.LOSS_SUM] / images:.3f}",
                                    acc=f"{totals[TrainingStep.CORRECT] / images:.3f}",
                                    img_s=f"{images / (time.perf_counter() - start):.0f}",
                                    lr=f"{lr:.3g}", refresh=False)
            if bar is not None:
                bar.update(i + 1 - bar.n)
    if totals is None:   # no step ran (the last batch already read them, waiting, otherwise)
        totals = progress.final()
    images = totals[TrainingStep.IMAGES]
    return (totals[TrainingStep.LOSS_SUM] / images, totals[TrainingStep.CORRECT] / images,
            images / (time.perf_counter() - start))


def _check_finite(totals):
    first = int(totals[TrainingStep.FIRST_BAD])
    if first >= 0:
        raise NonFiniteLoss("training", first, float(totals[TrainingStep.BAD_LOSS]))


def train(config, dataset=None, resume=None, log=print, resumed_from=None, overwrite=False):
    """Train to the end of the plan; returns the history (one dict per epoch).

    `resume` is a checkpoint's path or its loaded state; `config` may differ from the
    checkpoint's only where that is safe (train_cifar.py checks): device, data folder,
    progress, the output folder, and more epochs. The output folder is refused if it holds
    another run, unless `overwrite` (see run_folder.py for what that promises)."""
    out = pathlib.Path(config.out)
    if isinstance(resume, (str, os.PathLike)):
        resumed_from, resume = resumed_from or str(resume), load_checkpoint(resume)
    continuing = (resumed_from is not None
                  and out.resolve() == pathlib.Path(resumed_from).parent.resolve())
    with RunFolder(out, overwrite, refuse_a_run=not continuing) as folder:
        run = Run(config, dataset)
        if resume is not None:
            run.load_state(resume, resumed_from or "the checkpoint")
            log(f"resuming {resumed_from or 'a checkpoint'} into {out}, after epoch {run.epoch} "
                f"(iteration {run.iteration:,})")
        first_epoch = run.epoch
        ckpt = out / "checkpoint.pkl"
        if run.iteration >= run.total:
            raise TrainError(f"{resumed_from or 'the checkpoint'}: its run has already trained "
                             f"all its {count(run.epochs, 'epoch')} "
                             f"({count(run.total, 'iteration')}); pass a larger --epochs to "
                             f"extend it, or --eval-only to test it")
        cpu = config.device == "cpu"
        if not cpu:   # the model and its state were made on the legacy stream: done first
            backend.cupy.cuda.runtime.deviceSynchronize()
        with backend.cpu_blas_threads(1) if cpu else contextlib.nullcontext() as threads, \
                _non_finite_said_once(), run.stream or contextlib.nullcontext():
            log(f"{config.arch} on {config.dataset} ({len(run.train_x):,} train / "
                f"{len(run.test_x):,} test images, {run.model.num_parameters():,} parameters), "
                f"{count(run.epochs, 'epoch')}, {count(run.total, 'iteration')} of batch "
                f"{config.batch_size}, device {config.device}"
                + (f" with {threads}" if threads else "") + f", {config.dtype}")
            try:
                log(f"expected time: about {duration(estimate_seconds(run))} here, testing "
                    f"included (timed on a few steps before starting)")
                while run.epoch < run.epochs and run.iteration < run.total:
                    _epoch(run, out, log)
                    folder.keep()   # this run has a checkpoint: the one it replaces can go
            except KeyboardInterrupt:
                if run.epoch > first_epoch:
                    log(f"interrupted: epoch {run.epoch} is the last one saved, in {ckpt}; "
                        f"continue with --resume {ckpt}")
                elif resume is not None:
                    log(f"interrupted before an epoch finished: nothing new was saved, and the "
                        f"checkpoint resumed from (epoch {run.epoch}) is unchanged; continue "
                        f"with --resume {resumed_from or 'CHECKPOINT'}")
                else:
                    log("interrupted before the first epoch finished: nothing was saved, and "
                        "there is no checkpoint to resume from yet; start the run again"
                        + (f" (the run that was in {out} is back as it was)"
                           if folder.replacing else ""))
                raise
            except NonFiniteLoss as error:
                raise TrainError(_stopped(error, run, first_epoch, ckpt, resumed_from,
                                          folder)) from None
    final = run.history[-1]  # the last epoch's test accuracy, never the best epoch's
    result = {"arch": config.arch, "dataset": config.dataset, "epochs": run.epoch,
              "iterations": run.iteration,
              "final_test_acc": final["test_acc"], "final_test_loss": final["test_loss"],
              "note": "accuracy of the last epoch on the test set (never the best epoch)",
              "config": asdict(config)}
    save_atomic(out / "result.json", lambda tmp: tmp.write_text(json.dumps(result, indent=2)))
    log(f"final test accuracy (last epoch): {final['test_acc']:.4f}  -> {out / 'result.json'}")
    return run.history


@contextlib.contextmanager
def _non_finite_said_once():
    """A loss that breaks is reported by the run in one line (train_epoch), not also by
    NumPy's warnings from every op on the way; the filter is global, so it reaches the thread
    pool's workers (np.errstate would not)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"(overflow|invalid value|divide by zero) encountered",
                                RuntimeWarning)
        yield


def _stopped(error, run, first_epoch, ckpt, resumed_from, folder):
    """One line for a loss that stopped being a number: where, what was kept, the likely cause."""
    where = (f"in epoch {run.epoch + 1} at iteration {error.iteration:,}" if error.iteration
             else f"after epoch {run.epoch + 1}")
    if run.epoch > first_epoch:
        kept = f"{ckpt} (epoch {run.epoch}) is the last good checkpoint, kept as it was"
    elif resumed_from is not None:
        kept = f"the checkpoint resumed from, {resumed_from} (epoch {run.epoch}), is unchanged"
    else:
        kept = "no checkpoint of this run was written" + (
            f", and the run that was in {run.config.out} is back as it was" if folder.replacing
            else "")
    return (f"the {error.which} loss became {error.value} {where}, so the run stopped without "
            f"saving that epoch; {kept}. The likely cause is an lr too large for this network "
            f"and batch (--lr {run.config.lr:g}): start again with a smaller --lr")


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
    if not math.isfinite(test_loss):   # the epoch's last steps broke the weights
        raise NonFiniteLoss("test", None, test_loss)
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
