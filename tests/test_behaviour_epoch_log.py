"""The epoch log's bookkeeping: which learning rates a row reports when the schedule changes
inside an epoch, and which mean loss and accuracy when the last batch is smaller or the
epoch stops part way. Every step's lr, loss, batch size and hits are recorded as the trainer
makes them, and each row must be what those records say, weighted by images, not batches."""
import numpy as np
import pytest

import minran.functional as F
from minran import Tensor, nn, trainer
from minran import reference as R
from minran.data import Dataset
from minran.nn.module import Parameter
from minran.optim import SGD
from minran.tensor import is_grad_enabled

TRAIN, TEST, BATCH = 41, 13, 20   # batches of 20, 20 and 1; test batches of 5, 5 and 3


class Oracle(nn.Module):
    """Logits fixed by the image (no learning): each image's loss and prediction are the same
    whatever the optimiser does, so an epoch's mean over its images is known in advance. Its
    one parameter is there for the optimiser; the logits do not depend on it."""

    def __init__(self):
        super().__init__()
        self.p = Parameter(np.zeros(1, np.float32))
        self.table = np.random.default_rng(7).standard_normal((3, 10))

    def forward(self, x):
        features = x.data.astype(np.float64).mean(axis=(2, 3))                 # (N, 3)
        logits = np.sin(features[:, :, None] * self.table * 40).sum(axis=1) * 3
        return Tensor(logits.astype(x.dtype)) + self.p * 0


def dataset():
    """Images of very different brightness (so their logits differ), random labels."""
    rng = np.random.default_rng(0)

    def images(n):
        level = rng.integers(0, 256, (n, 3, 1, 1))
        return np.clip(level + rng.integers(-5, 6, (n, 3, 32, 32)), 0, 255).astype(np.uint8)
    return Dataset(images(TRAIN), rng.integers(0, 10, TRAIN), images(TEST),
                   rng.integers(0, 10, TEST), [f"c{i}" for i in range(10)])


@pytest.fixture
def records(monkeypatch):
    """Per training step: (lr used, mean loss, batch size, hits); per test batch: (mean loss,
    batch size, hits). Steps of the trainer's time estimate (a throwaway copy) are not kept."""
    kept = {"steps": [], "tests": [], "losses": []}
    real_ce, real_step, real_epoch = F.cross_entropy, SGD.step, trainer.train_epoch
    inside = []

    def cross_entropy(logits, y):
        loss = real_ce(logits, y)
        if inside:
            hits = int((logits.data.argmax(axis=1) == y).sum())
            (kept["losses"] if is_grad_enabled() else kept["tests"]).append(
                (float(loss.data), len(y), hits))
        return loss

    def step(self):
        if inside and inside[-1] == "training":
            kept["steps"].append(self.lr)
        return real_step(self)

    def train_epoch(*args, **kwargs):
        inside.append("training")
        try:
            return real_epoch(*args, **kwargs)
        finally:
            inside.pop()
            inside.append("testing")   # evaluate() follows in the same epoch

    monkeypatch.setattr(F, "cross_entropy", cross_entropy)
    monkeypatch.setattr(SGD, "step", step)
    monkeypatch.setattr(trainer, "train_epoch", train_epoch)
    monkeypatch.setattr(trainer, "build_model", lambda *a, **k: Oracle())
    return kept


def run(tmp_path, **options):
    config = trainer.TrainConfig(**{"arch": "attention56", "batch_size": BATCH, "lr": 0.05,
                                    "augment": False, "progress": False, "eval_batch_size": 5,
                                    "out": str(tmp_path / "run"), **options})
    return trainer.train(config, dataset(), log=lambda *a: None), config


def per_image(config, images_of):
    """Each image's loss and hit under the Oracle, as the run normalises the images."""
    r = trainer.Run(config, dataset())
    x, y = images_of(r)
    logits = Oracle()(Tensor(x)).data.astype(np.float64)
    logp = R.loss.log_softmax(logits, axis=1)
    return -logp[np.arange(len(y)), y], logits.argmax(axis=1) == y


def weighted(batches):
    n = sum(b[1] for b in batches)
    return sum(b[0] * b[1] for b in batches) / n, sum(b[2] for b in batches) / n


def unweighted(batches):
    return (np.mean([b[0] for b in batches]), np.mean([b[2] / b[1] for b in batches]))


@pytest.mark.parametrize("schedule, epochs", [("step", 2), ("cosine", 2), ("paper", None)])
def test_each_row_reports_its_first_and_last_steps_lr_and_means_weighted_by_images(
        tmp_path, monkeypatch, records, schedule, epochs):
    """step: 3 steps an epoch, 6 in all, lr divided at steps 3 and 4 (inside epoch 2);
    cosine: a new lr every step; paper (scaled to 5 iterations, milestones 2 and 4): the lr
    changes inside both epochs and the second stops after 2 of its 3 batches."""
    monkeypatch.setattr(trainer, "PAPER_ITERATIONS", 5)
    monkeypatch.setattr(trainer, "PAPER_MILESTONES", (2, 4))
    monkeypatch.setattr(trainer, "PAPER_BATCH", BATCH)
    history, config = run(tmp_path, schedule=schedule, epochs=epochs)
    lrs, losses, tests = records["steps"], records["losses"], records["tests"]
    per_epoch = [3, 3] if schedule != "paper" else [3, 2]
    assert [row["iteration"] for row in history] == list(np.cumsum(per_epoch))
    assert len(lrs) == len(losses) == sum(per_epoch)
    assert len(set(lrs)) >= 3                    # the schedule really did change
    first = 0
    for row, steps in zip(history, per_epoch):
        epoch = slice(first, first + steps)
        assert row["lr"] == trainer.clean_lr(lrs[epoch][0])
        assert row["lr_end"] == trainer.clean_lr(lrs[epoch][-1])
        loss, acc = weighted(losses[epoch])
        assert row["train_loss"] == round(loss, 5) and row["train_acc"] == round(acc, 5)
        if len({n for _, n, _ in losses[epoch]}) > 1:   # a smaller last batch: it can fail
            wrong_loss, wrong_acc = unweighted(losses[epoch])
            assert abs(wrong_loss - loss) > 1e-3 or abs(wrong_acc - acc) > 1e-3
        first += steps
    assert first == len(lrs)
    if schedule == "step":
        assert [(r["lr"], r["lr_end"]) for r in history] == [(0.05, 0.05), (0.005, 0.0005)]
    if schedule == "paper":
        assert [(r["lr"], r["lr_end"]) for r in history] == [(0.05, 0.005), (0.005, 0.0005)]
    # the test columns: every test image once, whatever the batch it fell in
    image_loss, image_hit = per_image(config, lambda r: (r.test_x, r.test_y))
    for row, epoch_tests in zip(history, np.split(np.array(tests), len(history))):
        assert [int(n) for _, n, _ in epoch_tests] == [5, 5, 3]
        assert row["test_loss"] == pytest.approx(image_loss.mean(), abs=2e-5)
        assert row["test_acc"] == round(image_hit.mean(), 5)


def test_a_whole_epochs_means_are_the_means_over_its_images(tmp_path, records):
    """Each training image is seen once an epoch, so its row's loss and accuracy are the
    mean of the per-image ones, whichever batches the shuffle made."""
    history, config = run(tmp_path, schedule="step", epochs=2)
    image_loss, image_hit = per_image(config, lambda r: (r.train_x, r.train_y))
    for row in history:
        assert row["train_loss"] == pytest.approx(image_loss.mean(), abs=2e-5)
        assert row["train_acc"] == round(image_hit.mean(), 5)
    assert [n for _, n, _ in records["losses"]] == [20, 20, 1, 20, 20, 1]
