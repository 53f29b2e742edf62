"""train_cifar.py end to end on a tiny dataset in the official format, and on real data."""
import csv
import json
import os
import pathlib

import numpy as np
import pytest

import train_cifar
from minran import trainer
from minran.trainer import TrainConfig, plan

from .test_data import write_official_cifar10

COMMON = ["--device", "cpu", "--arch", "attention56", "--batch-size", "40", "--no-progress",
          "--lr", "0.05"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_official_cifar10(root, per_batch=16)  # 80 train, 16 test images
    return root


def read_log(out):
    with open(out / "log.csv") as f:
        return list(csv.DictReader(f))


def _comparable(rows):
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in rows]


def test_paper_plan():
    per_epoch, epochs, total, milestones = plan(TrainConfig(), 50_000)
    assert (per_epoch, epochs, milestones) == (782, 205, [64_000, 96_000])
    assert total >= 160_000
    _, _, total, milestones = plan(TrainConfig(epochs=10), 50_000)
    assert milestones == [round(total * 0.4), round(total * 0.6)]
    _, _, total, milestones = plan(TrainConfig(epochs=4, schedule="step"), 1000)
    assert milestones == [total // 2, total * 3 // 4]


def test_one_epoch_writes_log_checkpoint_and_result(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    train_cifar.main(COMMON + ["--data-dir", str(tiny_data), "--epochs", "1", "--out", str(out)])
    rows = read_log(out)
    assert len(rows) == 1 and set(rows[0]) >= {"train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds"}
    result = json.loads((out / "result.json").read_text())
    assert result["final_test_acc"] == float(rows[-1]["test_acc"])
    state = trainer.load_checkpoint(out / "checkpoint.pkl")
    assert state["epoch"] == 1 and "rng" in state and "optimizer" in state
    assert "final test accuracy (last epoch)" in capsys.readouterr().out
    # --eval-only reproduces the last epoch's test accuracy from the checkpoint.
    acc = train_cifar.main(["--device", "cpu", "--eval-only", str(out / "checkpoint.pkl"),
                            "--data-dir", str(tiny_data)])
    assert acc == pytest.approx(float(rows[-1]["test_acc"]))


def test_resume_continues_exactly(tiny_data, tmp_path):
    args = COMMON + ["--data-dir", str(tiny_data), "--epochs", "2", "--schedule", "step"]
    whole = tmp_path / "whole"
    train_cifar.main(args + ["--out", str(whole)])

    # Interrupt the second epoch, as Ctrl-C would, then resume from what was left.
    parts = tmp_path / "parts"
    real_epoch = trainer.train_epoch
    calls = []

    def interrupted(run, bar=None):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(run, bar)
    trainer.train_epoch = interrupted
    try:
        with pytest.raises(SystemExit) as exit_info:
            train_cifar.main(args + ["--out", str(parts)])
    finally:
        trainer.train_epoch = real_epoch
    assert exit_info.value.code == 130
    assert len(read_log(parts)) == 1 and not list(parts.glob(".*.tmp"))
    train_cifar.main(["--device", "cpu", "--no-progress", "--resume", str(parts / "checkpoint.pkl")])
    assert _comparable(read_log(parts)) == _comparable(read_log(whole))
    a = trainer.load_checkpoint(whole / "checkpoint.pkl")["model"]
    b = trainer.load_checkpoint(parts / "checkpoint.pkl")["model"]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_label_noise_and_float64_run(tiny_data, tmp_path):
    out = tmp_path / "noisy"
    train_cifar.main(COMMON + ["--data-dir", str(tiny_data), "--epochs", "1", "--out", str(out),
                               "--label-noise", "0.5", "--dtype", "float64", "--nal",
                               "--activation", "spatial", "--subset", "40"])
    assert json.loads((out / "result.json").read_text())["config"]["label_noise"] == 0.5


def test_reduced_widths_from_the_command_line(tiny_data, tmp_path):
    from minran.models import attention56
    out = tmp_path / "narrow"
    train_cifar.main(COMMON + ["--data-dir", str(tiny_data), "--epochs", "1", "--out", str(out),
                               "--widths", "4,8,8,8", "--subset", "40"])
    state = trainer.load_checkpoint(out / "checkpoint.pkl")
    assert tuple(state["config"]["widths"]) == (4, 8, 8, 8)
    assert sum(a.size for a in state["model"].values() if a.ndim > 1) == \
        sum(p.data.size for p in attention56(widths=(4, 8, 8, 8)).parameters() if p.data.ndim > 1)
    with pytest.raises(SystemExit) as exit_info:
        train_cifar.main(COMMON + ["--data-dir", str(tiny_data), "--widths", "8,32"])
    assert "--widths: expected 4 (or 5) positive" in str(exit_info.value.code)


def test_gpu_without_cupy_exits_with_one_clear_line(tiny_data, capsys):
    if train_cifar.backend.gpu_available():
        pytest.skip("a GPU is present")
    with pytest.raises(SystemExit) as exit_info:
        train_cifar.main(["--device", "gpu", "--data-dir", str(tiny_data)])
    assert "CuPy is not installed or finds no CUDA GPU" in str(exit_info.value.code)


def test_no_device_warns_and_uses_cpu(capsys):
    if train_cifar.backend.gpu_available():
        pytest.skip("a GPU is present")
    assert train_cifar.pick_device(None) == "cpu"
    assert "--subset 5000 --epochs 2" in capsys.readouterr().err


def test_missing_data_exits_with_instructions(tmp_path, monkeypatch):
    real_load = trainer.load  # no network in tests: the same path with the download refused
    monkeypatch.setattr(trainer, "load", lambda name, root: real_load(name, root, download=False))
    with pytest.raises(SystemExit) as exit_info:
        train_cifar.main(["--device", "cpu", "--data-dir", str(tmp_path), "--no-progress"])
    assert "Place the archive there by hand" in str(exit_info.value.code)


REAL = pathlib.Path(os.environ.get("MINRAN_REAL_CIFAR", pathlib.Path(__file__).parents[1] / "data" / "real"))


@pytest.mark.realdata
@pytest.mark.skipif(not (REAL / "cifar-10-batches-py").is_dir(),
                    reason="real CIFAR-10 not prepared (.ci/run builds it from ../shared/data)")
def test_real_cifar10_learns_above_chance():
    from minran.data import load_cifar10
    data = load_cifar10(REAL, download=False)
    assert data.train_labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]  # the official order
    config = TrainConfig(arch="attention56", epochs=1, batch_size=64, lr=0.1, schedule="cosine",
                         subset=19_200, test_subset=2_000, out=str(REAL.parent / "run"),
                         progress=False, widths=(8, 16, 16, 16))
    history = trainer.train(config, dataset=data, log=lambda *a: None)
    assert history[-1]["test_acc"] > 0.25  # chance is 0.10
