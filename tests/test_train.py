"""train_cifar.py and the trainer: what a run does, each behaviour tested directly and fast
(networks of widths 4,8,8,8 on a tiny dataset in the official format), and on real data."""
import builtins
import contextlib
import csv
import io
import json
import os
import pathlib
import pickle
import shutil
import warnings

import numpy as np
import pytest

import train_cifar
from minran import backend, run_folder, trainer
from minran.data import DataError, Dataset
from minran.data.augment import channel_stats, pixel_mean
from minran.models import build_model
from minran.trainer import TrainConfig, plan

from .test_data import write_official_cifar10

WIDTHS = (4, 8, 8, 8)
COMMON = ["--device", "cpu", "--arch", "attention56", "--widths", "4,8,8,8", "--batch-size", "40",
          "--no-progress", "--lr", "0.05"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_official_cifar10(root, per_batch=16)  # 80 train, 16 test images: 2 iterations an epoch
    return root


@pytest.fixture(scope="module")
def finished(tiny_data, tmp_path_factory):
    """A finished one-epoch run (step schedule), to resume, copy and evaluate."""
    out = tmp_path_factory.mktemp("finished") / "run"
    train_cifar.main(COMMON + ["--data-dir", str(tiny_data), "--epochs", "1", "--out", str(out),
                               "--schedule", "step"])
    return out


def tiny_dataset(n_train=40, n_test=16, seed=0, size=32):
    rng = np.random.default_rng(seed)
    return Dataset(rng.integers(0, 256, (n_train, 3, size, size), dtype=np.uint8),
                   rng.integers(0, 10, n_train),
                   rng.integers(0, 256, (n_test, 3, size, size), dtype=np.uint8),
                   rng.integers(0, 10, n_test), [f"c{i}" for i in range(10)])


def tiny_config(tmp_path, **kw):
    return TrainConfig(**{"arch": "attention56", "widths": WIDTHS, "batch_size": 20, "lr": 0.05,
                          "epochs": 1, "progress": False, "out": str(tmp_path / "run"), **kw})


def read_log(out):
    with open(out / "log.csv") as f:
        return list(csv.DictReader(f))


def _comparable(rows):
    return [{k: v for k, v in r.items() if k not in ("seconds", "images_per_s")} for r in rows]


def error_of(argv):
    """The one line train_cifar.py exits with."""
    with pytest.raises(SystemExit) as exit_info:
        train_cifar.main(argv)
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "\n" not in message and len(message) < 600, message
    return message


@contextlib.contextmanager
def ctrl_c_in_epoch(number):
    """Ctrl-C during the `number`-th epoch that train() starts."""
    real_epoch, calls = trainer.train_epoch, []

    def interrupted(run, bar=None, steps=None):
        calls.append(1)
        if len(calls) == number:
            raise KeyboardInterrupt
        return real_epoch(run, bar, steps)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer, "train_epoch", interrupted)
        yield


# ---- the plan: the paper's exact 160k iterations ---------------------------------------------
def test_paper_plan_is_exactly_160k_iterations():
    per_epoch, epochs, total, milestones = plan(TrainConfig(), 50_000)
    assert (per_epoch, epochs, total, milestones) == (782, 205, 160_000, [64_000, 96_000])
    assert total - (epochs - 1) * per_epoch == 472  # the last epoch stops part way
    assert plan(TrainConfig(batch_size=128), 50_000)[2:] == (80_000, [32_000, 48_000])
    _, _, total, milestones = plan(TrainConfig(epochs=10), 50_000)
    assert total == 7820 and milestones == [round(total * 0.4), round(total * 0.6)]
    _, _, total, milestones = plan(TrainConfig(epochs=4, schedule="step"), 1000)
    assert milestones == [total // 2, total * 3 // 4]
    epochs_help = " ".join(train_cifar.build_parser().format_help().split("--epochs EPOCHS")[-1][:400].split())
    assert "each ceil(N / batch) iterations" in epochs_help and "160,000 iterations" in epochs_help


@pytest.fixture
def paper_in_small(monkeypatch):
    """The paper's plan scaled down: 5 iterations (milestones 2 and 3) at batch 40, so 80
    images make 2 epochs of 2 iterations and a third that stops after 1."""
    monkeypatch.setattr(trainer, "PAPER_ITERATIONS", 5)
    monkeypatch.setattr(trainer, "PAPER_MILESTONES", (2, 3))
    monkeypatch.setattr(trainer, "PAPER_BATCH", 40)


def test_default_run_stops_mid_epoch_and_resume_continues_exactly(tiny_data, tmp_path,
                                                                  paper_in_small):
    args = COMMON + ["--data-dir", str(tiny_data)]   # no --epochs: the paper's plan
    whole = tmp_path / "whole"
    train_cifar.main(args + ["--out", str(whole)])
    rows = read_log(whole)
    assert [int(r["iteration"]) for r in rows] == [2, 4, 5]
    assert [float(r["lr"]) for r in rows] == [0.05, 0.005, 0.0005]
    assert json.loads((whole / "result.json").read_text())["iterations"] == 5

    # Interrupt the second epoch, as Ctrl-C would, then resume from what was left.
    parts = tmp_path / "parts"
    with ctrl_c_in_epoch(2), pytest.raises(SystemExit) as exit_info:
        train_cifar.main(args + ["--out", str(parts)])
    assert exit_info.value.code == 130
    assert len(read_log(parts)) == 1 and not list(parts.glob(".*.tmp"))
    train_cifar.main(["--device", "cpu", "--no-progress", "--resume", str(parts / "checkpoint.pkl")])
    assert _comparable(read_log(parts)) == _comparable(rows)
    a = trainer.load_checkpoint(whole / "checkpoint.pkl")
    b = trainer.load_checkpoint(parts / "checkpoint.pkl")
    assert a["schedule"] == b["schedule"] == {"iteration": 5}
    for k in a["model"]:
        np.testing.assert_array_equal(a["model"][k], b["model"][k])
    # Extended past the paper's plan: whole epochs from its short last one, at the final lr.
    train_cifar.main(["--device", "cpu", "--no-progress", "--resume", str(parts / "checkpoint.pkl"),
                      "--epochs", "4"])
    assert [(r["iteration"], r["lr"]) for r in read_log(parts)][3:] == [("7", "0.0005")]


# ---- resume: writes where the user says, refuses contradictions, extends ---------------------
def test_resume_writes_into_out_and_leaves_the_original_alone(finished, tmp_path):
    before = {name: (finished / name).read_bytes() for name in run_folder.RUN_FILES}
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(finished / "checkpoint.pkl", copy / "checkpoint.pkl")
    elsewhere = tmp_path / "elsewhere"
    train_cifar.main(["--device", "cpu", "--no-progress", "--resume", str(copy / "checkpoint.pkl"),
                      "--epochs", "2", "--out", str(elsewhere)])
    assert len(read_log(elsewhere)) == 2 and (elsewhere / "result.json").exists()
    # Without --out the run goes on in the checkpoint's own folder.
    train_cifar.main(["--device", "cpu", "--no-progress", "--resume", str(copy / "checkpoint.pkl"),
                      "--epochs", "2"])
    assert len(read_log(copy)) == 2
    assert {name: (finished / name).read_bytes() for name in run_folder.RUN_FILES} == before


def test_resume_refuses_contradicting_options_by_name(finished, tiny_data, tmp_path):
    ckpt = str(finished / "checkpoint.pkl")
    message = error_of(["--resume", ckpt, "--device", "cpu", "--arch", "attention92",
                        "--lr", "0.3", "--nal", "--widths", "8,16,16,16"])
    for named in ("--arch attention92", "--lr 0.3", "--nal", "--widths 8,16,16,16",
                  "arch='attention56'", "lr=0.05", "new --out"):
        assert named in message
    # Options equal to the run's, and the safe ones (here another data folder), are accepted:
    # this run has trained all it planned, which is the next thing resume says.
    moved = tmp_path / "moved"
    shutil.copytree(tiny_data, moved)
    message = error_of(["--resume", ckpt, "--device", "cpu", "--lr", "0.05", "--arch",
                        "attention56", "--data-dir", str(moved), "--no-progress"])
    assert "already trained all its 1 epoch (" in message and "larger --epochs" in message


def test_resume_extends_a_finished_run_with_its_own_schedule(finished, tmp_path):
    out = tmp_path / "longer"
    message = error_of(["--resume", str(finished / "checkpoint.pkl"), "--out", str(out),
                        "--device", "cpu", "--epochs", "0"])
    assert "--epochs" in message
    train_cifar.main(["--resume", str(finished / "checkpoint.pkl"), "--out", str(out),
                      "--device", "cpu", "--no-progress", "--epochs", "3"])
    rows = read_log(out)
    assert [int(r["iteration"]) for r in rows] == [2, 4, 6]
    # The one-epoch step schedule dropped the lr at iterations 1 and 1 (0.05 -> 0.0005); the
    # extra epochs go on at that final lr instead of re-planning the milestones.
    assert [r["lr"] for r in rows] == ["0.05", "0.0005", "0.0005"]
    assert "can only extend" in error_of(["--resume", str(out / "checkpoint.pkl"),
                                          "--device", "cpu", "--epochs", "2"])


def test_resume_without_device_does_not_repeat_the_cpu_warning(finished, tmp_path, capsys):
    if backend.gpu_available():
        pytest.skip("a GPU is present")
    train_cifar.main(["--resume", str(finished / "checkpoint.pkl"), "--out", str(tmp_path / "r"),
                      "--epochs", "2", "--no-progress"])
    assert "weeks" not in capsys.readouterr().err


# ---- the output folder --------------------------------------------------------------------
def test_a_new_run_refuses_an_out_that_holds_a_run(finished, tiny_data, tmp_path):
    before = {name: (finished / name).read_bytes() for name in run_folder.RUN_FILES}
    args = COMMON + ["--data-dir", str(tiny_data), "--epochs", "1", "--out", str(finished)]
    message = error_of(args)
    for named in (str(finished), f"--resume {finished / 'checkpoint.pkl'}", "new --out", "--overwrite"):
        assert named in message
    assert {name: (finished / name).read_bytes() for name in run_folder.RUN_FILES} == before
    other = tmp_path / "other"
    shutil.copytree(finished, other)
    train_cifar.main(COMMON + ["--data-dir", str(tiny_data), "--epochs", "1", "--out", str(other),
                               "--overwrite", "--seed", "7"])
    assert trainer.load_checkpoint(other / "checkpoint.pkl")["config"]["seed"] == 7


def test_an_unwritable_out_is_found_before_training(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "train_epoch", lambda *a, **k: pytest.fail("training started"))
    a_file = tmp_path / "file"
    a_file.write_text("")
    message = error_of(COMMON + ["--data-dir", str(tiny_data), "--out", str(a_file / "run")])
    assert f"--out {a_file / 'run'}: cannot write there" in message
    if pathlib.Path("/proc/self").is_dir():  # a folder that exists but takes no files, even for root
        message = error_of(COMMON + ["--data-dir", str(tiny_data), "--out", "/proc/self"])
        assert "--out /proc/self: cannot write there" in message


# ---- bad input: one line naming the option or file, what is wrong, the fix --------------------
@pytest.mark.parametrize("option, value", [
    ("--epochs", "0"), ("--epochs", "-1"), ("--batch-size", "0"), ("--subset", "0"),
    ("--subset", "-5"), ("--test-subset", "-1"), ("--test-subset", "0"), ("--subset", "81"),
    ("--test-subset", "17"), ("--label-noise", "1.5"), ("--lr", "-0.1"), ("--widths", "8,32"),
])
def test_bad_numbers_get_one_clear_line(option, value, tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "train_epoch", lambda *a, **k: pytest.fail("training started"))
    argv = [a for a in COMMON if a not in ("--widths", "4,8,8,8")] if option == "--widths" else COMMON
    message = error_of(argv + ["--data-dir", str(tiny_data), "--epochs", "1",
                               "--out", str(tmp_path / "run"), option, value])
    assert option in message and value in message


def test_missing_truncated_and_foreign_checkpoints(finished, tmp_path):
    missing = tmp_path / "nothing.pkl"
    for option in ("--resume", "--eval-only"):
        assert f"{missing}: no such file" in error_of([option, str(missing), "--device", "cpu"])
    truncated = tmp_path / "truncated.pkl"
    data = (finished / "checkpoint.pkl").read_bytes()
    truncated.write_bytes(data[:len(data) // 2])
    for option in ("--resume", "--eval-only"):
        message = error_of([option, str(truncated), "--device", "cpu"])
        assert f"{truncated}: not a whole checkpoint" in message and "truncated" in message
    foreign = tmp_path / "foreign.pkl"
    foreign.write_bytes(pickle.dumps({"weights": [1, 2]}))
    assert "not a minran checkpoint" in error_of(["--resume", str(foreign), "--device", "cpu"])


def test_weights_that_do_not_fit_the_architecture_get_a_short_line(finished, tiny_data, tmp_path):
    state = trainer.load_checkpoint(finished / "checkpoint.pkl")
    common = ["--device", "cpu", "--data-dir", str(tiny_data), "--no-progress"]
    # Attention-92's weights (more modules: names Attention-56 lacks), then others' shapes.
    for other, detail in ((build_model("attention92", widths=WIDTHS), "are unknown to it (first"),
                          (build_model("attention56", widths=(4, 8, 16, 16)), "has shape")):
        state["model"] = other.state_dict()
        bad = tmp_path / f"run-{len(detail)}" / "checkpoint.pkl"
        bad.parent.mkdir()
        bad.write_bytes(pickle.dumps(state))
        for argv in (["--resume", str(bad), "--epochs", "2"], ["--eval-only", str(bad)]):
            message = error_of(argv + common)
            assert f"{bad}: its weights do not fit its architecture attention56" in message
            assert detail in message


def test_labels_outside_the_classes_are_found_at_load(tmp_path):
    data = tiny_dataset()
    data.test_labels[3] = 10
    with pytest.raises(DataError, match=r"test labels: 1 labels lie outside the 10 classes 0..9 "
                                        r"\(the first, image 3, has label 10\)"):
        trainer.Run(tiny_config(tmp_path), data)


def test_gpu_without_cupy_exits_with_one_clear_line(tiny_data, monkeypatch):
    monkeypatch.setattr(backend, "cupy", None)
    monkeypatch.setattr(backend, "CUPY_IMPORT_ERROR", None)
    message = error_of(["--device", "gpu", "--data-dir", str(tiny_data)])
    assert "--device gpu, but CuPy is not installed (pip install" in message


def test_cupy_with_a_driver_that_fails_names_the_error(tiny_data, monkeypatch):
    monkeypatch.setattr(backend, "cupy", _fake_cupy("cudaErrorNoDevice: no CUDA-capable device"))
    monkeypatch.setattr(backend, "driver_cuda_version", lambda: (12, 4))
    message = error_of(["--device", "gpu", "--data-dir", str(tiny_data)])
    assert "CuPy 14.2.0 cannot use a CUDA device" in message and "nvidia-smi" in message
    assert "cudaErrorNoDevice" in message and "not installed" not in message
    assert not backend.gpu_available()


def test_no_device_warns_and_uses_cpu(capsys, monkeypatch):
    monkeypatch.setattr(backend, "cupy", None)
    assert train_cifar.pick_device(None, full_run=True) == "cpu"
    assert train_cifar.QUICK_RUN in capsys.readouterr().err


def test_missing_data_exits_with_instructions(tmp_path, monkeypatch):
    real_load = trainer.load  # no network in tests: the same path with the download refused
    monkeypatch.setattr(trainer, "load", lambda name, root: real_load(name, root, download=False))
    message = error_of(["--device", "cpu", "--data-dir", str(tmp_path), "--no-progress",
                        "--out", str(tmp_path / "run")])
    assert "Place the archive there by hand" in message


# ---- what a run prints and logs ---------------------------------------------------------------
def test_one_epoch_writes_log_checkpoint_and_result(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    train_cifar.main(COMMON + ["--data-dir", str(tiny_data), "--epochs", "1", "--out", str(out)])
    rows = read_log(out)
    assert len(rows) == 1 and set(rows[0]) >= {"train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds"}
    result = json.loads((out / "result.json").read_text())
    assert result["final_test_acc"] == float(rows[-1]["test_acc"])
    state = trainer.load_checkpoint(out / "checkpoint.pkl")
    assert state["epoch"] == 1 and "rng" in state and "optimizer" in state
    printed = capsys.readouterr().out
    assert "final test accuracy (last epoch)" in printed
    # The expected time comes before training starts.
    assert printed.index("expected time: about") < printed.index("epoch   1/1")
    # --eval-only reproduces the last epoch's test accuracy from the checkpoint.
    acc = train_cifar.main(["--device", "cpu", "--eval-only", str(out / "checkpoint.pkl"),
                            "--data-dir", str(tiny_data), "--no-progress"])
    assert acc == pytest.approx(float(rows[-1]["test_acc"]))


def test_lr_is_logged_without_float_noise(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"   # step schedule over 4 iterations: 0.05, then 0.05 * 0.1 at 2
    train_cifar.main(COMMON + ["--data-dir", str(tiny_data), "--epochs", "2", "--out", str(out),
                               "--schedule", "step"])
    assert 0.05 * 0.1 == 0.005000000000000001  # what the schedule computes
    lines = (out / "log.csv").read_text().splitlines()
    assert lines[2].split(",")[5:7] == ["0.005", "0.0005"]  # lr at the start and at the end
    assert "lr 0.005 -> 0.0005" in capsys.readouterr().out


def test_ctrl_c_in_the_first_epoch_points_to_no_checkpoint(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    with ctrl_c_in_epoch(1), pytest.raises(SystemExit):
        train_cifar.main(COMMON + ["--data-dir", str(tiny_data), "--epochs", "2", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "nothing was saved" in printed and "--resume" not in printed
    assert not (out / "checkpoint.pkl").exists()


def test_evaluation_shows_progress(capsys):
    model = build_model("attention56", widths=WIDTHS)
    images = np.zeros((30, 3, 32, 32), np.float32)
    trainer.evaluate(model, images, np.zeros(30, int), batch_size=10, progress=True)
    err = capsys.readouterr().err
    assert "testing:" in err and "0/3" in err


# ---- issue 15: behaviours the whole-run tests could not see ---------------------------------
def test_run_files_only_ever_appear_by_rename(tmp_path, monkeypatch):
    """A checkpoint, log or result written straight to its name could be cut off half
    written: each must be written under another name and renamed."""
    opened, renamed = [], []
    real_open, real_replace = builtins.open, os.replace

    def recording_open(file, mode="r", *args, **kwargs):
        if any(m in mode for m in "wax+"):
            opened.append(pathlib.Path(file).name)
        return real_open(file, mode, *args, **kwargs)

    def recording_replace(src, dst, *args, **kwargs):
        renamed.append(pathlib.Path(dst).name)
        return real_replace(src, dst, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", recording_open)
    monkeypatch.setattr(io, "open", recording_open)
    monkeypatch.setattr(os, "replace", recording_replace)
    trainer.train(tiny_config(tmp_path), tiny_dataset(), log=lambda *a: None)
    assert set(renamed) == set(run_folder.RUN_FILES)
    assert not set(opened) & set(run_folder.RUN_FILES)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted(run_folder.RUN_FILES)


def test_result_is_the_last_epoch_not_the_best(tmp_path, monkeypatch):
    accuracies = iter([0.5, 0.3])
    monkeypatch.setattr(trainer, "evaluate", lambda *a, **k: (1.0, next(accuracies)))
    trainer.train(tiny_config(tmp_path, epochs=2), tiny_dataset(), log=lambda *a: None)
    assert json.loads((tmp_path / "run" / "result.json").read_text())["final_test_acc"] == 0.3


def test_evaluate_runs_in_eval_mode_and_changes_nothing():
    model = build_model("attention56", widths=WIDTHS)
    model.train()
    before = model.state_dict()
    images = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    first = trainer.evaluate(model, images, np.arange(8), batch_size=4)
    assert model.training  # put back as it was
    after = model.state_dict()
    for name in before:  # batch-norm running statistics included
        np.testing.assert_array_equal(before[name], after[name])
    assert trainer.evaluate(model, images, np.arange(8), batch_size=4) == first


def test_the_schedule_steps_after_the_optimiser(tmp_path):
    # Step schedule over 2 iterations: milestones at 1 and 1, so 0.05, then 0.0005.
    run = trainer.Run(tiny_config(tmp_path, schedule="step"), tiny_dataset())
    used, real_step = [], run.optimizer.step

    def step():
        used.append(run.optimizer.lr)
        real_step()
    run.optimizer.step = step
    trainer.train_epoch(run)
    assert used == [0.05, pytest.approx(0.0005)]


@pytest.mark.parametrize("mean", ["channel", "channel-std", "pixel"])
def test_normalisation_statistics_come_from_training_images_only(tmp_path, mean):
    data = tiny_dataset()
    data.test_images[:] = 255  # far from the training images: any leak moves the mean
    run = trainer.Run(tiny_config(tmp_path, mean=mean), data)
    if mean == "pixel":
        np.testing.assert_array_equal(run.mean, pixel_mean(data.train_images))
    else:
        np.testing.assert_array_equal(run.mean, channel_stats(data.train_images)[0])
    if mean == "channel-std":
        np.testing.assert_array_equal(run.std, channel_stats(data.train_images)[1])


def test_the_runs_optimiser_is_the_configs(tmp_path):
    """The paper's SGD: Nesterov momentum 0.9 and weight decay 1e-4 reach the optimiser."""
    run = trainer.Run(tiny_config(tmp_path), tiny_dataset())
    opt = run.optimizer
    assert (opt.lr, opt.momentum, opt.nesterov, opt.weight_decay) == (0.05, 0.9, True, 1e-4)
    run = trainer.Run(tiny_config(tmp_path, momentum=0.5, weight_decay=0.01), tiny_dataset())
    assert (run.optimizer.momentum, run.optimizer.weight_decay) == (0.5, 0.01)


@pytest.mark.parametrize("mean", ["channel", "channel-std"])
def test_only_channel_std_divides_by_the_std(tmp_path, mean):
    """--mean channel subtracts the per-channel mean of the 0-255 pixels and scales by 1/255
    only; channel-std also divides by the per-channel std (unit variance)."""
    data = tiny_dataset()
    run = trainer.Run(tiny_config(tmp_path, mean=mean), data)
    mean_, std_ = channel_stats(data.train_images)
    spread = run.train_x.std(axis=(0, 2, 3))
    if mean == "channel":
        assert run.std is None
        np.testing.assert_allclose(spread, std_ / 255, rtol=1e-4)
    else:
        np.testing.assert_allclose(spread, 1, rtol=1e-4)


def test_evaluate_weighs_every_image_once():
    """With a short last batch (8 images in batches of 3), the loss is the mean over images,
    the cross-entropy of the whole set at once."""
    import minran.functional as F
    from minran import Tensor, no_grad
    model = build_model("attention56", widths=WIDTHS)
    images = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 4, 5, 6, 9])
    loss, _ = trainer.evaluate(model, images, labels, batch_size=3)
    model.eval()
    with no_grad():
        whole = float(F.cross_entropy(model(Tensor(images)), labels).data)
    assert loss == pytest.approx(whole, rel=1e-5)


def test_no_augment_flag_reaches_the_config():
    assert train_cifar.config_from_args(train_cifar.parse_args([])[0], "cpu").augment is True
    args = train_cifar.parse_args(["--no-augment"])[0]
    assert train_cifar.config_from_args(args, "cpu").augment is False


def test_nal_flag_means_naive_attention_learning():
    config = train_cifar.config_from_args(train_cifar.parse_args(["--nal"])[0], "cpu")
    assert config.residual is False
    assert train_cifar.config_from_args(train_cifar.parse_args([])[0], "cpu").residual is True


# ---- BLAS threads -------------------------------------------------------------------------
def blas_threads_in_training(tmp_path, monkeypatch, **variables):
    """With only `variables` of the BLAS ones set: the BLAS threads an epoch trained on, and
    the run's first line."""
    for name in backend.BLAS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    seen, real_epoch = [], trainer.train_epoch
    monkeypatch.setattr(trainer, "train_epoch",
                        lambda *a, **k: seen.append(backend.blas_threads()) or real_epoch(*a, **k))
    printed = []
    trainer.train(tiny_config(tmp_path), tiny_dataset(), log=printed.append)
    return seen, printed[0]


def test_training_on_the_cpu_uses_one_blas_thread(tmp_path, monkeypatch, two_blas_threads):
    seen, _ = blas_threads_in_training(tmp_path, monkeypatch)
    assert seen == [1] and backend.blas_threads() == 2  # and put back afterwards


def test_the_users_blas_threads_win(tmp_path, monkeypatch, two_blas_threads):
    seen, header = blas_threads_in_training(tmp_path, monkeypatch, OPENBLAS_NUM_THREADS="2")
    assert seen == [2] and "as OPENBLAS_NUM_THREADS=2 says" in header


def test_a_blas_thread_count_that_is_no_number_is_not_reported_as_obeyed(tmp_path, monkeypatch,
                                                                          two_blas_threads):
    seen, header = blas_threads_in_training(tmp_path, monkeypatch, OPENBLAS_NUM_THREADS="abc")
    assert seen == [1] and "as OPENBLAS_NUM_THREADS=abc says" not in header
    assert "1 BLAS thread" in header and "OPENBLAS_NUM_THREADS='abc' is no whole number" in header


# ---- the rest -----------------------------------------------------------------------------
def test_label_noise_and_float64_run(tiny_data, tmp_path):
    out = tmp_path / "noisy"
    train_cifar.main(COMMON + ["--data-dir", str(tiny_data), "--epochs", "1", "--out", str(out),
                               "--label-noise", "0.5", "--dtype", "float64", "--nal",
                               "--activation", "spatial", "--subset", "40"])
    state = trainer.load_checkpoint(out / "checkpoint.pkl")
    assert all(a.dtype == np.float64 for a in state["model"].values() if a.dtype.kind == "f")
    assert state["config"]["label_noise"] == 0.5 and state["config"]["residual"] is False


def test_reduced_widths_from_the_command_line(tiny_data, tmp_path):
    from minran.models import attention56
    out = tmp_path / "narrow"
    train_cifar.main(COMMON + ["--data-dir", str(tiny_data), "--epochs", "1", "--out", str(out),
                               "--subset", "40"])
    state = trainer.load_checkpoint(out / "checkpoint.pkl")
    assert tuple(state["config"]["widths"]) == WIDTHS
    assert sum(a.size for a in state["model"].values() if a.ndim > 1) == \
        sum(p.data.size for p in attention56(widths=WIDTHS).parameters() if p.data.ndim > 1)


REAL = pathlib.Path(os.environ.get("MINRAN_REAL_CIFAR", pathlib.Path(__file__).parents[1] / "data" / "real"))


@pytest.mark.realdata
@pytest.mark.skipif(not (REAL / "cifar-10-batches-py").is_dir(),
                    reason=f"real CIFAR-10 not found in {REAL}: to run this test, set MINRAN_REAL_CIFAR "
                           f"to a folder holding cifar-10-batches-py/ (your --data-dir)")
def test_real_cifar10_the_readme_quick_run_learns(tmp_path):
    """The README's quick run, exactly (28.5% measured there; chance is 10%)."""
    from minran.data import load_cifar10
    data = load_cifar10(REAL, download=False)
    assert data.train_labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]  # the official order
    argv = train_cifar.QUICK_RUN.replace("runs/quick", str(tmp_path / "quick")).split()
    train_cifar.main(argv + ["--data-dir", str(REAL), "--no-progress"])
    accuracies = [float(r["test_acc"]) for r in read_log(tmp_path / "quick")]
    assert len(accuracies) == 3 and accuracies[-1] > 0.25 and accuracies[-1] > accuracies[0]
    assert "--widths 8,16,16,16 --subset 5000 --test-subset 1000 --epochs 3 --schedule cosine" \
        in (pathlib.Path(__file__).parents[1] / "README.md").read_text()


# ---- issue 21: a loss that stops being a number stops the run --------------------------------
@pytest.fixture
def lr_turns_infinite(monkeypatch):
    """From iteration 2 on the schedule sets an infinite lr, as an absurd --lr would: the
    update of iteration 2 throws the weights to inf, and the loss of iteration 3 (counted
    from 1: the 4th) is the first that is not a number."""
    from minran.optim import MultiStepSchedule
    monkeypatch.setattr(MultiStepSchedule, "lr_at",
                        lambda self, i: float("inf") if i >= 2 else self.base_lr)


def test_a_loss_that_stops_being_a_number_stops_the_run(tiny_data, tmp_path, lr_turns_infinite):
    out = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        message = error_of(COMMON + ["--data-dir", str(tiny_data), "--epochs", "3", "--out", str(out)])
    assert [w for w in caught if w.category is RuntimeWarning] == []   # the one line says it
    # Two iterations an epoch: the 4th iteration is epoch 2's last; epoch 1 was saved.
    assert "the training loss became nan in epoch 2 at iteration 4" in message
    assert f"{out / 'checkpoint.pkl'} (epoch 1) is the last good checkpoint" in message
    assert "--lr" in message and "too large" in message
    assert trainer.load_checkpoint(out / "checkpoint.pkl")["epoch"] == 1
    assert len(read_log(out)) == 1 and not (out / "result.json").exists()


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_the_first_bad_loss_is_found_where_the_progress_is_read(tmp_path, lr_turns_infinite):
    """12 steps an epoch: the loss is first NaN at iteration 4, and the run learns it where
    it reads its progress anyway, after the 10th step, not by reading every step's loss."""
    run = trainer.Run(tiny_config(tmp_path, batch_size=2, subset=24), tiny_dataset())
    steps, real_step = [], run.optimizer.step
    run.optimizer.step = lambda: steps.append(1) or real_step()
    with pytest.raises(trainer.NonFiniteLoss) as error:
        trainer.train_epoch(run)
    assert (error.value.iteration, len(steps)) == (4, 10)
    assert np.isnan(error.value.value)


def test_a_test_loss_that_is_not_a_number_stops_before_the_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "evaluate", lambda *a, **k: (float("inf"), 0.1))
    with pytest.raises(trainer.TrainError, match=r"the test loss became inf after epoch 1.*"
                                                 r"no checkpoint of this run was written"):
        trainer.train(tiny_config(tmp_path), tiny_dataset(), log=lambda *a: None)
    assert not (tmp_path / "run").exists()


# ---- issue 21: estimates and words that agree -------------------------------------------------
def test_the_estimate_times_the_batch_the_run_really_uses(tmp_path):
    """A batch larger than the training set is the whole set: 40 images a step here, so a
    batch size of 100,000 must not scale the timed step up 2,500 times."""
    same = [trainer.estimate_seconds(trainer.Run(tiny_config(tmp_path, batch_size=b), tiny_dataset()))
            for b in (40, 100_000, 40)]
    assert same[1] < 5 * min(same[0], same[2])


def test_one_epoch_and_one_iteration_are_singular(tmp_path):
    printed = []
    trainer.train(tiny_config(tmp_path, batch_size=40), tiny_dataset(), log=printed.append)
    assert "1 epoch, 1 iteration of batch 40," in printed[0]
    assert trainer.count(1, "epoch") == "1 epoch" and trainer.count(2, "epoch") == "2 epochs"


def test_the_first_iteration_runs_at_the_given_lr(tmp_path):
    """A run of one iteration on the paper's (or the step) schedule: 40% of 1 iteration
    rounds to 0, which must not divide the lr before the first step."""
    for schedule in ("paper", "step"):
        assert min(trainer.plan(TrainConfig(epochs=1, batch_size=64, schedule=schedule), 64)[3]) == 1
        trainer.train(tiny_config(tmp_path / schedule, batch_size=40, schedule=schedule),
                      tiny_dataset(), log=lambda *a: None)
        assert float(read_log(tmp_path / schedule / "run")[0]["lr"]) == 0.05


def test_the_help_shows_its_examples_as_typed():
    text = train_cifar.build_parser().format_help()
    example = text.split("python train_cifar.py --device cpu")[1].split("\n    python")[0]
    assert " ".join(example.replace("\\\n", " ").split()) == \
        " ".join(train_cifar.QUICK_RUN.split()[2:])   # from --arch on, the README's quick run
    assert "        --subset" not in text.replace("\\\n        --subset", "")


def test_the_cpu_warning_names_no_duration_its_estimate_might_contradict(capsys, monkeypatch):
    monkeypatch.setattr(backend, "cupy", None)
    train_cifar.pick_device(None, full_run=True)
    err = capsys.readouterr().err
    assert not any(unit in err for unit in ("weeks", "days", "hours"))
    assert "expected time" in err


def test_cupy_without_any_driver_says_no_driver_is_installed(tiny_data, monkeypatch):
    monkeypatch.setattr(backend, "cupy", _fake_cupy("cudaErrorInsufficientDriver: CUDA driver "
                                                    "version is insufficient for CUDA runtime version"))
    monkeypatch.setattr(backend, "driver_cuda_version", lambda: None)
    message = error_of(["--device", "gpu", "--data-dir", str(tiny_data)])
    assert "no NVIDIA driver is installed" in message and "nvidia-smi" in message
    assert "insufficient" not in message.lower() and message.count(" but ") <= 1


def test_cupy_with_an_old_driver_names_both_versions(tiny_data, monkeypatch):
    monkeypatch.setattr(backend, "cupy", _fake_cupy("cudaErrorInsufficientDriver: ..."))
    monkeypatch.setattr(backend, "driver_cuda_version", lambda: (11, 4))
    message = error_of(["--device", "gpu", "--data-dir", str(tiny_data)])
    assert "CUDA 11.4" in message and "CUDA 12.2" in message and "update the NVIDIA driver" in message
    assert message.count(" but ") <= 1


def _fake_cupy(error):
    class Runtime:
        @staticmethod
        def getDeviceCount():
            raise RuntimeError(error)

        @staticmethod
        def runtimeGetVersion():
            return 12020

    class FakeCupy:
        __version__ = "14.2.0"

        class cuda:
            runtime = Runtime
    return FakeCupy


# ---- issue 21: the test suite's own words --------------------------------------------------
def test_the_real_data_tests_skip_reason_says_how_a_user_runs_it():
    reason = next(m.kwargs["reason"] for m in test_real_cifar10_the_readme_quick_run_learns.pytestmark
                  if m.name == "skipif")
    assert "MINRAN_REAL_CIFAR" in reason and "../shared" not in reason and ".ci" not in reason


def test_the_readme_quotes_no_test_counts_that_drift():
    import re
    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    assert not re.search(r"\d+ passed|\d+ (GPU-tier )?tests? skipped", readme)
