"""Everything random in a run, reproduced across a resume: the label noise drawn at the start,
each epoch's shuffle, each batch's crops and flips. A run interrupted after its first epoch
and resumed must train on exactly the batches the uninterrupted run trained on, and end
with the same weights and log. And the augmentation's draws are independent: the crop's
offset along y is not its offset along x, and the flip is neither."""
import numpy as np
import pytest

from minran import trainer
from minran.data.augment import augment
from minran.data.loader import BatchIterator

from .test_train import WIDTHS, ctrl_c_in_epoch, tiny_dataset
from .test_train import _comparable as timeless


def dataset():
    return tiny_dataset(n_train=40, n_test=10)


def config(out, **options):
    return trainer.TrainConfig(**{"arch": "attention56", "widths": WIDTHS, "batch_size": 16,
                                  "lr": 0.05, "epochs": 2, "schedule": "cosine",
                                  "label_noise": 0.5, "augment": True, "progress": False,
                                  "out": str(out), **options})


@pytest.fixture
def batches(monkeypatch):
    """The training batches (images, labels) each epoch was given, by epoch; the trainer's
    time estimate (its own generator, a copy of the model) is not an epoch."""
    epochs = []
    real_iter, real_epoch = BatchIterator.__iter__, trainer.train_epoch

    def iterate(self):
        for x, y in real_iter(self):
            if epochs and epochs[-1] is not None:
                epochs[-1].append((np.array(x.data), np.array(y)))
            yield x, y

    def train_epoch(*args, **kwargs):
        epochs.append([])
        try:
            return real_epoch(*args, **kwargs)
        finally:
            epochs.append(None)   # what follows (the test set) is no epoch's

    monkeypatch.setattr(BatchIterator, "__iter__", iterate)
    monkeypatch.setattr(trainer, "train_epoch", train_epoch)
    return epochs


def epochs_of(recorded):
    return [e for e in recorded if e is not None]


def test_a_resumed_run_trains_on_the_same_batches_and_ends_the_same(tmp_path, batches):
    straight = trainer.train(config(tmp_path / "straight"), dataset(), log=lambda *a: None)
    straight_batches = epochs_of(batches)
    assert len(straight_batches) == 2 and len(straight_batches[0]) == 3   # 16, 16, 8
    batches.clear()

    parts = tmp_path / "parts"
    with ctrl_c_in_epoch(2), pytest.raises(KeyboardInterrupt):   # wraps the recording epoch
        trainer.train(config(parts), dataset(), log=lambda *a: None)
    first_part = epochs_of(batches)
    batches.clear()
    resumed = trainer.train(config(parts), dataset(), resume=parts / "checkpoint.pkl",
                            log=lambda *a: None)
    second_part = epochs_of(batches)

    assert len(first_part) == 1 and len(second_part) == 1
    for got, want in zip(first_part + second_part, straight_batches):
        assert len(got) == len(want)
        for (x, y), (wx, wy) in zip(got, want):
            np.testing.assert_array_equal(x, wx)   # the same images, cropped and flipped alike
            np.testing.assert_array_equal(y, wy)   # with the same noisy labels
    assert timeless(resumed) == timeless(straight)
    a = trainer.load_checkpoint(tmp_path / "straight" / "checkpoint.pkl")
    b = trainer.load_checkpoint(parts / "checkpoint.pkl")
    for k in a["model"]:
        np.testing.assert_array_equal(a["model"][k], b["model"][k], err_msg=k)
    assert a["rng"] == b["rng"]

    # The randomness was real: two epochs saw different orders and crops, and the labels
    # trained on are the noisy ones (about half differ from the data set's), each image's
    # label once an epoch.
    assert not np.array_equal(straight_batches[0][0][0], straight_batches[1][0][0])
    noisy = trainer.Run(config(tmp_path / "look"), dataset()).train_y
    clean = dataset().train_labels
    assert 8 <= (noisy != clean).sum() <= 32
    for epoch in straight_batches:
        assert sorted(np.concatenate([y for _, y in epoch])) == sorted(noisy)


def test_the_same_seed_draws_the_same_run_and_another_seed_another(tmp_path, batches):
    """What resuming relies on: everything random comes from the run's seed alone."""
    trainer.train(config(tmp_path / "a", epochs=1), dataset(), log=lambda *a: None)
    a = epochs_of(batches)
    batches.clear()
    trainer.train(config(tmp_path / "b", epochs=1), dataset(), log=lambda *a: None)
    b = epochs_of(batches)
    batches.clear()
    trainer.train(config(tmp_path / "c", epochs=1, seed=1), dataset(), log=lambda *a: None)
    c = epochs_of(batches)
    for (x, y), (bx, by) in zip(a[0], b[0]):
        np.testing.assert_array_equal(x, bx)
        np.testing.assert_array_equal(y, by)
    assert not np.array_equal(a[0][0][0], c[0][0][0])
    labels = lambda run: np.sort(np.concatenate([y for _, y in run[0]]))   # noqa: E731
    assert not np.array_equal(labels(a), labels(c))   # another noise draw too


# ---- the augmentation's draws are independent ------------------------------------------------
def crop_offsets(pad, n, seed):
    """(top, left, flipped) of each of n augmentations of one image with unique pixels."""
    size = 6
    image = np.arange(1, 1 + 3 * size * size, dtype=np.float32).reshape(1, 3, size, size)
    out = augment(np.repeat(image, n, axis=0), np.random.default_rng(seed), pad=pad)
    padded = np.pad(image[0], ((0, 0), (pad, pad), (pad, pad)))
    where = {}
    for i in range(2 * pad + 1):
        for j in range(2 * pad + 1):
            window = padded[:, i:i + size, j:j + size]
            where[window.tobytes()] = (i, j, False)
            where[window[..., ::-1].copy().tobytes()] = (i, j, True)
    return np.array([where[o.tobytes()] for o in out])


def test_crop_offsets_along_y_and_x_and_the_flip_are_independent_draws():
    """Over 2,000 augmentations with pad 4 every one of the 81 (top, left) pairs occurs, about
    1 in 9 has top == left (not all of them, as one draw used twice would give), images are
    flipped about half the time whatever their offsets, and another seed draws each image's
    offsets and flip anew."""
    offsets = crop_offsets(pad=4, n=2000, seed=3)
    top, left, flipped = offsets[:, 0], offsets[:, 1], offsets[:, 2].astype(bool)
    assert len({(t, l) for t, l in zip(top, left)}) == 81
    assert 0.07 < (top == left).mean() < 0.16
    assert abs(np.corrcoef(top, left)[0, 1]) < 0.1
    for group in (top < 4, top > 4, left < 4, left > 4, top == left):
        assert 0.4 < flipped[group].mean() < 0.6
    np.testing.assert_array_equal(crop_offsets(pad=4, n=2000, seed=3), offsets)   # seeded
    other = crop_offsets(pad=4, n=2000, seed=4)   # another seed: other draws, for each image
    for column in range(3):
        assert 0.4 < (other[:, column] != offsets[:, column]).mean()
