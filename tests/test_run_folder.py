"""A run folder's life cycle, as the README promises it: a new run creates its --out (and
leaves nothing behind when it fails to start), a run already there is refused or, with
--overwrite, replaced only once the new run has written its first checkpoint, a run goes on
with --resume, and a damaged checkpoint is refused wherever it is loaded."""
import dataclasses
import hashlib
import pathlib
import pickle
import shutil

import pytest

import train_cifar
from minran import experiments, run_folder, trainer, visualize
from minran.data import cifar

from .test_train import COMMON, ctrl_c_in_epoch, error_of, finished, read_log, tiny_data  # noqa: F401


def snapshot(folder):
    """Everything under `folder`, hidden files and empty folders too: path -> SHA-256 of the
    file's bytes, or 'folder'."""
    folder = pathlib.Path(folder)
    return {str(p.relative_to(folder)): "folder" if p.is_dir() else
            hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))}


def flip_weight_bytes(path, count=64):
    """Flip `count` bytes in the middle of the largest weight array, where its bytes lie in
    the written checkpoint; returns the array's name."""
    data = bytearray(path.read_bytes())
    state = trainer.load_checkpoint(path)
    name, weights = max(state["model"].items(), key=lambda item: item[1].nbytes)
    raw = weights.tobytes()
    at = data.find(raw)
    assert at > 0 and data.find(raw, at + 1) < 0 and len(raw) >= 2 * count
    start = at + len(raw) // 2 - count // 2
    data[start:start + count] = bytes(b ^ 0xFF for b in data[start:start + count])
    path.write_bytes(bytes(data))
    return name


def refuse_downloads(monkeypatch):
    """A data folder without CIFAR-10 tries a download: make it fail at once, offline."""
    monkeypatch.setitem(cifar.SOURCES, "cifar10", dataclasses.replace(
        cifar.SOURCES["cifar10"], url="http://127.0.0.1:9/none"))


# ---- new: created by the run, and gone again when the run fails to start --------------------
def test_a_failed_start_leaves_no_folder_behind(tmp_path, monkeypatch):
    """The README's main job with no data reachable: no runs/cifar/ (nor runs/) is left, and
    the --data-dir that did not exist is not created either."""
    refuse_downloads(monkeypatch)
    monkeypatch.chdir(tmp_path)
    message = error_of(["--device", "cpu", "--data-dir", "no/such/data", "--no-progress"])
    assert "no/such/data" in message and "Place the archive there by hand" in message
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_before_the_first_checkpoint_leaves_no_folder_behind(tiny_data, tmp_path):
    out = tmp_path / "new" / "run"
    with ctrl_c_in_epoch(1), pytest.raises(SystemExit):
        train_cifar.main(COMMON + ["--data-dir", str(tiny_data), "--epochs", "1", "--out", str(out)])
    assert list(tmp_path.iterdir()) == []


# ---- refused, and overwritten only after the new run's first checkpoint ----------------------
def test_overwrite_keeps_the_old_run_until_the_new_one_fails(finished, tiny_data, tmp_path,
                                                             monkeypatch, capsys):
    """The new run's data, model or seed fail, or Ctrl-C comes before its first checkpoint:
    the old run is there again, byte for byte, and no folder it was kept in is left."""
    out = shutil.copytree(finished, tmp_path / "run")
    before = snapshot(out)
    args = COMMON + ["--epochs", "1", "--out", str(out), "--overwrite"]
    refuse_downloads(monkeypatch)
    error_of(args + ["--data-dir", str(tmp_path / "nothing-here")])
    assert snapshot(out) == before and not (tmp_path / "nothing-here").exists()
    error_of(args + ["--data-dir", str(tiny_data), "--subset", "100000"])
    assert snapshot(out) == before
    with ctrl_c_in_epoch(1), pytest.raises(SystemExit):
        train_cifar.main(args + ["--data-dir", str(tiny_data)])
    assert snapshot(out) == before
    assert f"the run that was in {out} is back as it was" in capsys.readouterr().out


def test_overwrite_deletes_the_old_run_only_after_the_first_checkpoint(finished, tiny_data,
                                                                       tmp_path, monkeypatch):
    out = shutil.copytree(finished, tmp_path / "run")
    old = {name: (out / name).read_bytes() for name in run_folder.RUN_FILES}
    kept_at_first_save, real_save = [], trainer.save_checkpoint

    def save(path, state):
        # When the new run writes its first checkpoint the old files are still whole, aside.
        aside = out / run_folder.ASIDE
        kept_at_first_save.append({p.name: p.read_bytes() for p in aside.iterdir()}
                                  if aside.is_dir() else {})
        real_save(path, state)
    monkeypatch.setattr(trainer, "save_checkpoint", save)
    train_cifar.main(COMMON + ["--data-dir", str(tiny_data), "--epochs", "2", "--out", str(out),
                               "--overwrite", "--seed", "7"])
    assert kept_at_first_save[0] == old and kept_at_first_save[1] == {}
    assert sorted(p.name for p in out.iterdir()) == sorted(run_folder.RUN_FILES)
    assert trainer.load_checkpoint(out / "checkpoint.pkl")["config"]["seed"] == 7


def test_a_run_set_aside_by_a_killed_overwrite_is_never_lost(finished, tiny_data, tmp_path):
    """A process killed while the old run was set aside: the next run in that folder, with or
    without --overwrite, refuses and says how to put the old run back."""
    out = shutil.copytree(finished, tmp_path / "run")
    aside = out / run_folder.ASIDE
    aside.mkdir()
    for name in run_folder.RUN_FILES:
        (out / name).rename(aside / name)
    before = snapshot(out)
    for extra in ([], ["--overwrite"]):
        message = error_of(COMMON + ["--data-dir", str(tiny_data), "--epochs", "1",
                                     "--out", str(out)] + extra)
        assert str(aside) in message and "move its files back" in message
        assert snapshot(out) == before


# ---- resumed -------------------------------------------------------------------------------
def test_resume_into_an_out_holding_a_run_is_refused_before_it_says_resuming(finished, tmp_path,
                                                                             capsys):
    other = shutil.copytree(finished, tmp_path / "other")
    message = error_of(["--device", "cpu", "--resume", str(finished / "checkpoint.pkl"),
                        "--epochs", "2", "--out", str(other)])
    assert f"--out {other} already holds a run" in message
    assert "resuming" not in capsys.readouterr().out


# ---- damaged: every load checks the checkpoint's checksum ------------------------------------
def test_a_checkpoint_with_flipped_bytes_is_refused_wherever_it_is_loaded(finished, tiny_data,
                                                                          tmp_path, capsys):
    run = shutil.copytree(finished, tmp_path / "run")
    ckpt = run / "checkpoint.pkl"
    flip_weight_bytes(ckpt)
    exp = tmp_path / "exp"   # the damaged run as one of an experiment's
    shutil.copytree(run, exp / "ARL")
    before = snapshot(tmp_path)
    common = ["--device", "cpu", "--data-dir", str(tiny_data), "--no-progress"]
    for argv in (["--eval-only", str(ckpt)], ["--resume", str(ckpt), "--epochs", "2"]):
        message = error_of(argv + common)
        assert f"{ckpt}: damaged" in message and "SHA-256" in message and "intact copy" in message
    for main, argv, path in (
            (visualize.main, [str(ckpt), "--out", str(tmp_path / "masks")], ckpt),
            (experiments.main, ["arl-vs-nal", "--runs", "ARL", "--out", str(exp), "--resume"],
             exp / "ARL" / "checkpoint.pkl")):
        with pytest.raises(SystemExit) as exit_info:
            main(argv + ["--data-dir", str(tiny_data)])
        assert f"{path}: damaged" in str(exit_info.value.code)
    assert "test accuracy" not in capsys.readouterr().out
    assert snapshot(tmp_path) == before


def test_a_truncated_checkpoint_says_how_much_is_missing(finished, tmp_path):
    cut = tmp_path / "cut.pkl"
    data = (finished / "checkpoint.pkl").read_bytes()
    cut.write_bytes(data[:len(data) - 100])
    message = error_of(["--eval-only", str(cut), "--device", "cpu"])
    assert f"{cut}: not a whole checkpoint" in message and "100 of its" in message


def test_a_checkpoint_from_before_checksums_loads_with_a_warning(finished, tiny_data, tmp_path,
                                                                 capsys):
    """Checkpoints written before minran wrote checksums are plain pickles. They are accepted
    (the runs made so far stay usable), and each load says in one line that the file could
    not be verified; the checkpoints a resumed run writes carry a checksum again."""
    state = trainer.load_checkpoint(finished / "checkpoint.pkl")
    old = tmp_path / "old" / "checkpoint.pkl"
    old.parent.mkdir()
    old.write_bytes(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
    capsys.readouterr()
    acc = train_cifar.main(["--eval-only", str(old), "--device", "cpu", "--data-dir",
                            str(tiny_data), "--no-progress"])
    assert acc == pytest.approx(state["history"][-1]["test_acc"])
    assert f"warning: {old} has no checksum" in capsys.readouterr().err
    train_cifar.main(["--resume", str(old), "--epochs", "2", "--device", "cpu", "--no-progress"])
    assert old.read_bytes().startswith(trainer.CHECKPOINT_MAGIC)
    capsys.readouterr()
    assert trainer.load_checkpoint(old)["epoch"] == 2
    assert "no checksum" not in capsys.readouterr().err


# ---- the experiment runner's folders --------------------------------------------------------
EXPERIMENT = ["arl-vs-nal", "--arch", "attention56", "--widths", "4,8,8,8", "--epochs", "2",
              "--batch-size", "40", "--no-progress"]


def test_experiments_refuse_a_folder_holding_their_runs_and_resume_where_they_stopped(
        tiny_data, tmp_path, monkeypatch):
    out = tmp_path / "exp"
    argv = EXPERIMENT + ["--data-dir", str(tiny_data), "--out", str(out)]
    # ARL trains its 2 epochs, NAL its first; Ctrl-C in NAL's second.
    with ctrl_c_in_epoch(4), pytest.raises(SystemExit):
        experiments.main(argv)
    assert len(read_log(out / "ARL")) == 2 and len(read_log(out / "NAL")) == 1
    before = snapshot(out)
    with pytest.raises(SystemExit) as exit_info:
        experiments.main(argv)
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and "\n" not in message
    for named in (f"--out {out} already holds", "ARL", "NAL", "--resume", "--overwrite", "new --out"):
        assert named in message
    assert snapshot(out) == before
    # --resume keeps ARL as it is and trains NAL's second epoch only.
    arl = snapshot(out / "ARL")
    epochs, real_epoch = [], trainer.train_epoch
    monkeypatch.setattr(trainer, "train_epoch",
                        lambda run, *a, **k: epochs.append(run.config.out) or real_epoch(run, *a, **k))
    experiments.main(argv + ["--resume"])
    assert epochs == [str(out / "NAL")] and snapshot(out / "ARL") == arl
    assert len(read_log(out / "NAL")) == 2
    table = (out / "results.md").read_text()
    assert "| ARL |" in table and "| NAL |" in table
