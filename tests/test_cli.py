"""Every command, every kind of bad input: one line that names the option or file, what is
wrong and the fix; exit status non-zero; and nothing that was there before is changed (a run
folder given with --overwrite included), nor anything new left behind.

The cases run in-process through each command's main(argv) and fail before training; a few
run as real processes, to see that nothing fails earlier (at import) with a traceback."""
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import train_cifar
from minran import experiments, parallel, trainer, visualize
from minran.cuda import __main__ as cuda_main

from .test_run_folder import flip_weight_bytes, refuse_downloads, snapshot
from .test_train import finished, tiny_data  # noqa: F401

ROOT = pathlib.Path(__file__).resolve().parents[1]
MAINS = {"train": train_cifar.main, "visualize": visualize.main,
         "experiments": experiments.main, "cuda": cuda_main.main}

NET = ["--arch", "attention56", "--widths", "4,8,8,8", "--batch-size", "40"]


def train(*extra, out="{run}", overwrite=True):
    """train_cifar.py's options for a tiny run into `out` (by default replacing the run
    there, which must survive every failure), then `extra`, which wins where it repeats one."""
    return (["--device", "cpu", *NET, "--lr", "0.05", "--no-progress", "--data-dir", "{data}",
             "--epochs", "1", "--out", out] + (["--overwrite"] if overwrite else []) + list(extra))


def evaluate(*extra):
    return ["--device", "cpu", "--no-progress", "--data-dir", "{data}", *extra]


def experiment(*extra, out="{exp}", overwrite=True):
    return (["arl-vs-nal", *NET, "--epochs", "1", "--no-progress", "--data-dir", "{data}",
             "--out", out] + (["--overwrite"] if overwrite else []) + list(extra))


def masks(*extra, checkpoint="{run}/checkpoint.pkl"):
    return [checkpoint, "--out", "{new}", "--data-dir", "{data}", *extra]


PROC_SELF = "/proc/self"   # a folder that exists and takes no files, even for root
C = pytest.param
# (command, argv, environment, what the line must say: the option or file, and the fix)
CASES = [
    # ---- train_cifar.py ----
    C("train", train("--epochs", "0"), {}, ["--epochs", "1 or more"], id="train-zero-epochs"),
    C("train", train("--batch-size", "0"), {}, ["--batch-size", "1 or more"], id="train-zero-batch"),
    C("train", train("--width", "0"), {}, ["--width", "1 or more"], id="train-zero-width"),
    C("train", train("--seed", "-1"), {}, ["--seed", "0 or more"], id="train-negative-seed"),
    C("train", train("--momentum", "-0.5"), {}, ["--momentum", "0 or more"], id="train-negative-momentum"),
    C("train", train("--widths", "-8,16,16,16"), {}, ["--widths -8,16,16,16", "positive"],
      id="train-negative-widths"),
    C("train", train("--lr", "nan"), {}, ["--lr", "finite number"], id="train-nan-lr"),
    C("train", train("--lr", "inf"), {}, ["--lr", "finite number"], id="train-inf-lr"),
    C("train", train("--momentum", "nan"), {}, ["--momentum", "finite number"], id="train-nan-momentum"),
    C("train", train("--weight-decay", "nan"), {}, ["--weight-decay", "finite number"], id="train-nan-decay"),
    C("train", train("--label-noise", "nan"), {}, ["--label-noise", "finite number"], id="train-nan-noise"),
    C("train", train("--lr", "1000"), {}, ["--lr", "at most 10", "the paper's is 0.1"], id="train-huge-lr"),
    C("train", train("--momentum", "2"), {}, ["--momentum", "below 1"], id="train-huge-momentum"),
    C("train", train("--epochs", "1000000000000"), {}, ["--epochs", "at most 10,000", "205"],
      id="train-huge-epochs"),
    C("train", train("--width", "1000"), {}, ["--width", "at most 16"], id="train-huge-width"),
    C("train", train("--subset", "100000"), {}, ["--subset 100000", "between 1 and the 80"],
      id="train-huge-subset"),
    C("train", train("--epochs", "ten"), {}, ["--epochs", "whole number"], id="train-type-epochs"),
    C("train", train("--lr", "fast"), {}, ["--lr", "expected a number"], id="train-type-lr"),
    C("train", train("--widths", "3,5,7,9"), {}, ["--widths 3,5,7,9", "multiples of 4"],
      id="train-widths-not-multiples-of-4"),
    C("train", train("--widths", "4,8,8,8,8"), {}, ["--widths 4,8,8,8,8", "4 values", "attention56"],
      id="train-fifth-width-on-cifar"),
    C("train", train("--arch", "attention1"), {}, ["--arch", "choose from"], id="train-unknown-arch"),
    C("train", train("--data-dir", "{missing}"), {}, ["{missing}", "Place the archive there"],
      id="train-missing-data"),
    C("train", train("--data-dir", "{file}"), {}, ["{file}", "a file, not a folder"], id="train-data-dir-file"),
    C("train", train(out="{file}"), {}, ["--out {file}", "a file, not a folder"], id="train-out-file"),
    C("train", train(out="{file}/run"), {}, ["--out {file}/run", "cannot write there"],
      id="train-out-under-a-file"),
    C("train", train(out=PROC_SELF), {}, [f"--out {PROC_SELF}", "cannot write there"],
      id="train-out-unwritable"),
    C("train", train(overwrite=False), {}, ["--out {run} already holds a run", "--overwrite"],
      id="train-existing-run"),
    C("train", ["--device", "cpu", "--resume", "{other}/checkpoint.pkl", "--epochs", "2",
                "--out", "{run}"], {}, ["--out {run} already holds a run"],
      id="train-resume-into-existing-run"),
    C("train", train("--resume", "{missing}.pkl"), {}, ["{missing}.pkl: no such file"], id="train-resume-missing"),
    C("train", train("--resume", "{damaged}"), {}, ["{damaged}: damaged", "intact copy"],
      id="train-resume-damaged"),
    C("train", evaluate("--eval-only", "{damaged}"), {}, ["{damaged}: damaged", "intact copy"],
      id="train-eval-damaged"),
    C("train", evaluate("--eval-only", "{missing}.pkl"), {}, ["{missing}.pkl: no such file"],
      id="train-eval-missing"),
    C("train", evaluate("--eval-only", "{run}/checkpoint.pkl", "--arch", "attention92", "--lr", "5"),
      {}, ["--arch attention92", "--lr 5", "leave them out"], id="train-eval-other-network"),
    C("train", evaluate("--eval-only", "{run}/checkpoint.pkl", "--out", "{new}"), {},
      ["--out", "--eval-only"], id="train-eval-with-out"),
    C("train", train(), {"MINRAN_THREADS": "0"}, ["MINRAN_THREADS='0'", "positive whole number"],
      id="train-zero-threads"),
    C("train", train(), {"MINRAN_THREADS": "abc"}, ["MINRAN_THREADS='abc'", "positive whole number"],
      id="train-threads-not-a-number"),
    C("train", train(), {"MINRAN_THREADS": "100000"}, ["MINRAN_THREADS='100000'", "1,024"],
      id="train-huge-threads"),
    # ---- python -m minran.visualize ----
    C("visualize", masks(checkpoint="{missing}.pkl"), {}, ["{missing}.pkl: no such file"], id="masks-missing"),
    C("visualize", masks(checkpoint="{truncated}"), {}, ["{truncated}: not a whole checkpoint"],
      id="masks-truncated"),
    C("visualize", masks(checkpoint="{damaged}"), {}, ["{damaged}: damaged", "intact copy"],
      id="masks-damaged"),
    C("visualize", masks(checkpoint="{resnet}"), {}, ["{resnet}", "preact_resnet56 has no attention masks"],
      id="masks-no-attention"),
    C("visualize", masks("--images", "0"), {}, ["--images", "1 or more"], id="masks-zero-images"),
    C("visualize", masks("--images", "-3"), {}, ["--images", "1 or more"], id="masks-negative-images"),
    C("visualize", masks("--images", "nan"), {}, ["--images", "whole number"], id="masks-nan-images"),
    C("visualize", masks("--images", "17"), {}, ["--images 17", "16 test images"], id="masks-too-many"),
    C("visualize", masks("--images", "many"), {}, ["--images", "whole number"], id="masks-type-images"),
    C("visualize", masks("--out", "{file}"), {}, ["--out {file}", "a file, not a folder"], id="masks-out-file"),
    C("visualize", masks("--out", PROC_SELF), {}, [f"--out {PROC_SELF}", "cannot write there"],
      id="masks-out-unwritable"),
    C("visualize", masks("--data-dir", "{file}"), {}, ["{file}", "a file, not a folder"],
      id="masks-data-dir-file"),
    C("visualize", masks("--data-dir", "{missing}"), {}, ["{missing}", "Place the archive there"],
      id="masks-missing-data"),
    C("visualize", masks(), {"MINRAN_THREADS": "0"}, ["MINRAN_THREADS='0'"], id="masks-zero-threads"),
    # ---- python -m minran.experiments ----
    C("experiments", experiment("--runs", "foo"), {}, ["--runs foo", "its runs are ARL, NAL"],
      id="exp-unknown-run"),
    C("experiments", experiment("--epochs", "0"), {}, ["--epochs", "1 or more"], id="exp-zero-epochs"),
    C("experiments", experiment("--batch-size", "0"), {}, ["--batch-size", "1 or more"], id="exp-zero-batch"),
    C("experiments", experiment("--seed", "-1"), {}, ["--seed", "0 or more"], id="exp-negative-seed"),
    C("experiments", experiment("--epochs", "1000000000000"), {}, ["--epochs", "at most 10,000"],
      id="exp-huge-epochs"),
    C("experiments", experiment("--subset", "100000"), {}, ["--subset 100000", "between 1 and the 80"],
      id="exp-huge-subset"),
    C("experiments", experiment("--epochs", "nan"), {}, ["--epochs", "whole number"], id="exp-nan-epochs"),
    C("experiments", experiment("--epochs", "two"), {}, ["--epochs", "whole number"], id="exp-type-epochs"),
    C("experiments", experiment("--widths", "3,5,7,9"), {}, ["--widths 3,5,7,9", "multiples of 4"],
      id="exp-widths-not-multiples-of-4"),
    C("experiments", experiment("--data-dir", "{file}"), {}, ["{file}", "a file, not a folder"],
      id="exp-data-dir-file"),
    C("experiments", experiment("--data-dir", "{missing}"), {}, ["{missing}", "Place the archive there"],
      id="exp-missing-data"),
    C("experiments", experiment(out="{file}"), {}, ["--out {file}", "a file, not a folder"], id="exp-out-file"),
    C("experiments", experiment(out=PROC_SELF), {}, [f"--out {PROC_SELF}", "cannot write there"],
      id="exp-out-unwritable"),
    C("experiments", experiment(overwrite=False), {}, ["--out {exp} already holds", "--resume"],
      id="exp-existing-runs"),
    C("experiments", experiment("--resume"), {}, ["--resume", "--overwrite", "one of"],
      id="exp-resume-and-overwrite"),
    C("experiments", experiment("--resume", "--epochs", "2", overwrite=False), {},
      ["{exp}/ARL/checkpoint.pkl was trained with", "epochs=1 (now 2)", "--overwrite"],
      id="exp-resume-other-options"),
    C("experiments", experiment("--resume", out="{exp-damaged}", overwrite=False), {},
      ["{exp-damaged}/ARL/checkpoint.pkl: damaged", "intact copy"], id="exp-resume-damaged"),
    C("experiments", experiment(), {"MINRAN_THREADS": "-2"}, ["MINRAN_THREADS='-2'"], id="exp-negative-threads"),
    C("experiments", ["ablation"], {}, ["preset", "choose from"], id="exp-unknown-preset"),
    # ---- python -m minran.cuda ----
    C("cuda", ["--arch", "90"], {}, ["--arch 90", "sm_80"], id="cuda-arch-malformed"),
    C("cuda", ["--arch"], {}, ["--arch", "expected at least one argument"], id="cuda-arch-missing"),
    C("cuda", ["--archs", "sm_80"], {}, ["--archs", "unrecognized"], id="cuda-unknown-option"),
    C("cuda", ["--arch", "sm_999"], {}, ["--arch sm_999", "sm_80"], id="cuda-arch-unknown",
      marks=pytest.mark.compiled),   # NVRTC says which archs it knows: the compiled tier's rule
]


# Words a case's line must not say: an option the command does not have, a file that is not there.
ABSENT = {"masks-too-many": "--test-subset", "exp-zero-epochs": "checkpoint"}


@pytest.fixture(scope="module")
def finished_experiment(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("experiment") / "exp"
    experiments.main([_fill(a, {"data": tiny_data, "exp": out}) for a in experiment(overwrite=False)])
    return out


@pytest.fixture
def paths(finished, finished_experiment, tiny_data, tmp_path):
    """The files a case names, all inside tmp_path (but the shared tiny data)."""
    run = shutil.copytree(finished, tmp_path / "run")
    other = shutil.copytree(finished, tmp_path / "other")
    exp = shutil.copytree(finished_experiment, tmp_path / "exp")
    exp_damaged = shutil.copytree(finished_experiment, tmp_path / "exp-damaged")
    flip_weight_bytes(exp_damaged / "ARL" / "checkpoint.pkl")
    damaged = tmp_path / "damaged" / "checkpoint.pkl"
    damaged.parent.mkdir()
    shutil.copy(finished / "checkpoint.pkl", damaged)
    flip_weight_bytes(damaged)
    data = (finished / "checkpoint.pkl").read_bytes()
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(data[:len(data) // 2])
    state = trainer.load_checkpoint(finished / "checkpoint.pkl")
    resnet = tmp_path / "resnet.pkl"
    trainer.save_checkpoint(resnet, {**state, "config": {**state["config"], "arch": "preact_resnet56"}})
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder\n")
    return {"run": run, "other": other, "exp": exp, "exp-damaged": exp_damaged, "damaged": damaged,
            "truncated": truncated, "resnet": resnet, "file": a_file, "missing": tmp_path / "no" / "such",
            "new": tmp_path / "new" / "out", "data": tiny_data}


def _fill(text, paths):
    for name, path in paths.items():
        text = text.replace("{" + name + "}", str(path))
    return text


@pytest.mark.parametrize("command, argv, env, named", CASES)
def test_bad_input_gets_one_line_and_changes_nothing(command, argv, env, named, paths, tmp_path,
                                                     monkeypatch, capsys, request):
    if PROC_SELF in argv and not pathlib.Path(PROC_SELF).is_dir():
        pytest.skip(f"no {PROC_SELF} here")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(parallel, "_threads", None)   # MINRAN_THREADS is read afresh
    monkeypatch.setattr(trainer, "train_epoch", lambda *a, **k: pytest.fail("training started"))
    refuse_downloads(monkeypatch)
    before, data_before = snapshot(tmp_path), snapshot(paths["data"])
    with pytest.raises(SystemExit) as exit_info:
        MAINS[command]([_fill(a, paths) for a in argv])
    message = exit_info.value.code
    assert isinstance(message, str), f"exit status {message!r}, expected one line"
    assert message.startswith("error: ") and "\n" not in message and len(message) < 700, message
    for words in named:
        assert _fill(words, paths) in message, message
    assert ABSENT.get(request.node.callspec.id, "\0") not in message
    assert snapshot(tmp_path) == before and snapshot(paths["data"]) == data_before
    assert "resuming" not in capsys.readouterr().out


# ---- the same, as processes: nothing fails on the way in, before main() ----------------------
@pytest.mark.parametrize("argv, env, named", [
    (["train_cifar.py", "--device", "cpu"], {"MINRAN_THREADS": "0"}, "MINRAN_THREADS='0'"),
    (["-m", "minran.visualize", "no-such.pkl"], {}, "no-such.pkl: no such file"),
    (["-m", "minran.experiments", "arl-vs-nal", "--runs", "foo"], {}, "--runs foo"),
    (["-m", "minran.cuda", "--arch", "90"], {}, "--arch 90"),
], ids=["train", "visualize", "experiments", "cuda"])
def test_each_command_as_a_process_exits_with_one_line(argv, env, named, tmp_path):
    done = subprocess.run([sys.executable, *[str(ROOT / a) if a.endswith(".py") else a for a in argv]],
                          cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert named in lines[0] and list(tmp_path.iterdir()) == []


def test_a_resume_checks_every_option_that_makes_the_run():
    """Each field of TrainConfig that an option of train_cifar.py sets is either held to the
    checkpoint's value on --resume (train_cifar._FIXED) or one a resume may change; a field
    added without a decision fails here, instead of slipping through resumes unchecked."""
    from dataclasses import fields
    checked = {field for field, _ in train_cifar._FIXED.values()}
    may_change = set(trainer.RESUME_MAY_CHANGE) | {"epochs"}   # --epochs extends a run
    not_options = {"nesterov", "eval_batch_size"}              # no option sets these
    assert not checked & may_change
    assert checked | may_change | not_options == {f.name for f in fields(trainer.TrainConfig)}
