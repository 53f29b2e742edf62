#!/usr/bin/env python3
"""Train the Residual Attention Network on CIFAR-10 or CIFAR-100.

With no options this is the paper's experiment: Attention-92 on CIFAR-10, batch 64, SGD with
Nesterov momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 at 64k and 96k iterations,
exactly 160k iterations in all, on the GPU when CuPy finds one.

    python train_cifar.py --device gpu
    python train_cifar.py --device cpu --arch attention56 --widths 8,16,16,16 \\
        --subset 5000 --test-subset 1000 --epochs 3 --schedule cosine --out runs/quick
    python train_cifar.py --resume runs/cifar/checkpoint.pkl
    python train_cifar.py --resume runs/cifar/checkpoint.pkl --epochs 250   (train on)
    python train_cifar.py --eval-only runs/cifar/checkpoint.pkl

Epochs and iterations: an epoch is ceil(N / batch) iterations over the N training images.
Without --epochs the run lasts the paper's 160,000 iterations at batch 64 (as many images at
other batch sizes): with 50,000 images, 204 epochs of 782 iterations and a 205th that stops
at iteration 160,000, after 472. With --epochs E it lasts E x ceil(N / batch) iterations,
and the paper's schedule divides the lr by 10 at 40% and 60% of them.

Each run writes log.csv, checkpoint.pkl (after every epoch, atomically, with a checksum) and
result.json (the last epoch's test accuracy) into --out. A new run refuses an --out that
already holds a run; --overwrite replaces it once the new run has saved its first epoch.
"""
import argparse
import contextlib
import pathlib

from minran import backend, cli
from minran.cli import FRACTION, MAX_LR, MAX_WIDTH, number, parse_widths
from minran.data import DataError
from minran.models import BUILDERS
from minran.run_folder import RunFolderError
from minran.trainer import (TrainConfig, TrainError, Run, count, evaluate, finished,
                            load_checkpoint, load_weights, train)

# The README's first run: learning shows within about 2 minutes on a 2-core CPU.
QUICK_RUN = ("--device cpu --arch attention56 --widths 8,16,16,16 --subset 5000 "
             "--test-subset 1000 --epochs 3 --schedule cosine --out runs/quick")


def build_parser():
    d = TrainConfig()
    p = cli.Parser(prog="python train_cifar.py", description=__doc__,
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "gpu"], default=None,
                   help="default: gpu when CuPy finds one, else cpu")
    p.add_argument("--arch", choices=list(BUILDERS), default=d.arch)
    p.add_argument("--dataset", choices=["cifar10", "cifar100"], default=d.dataset)
    cli.add_run_options(
        p, cli.epochs(", or leave --epochs out for the paper's 160,000 iterations"),
        "passes over the training images, each ceil(N / batch) iterations; default: the "
        "paper's 160,000 iterations at batch 64 (about 205 epochs of 50,000 images, the last "
        "one stopping part way at exactly 160k)")
    p.add_argument("--lr", type=number(float, 0.0, MAX_LR, " (the paper's is 0.1; at 10 SGD "
                                                           "already learns nothing, and at 100 "
                                                           "the loss turns to NaN within a few "
                                                           "dozen iterations)"))
    p.add_argument("--schedule", choices=["paper", "step", "cosine"], default=d.schedule,
                   help="paper: /10 at 40%% and 60%% of the run's iterations (64k and 96k of "
                        "160k); step: at 50%% and 75%%; cosine: down to 0")
    p.add_argument("--momentum", type=number(float, 0.0, 1.0, " (momentum 1 or more never "
                                                              "lets old gradients fade, so the "
                                                              "steps grow without bound; the "
                                                              "paper's is 0.9)", below=True))
    p.add_argument("--weight-decay", type=number(float, 0.0, 1.0, " (the paper's is 1e-4; 1 or "
                                                                  "more would shrink the weights "
                                                                  "faster than the loss can "
                                                                  "grow them)", below=True))
    p.add_argument("--resume", nargs="?", const="", default=None, metavar="CHECKPOINT",
                   help="continue a run (default: OUT/checkpoint.pkl); it writes into --out, "
                        "else into the checkpoint's folder; only --epochs (to extend), "
                        "--device, --data-dir, --no-progress and --no-cuda-graph may differ from "
                        "the run's")
    p.add_argument("--eval-only", metavar="CHECKPOINT",
                   help="only evaluate a checkpoint (--device, --data-dir, --no-progress may be "
                        "given; other options must be the run's own)")
    p.add_argument("--label-noise", type=FRACTION, default=0.0, metavar="RATE",
                   help="flip this fraction of training labels (the paper's Table 5)")
    p.add_argument("--dtype", choices=["float32", "float64"], default=d.dtype)
    p.add_argument("--width", type=number(int, 1, MAX_WIDTH, " (parameters grow with its "
                                                             "square: 16 is already 256 times "
                                                             "the paper's network)"),
                   default=d.width, help="channel multiplier (4 = ports' width)")
    p.add_argument("--nal", action="store_true", help="naive attention learning M*T (Table 3)")
    p.add_argument("--activation", choices=["mixed", "channel", "spatial"], default=d.activation)
    p.add_argument("--mask", choices=["encoder-decoder", "local"], default=d.mask)
    p.add_argument("--mean", choices=["channel", "pixel", "channel-std"], default=d.mean)
    p.add_argument("--no-augment", action="store_true")
    p.set_defaults(batch_size=d.batch_size, lr=d.lr, momentum=d.momentum,
                   weight_decay=d.weight_decay, seed=d.seed, out=d.out)
    return p


_UNSET = object()


def parse_args(argv):
    """The options, and the set of those given on the command line (resume compares those)."""
    p = build_parser()
    args = p.parse_args(argv)
    p.set_defaults(**{name: _UNSET for name in vars(args)})
    given = {name for name, value in vars(p.parse_args(argv)).items() if value is not _UNSET}
    return args, given


def config_from_args(args, device):
    """The TrainConfig a new run gets from its options."""
    widths = parse_widths(args.widths, args.arch) if args.widths else None
    return TrainConfig(
        arch=args.arch, dataset=args.dataset, data_dir=args.data_dir, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, schedule=args.schedule, momentum=args.momentum,
        weight_decay=args.weight_decay, subset=args.subset, test_subset=args.test_subset,
        seed=args.seed, out=args.out, device=device, dtype=args.dtype,
        label_noise=args.label_noise, width=args.width, widths=widths, residual=not args.nal,
        activation=args.activation, mask=args.mask, mean=args.mean, augment=not args.no_augment,
        progress=not args.no_progress, cuda_graph=not args.no_cuda_graph)


# Options a resumed run must share with its checkpoint: option -> (config field, value).
# With trainer.RESUME_MAY_CHANGE and --epochs, every field of TrainConfig that an option sets
# (tests/test_cli.py holds it so, so a new option cannot slip through a resume unchecked).
_FIXED = {
    "arch": ("arch", lambda a: a.arch), "dataset": ("dataset", lambda a: a.dataset),
    "batch_size": ("batch_size", lambda a: a.batch_size), "lr": ("lr", lambda a: a.lr),
    "schedule": ("schedule", lambda a: a.schedule), "momentum": ("momentum", lambda a: a.momentum),
    "weight_decay": ("weight_decay", lambda a: a.weight_decay),
    "subset": ("subset", lambda a: a.subset), "test_subset": ("test_subset", lambda a: a.test_subset),
    "seed": ("seed", lambda a: a.seed), "label_noise": ("label_noise", lambda a: a.label_noise),
    "dtype": ("dtype", lambda a: a.dtype), "width": ("width", lambda a: a.width),
    "widths": ("widths", lambda a: parse_widths(a.widths, a.arch) if a.widths else None),
    "nal": ("residual", lambda a: not a.nal),
    "activation": ("activation", lambda a: a.activation), "mask": ("mask", lambda a: a.mask),
    "mean": ("mean", lambda a: a.mean), "no_augment": ("augment", lambda a: not a.no_augment),
}


def _option(name):
    return "--" + name.replace("_", "-")


def check_same_run(args, given, saved, option, path, what):
    """Refuse, by name, any option given with a value other than the checkpoint's run's."""
    conflicts = []
    for name in sorted(given & set(_FIXED)):
        field, value = _FIXED[name]
        ours, theirs = value(args), saved.get(field)
        if isinstance(theirs, list):
            theirs = tuple(theirs)
        if ours != theirs:
            shown = "" if isinstance(ours, bool) else f" {getattr(args, name)}"
            conflicts.append((f"{_option(name)}{shown}", f"{field}={theirs!r}"))
    if conflicts:
        raise TrainError(
            f"{option} {path}: {', '.join(c[0] for c in conflicts)} "
            f"{'contradicts' if len(conflicts) == 1 else 'contradict'} the checkpoint's run "
            f"({', '.join(c[1] for c in conflicts)}); leave "
            f"{'it' if len(conflicts) == 1 else 'them'} out to {what}")


def resume_config(args, given, state, path, device):
    """The checkpoint's config with what may change: --out (default: the checkpoint's own
    folder), --device, --data-dir, --no-progress, --no-cuda-graph, and --epochs to extend the
    run. Any other option given with a value other than the run's is refused, by name."""
    saved = state["config"]
    check_same_run(args, given, saved, "--resume", path,
                   "continue the run as it was, or start a new run with a new --out")
    epochs = saved["epochs"]
    if "epochs" in given:
        planned = state.get("plan", {}).get("epochs") or saved["epochs"]
        if planned is not None and args.epochs < planned:
            raise TrainError(f"--epochs {args.epochs}: the checkpoint's run is planned for "
                             f"{count(planned, 'epoch')}, and --epochs can only extend a run; "
                             f"leave it out, or give {planned} or more")
        if planned is not None and args.epochs > planned and saved["schedule"] == "cosine":
            raise TrainError(f"--epochs {args.epochs}: the checkpoint's run has a cosine schedule "
                             f"that ends at lr 0 after epoch {planned}, so more epochs would not "
                             f"train; start a new run with --epochs {args.epochs} instead")
        epochs = args.epochs
    done = state["schedule"]["iteration"]
    if finished(state) and "epochs" not in given:
        raise TrainError(f"--resume {path}: this run has already trained all its "
                         f"{count(state['epoch'], 'epoch')} ({count(done, 'iteration')}); give a "
                         f"larger --epochs to extend it, or --eval-only to test it")
    out = args.out if "out" in given else str(pathlib.Path(path).parent)
    return TrainConfig.from_dict({**saved, "device": device, "progress": not args.no_progress,
                                  "cuda_graph": not args.no_cuda_graph,
                                  "data_dir": args.data_dir or saved["data_dir"],
                                  "epochs": epochs, "out": out})


def pick_device(requested, full_run=False, warn=True):
    """The device (see cli.pick_device); training the paper's full run on the CPU, the
    warning says what to try first."""
    advice = (f"; the paper's full run is a GPU job (the expected time printed below says how "
              f"long it would take here): for a first run try python train_cifar.py {QUICK_RUN}"
              if full_run else "")
    return cli.pick_device(requested, warn, advice)


# What --eval-only may be given beside the checkpoint: it trains nothing and writes nothing.
_NOT_FOR_EVAL = ("epochs", "out", "overwrite", "resume")


def eval_only(args, given):
    unused = [_option(name) for name in _NOT_FOR_EVAL if name in given]
    if unused:
        one = len(unused) == 1
        raise TrainError(f"--eval-only {args.eval_only}: {', '.join(unused)} "
                         f"{'has' if one else 'have'} no effect there (it trains nothing and "
                         f"writes nothing); leave {'it' if one else 'them'} out")
    state = load_checkpoint(args.eval_only)
    check_same_run(args, given, state["config"], "--eval-only", args.eval_only,
                   "evaluate the checkpoint's own network as it was trained")
    device = pick_device(args.device, warn=False)
    config = TrainConfig.from_dict({**state["config"], "device": device,
                                    "data_dir": args.data_dir or state["config"]["data_dir"],
                                    "epochs": state["config"]["epochs"] or 1})
    run = Run(config)
    load_weights(run.model, state, args.eval_only)
    with backend.cpu_blas_threads(1) if device == "cpu" else contextlib.nullcontext():
        loss, acc = evaluate(run.model, run.test_x, run.test_y, config.eval_batch_size, device,
                             progress=not args.no_progress)
    print(f"{config.arch} from {args.eval_only} (epoch {state['epoch']}): "
          f"test loss {loss:.4f}, test accuracy {acc:.4f}")
    return acc


def run_main(argv):
    args, given = parse_args(argv)
    cli.check_environment()
    if args.widths:
        parse_widths(args.widths, args.arch)
    if args.eval_only:
        return eval_only(args, given)
    if args.resume is not None:
        path = args.resume or str(pathlib.Path(args.out) / "checkpoint.pkl")
        resume = load_checkpoint(path)
        # A resumed run warns about nothing: it said what it had to when it started.
        device = pick_device(args.device, warn=False)
        config = resume_config(args, given, resume, path, device)
        return train(config, resume=resume, resumed_from=path, overwrite=args.overwrite)
    device = pick_device(args.device, full_run=args.epochs is None)
    return train(config_from_args(args, device), overwrite=args.overwrite)


def main(argv=None):
    with cli.one_line_errors(TrainError, DataError, RunFolderError):
        return run_main(argv)


if __name__ == "__main__":
    main()
