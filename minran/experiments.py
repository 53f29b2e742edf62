"""The paper's ablations at a budget you choose, each result next to the paper's number.

    python -m minran.experiments arl-vs-nal --epochs 10 --subset 10000 --out runs/exp
    python -m minran.experiments label-noise --arch attention92 --epochs 20 --runs \
        attention-noise10,resnet-noise10

Presets: arl-vs-nal (Table 3), activations (Table 1), mask-type (Table 4), label-noise
(Table 5: the attention network against a plain pre-activation ResNet without attention
modules at 10-70% noise; the paper pairs Attention-92 with ResNet-164, and Attention-56 is
paired here with the equally deep ResNet-56). Every run is a normal train_cifar run in its
own folder; `results.md` collects the final (last-epoch) test errors. Shortened budgets can
change the ranking: read them as such.

A folder that holds a preset's runs is refused: `--resume` finishes them where they stopped
(finished runs are kept as they are), `--overwrite` trains them anew (each old run kept until
its new one has saved its first epoch).
"""
import argparse
import dataclasses
import pathlib

from . import cli
from .run_folder import existing_run_files, refuse_a_file
from .trainer import (RESUME_MAY_CHANGE, TrainConfig, TrainError, count, finished,
                      load_checkpoint, save_atomic, train)

BASELINE = "baseline"   # stands for the plain ResNet that matches the preset's attention net
BASELINES = {"attention56": "preact_resnet56", "attention92": "preact_resnet164"}

# (run name, config changes, the paper's CIFAR-10 top-1 error in % by network)
PRESETS = {
    "arl-vs-nal": [("ARL", {"residual": True}, {"attention56": 5.52, "attention92": 4.99}),
                   ("NAL", {"residual": False}, {"attention56": 5.89, "attention92": 5.35})],
    "activations": [("mixed", {"activation": "mixed"}, {"attention56": 5.52}),
                    ("channel", {"activation": "channel"}, {"attention56": 6.24}),
                    ("spatial", {"activation": "spatial"}, {"attention56": 6.33})],
    "mask-type": [("encoder-decoder", {"mask": "encoder-decoder"}, {"attention56": 5.52}),
                  ("local-conv", {"mask": "local"}, {"attention56": 6.48})],
    "label-noise": [
        (f"{net}-noise{int(rate * 100)}",
         {"label_noise": rate, **({"arch": BASELINE} if net == "resnet" else {})},
         {"attention92": paper} if net == "attention" else {"preact_resnet164": paper})
        for rate, a92, r164 in ((0.1, 5.15, 5.93), (0.3, 5.79, 6.61), (0.5, 7.27, 8.35), (0.7, 15.75, 17.21))
        for net, paper in (("attention", a92), ("resnet", r164))],
}


def baseline_for(arch):
    """The plain ResNet compared with `arch` in the label-noise preset."""
    return BASELINES.get(arch, "preact_resnet164")


def select(preset, names=None):
    """The preset's runs, or only those named (to spend a small budget where it matters)."""
    runs = PRESETS[preset]
    if not names:
        return runs
    known = [r[0] for r in runs]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"experiments: preset {preset!r} has no run {', '.join(unknown)}; "
                         f"its runs are {', '.join(known)}")
    return [r for r in runs if r[0] in names]


def _configs(name, base, runs):
    for run_name, changes, paper in select(name, runs):
        if changes.get("arch") == BASELINE:
            changes = {**changes, "arch": baseline_for(base.arch)}
        yield run_name, dataclasses.replace(base, out=str(pathlib.Path(base.out) / run_name),
                                            **changes), paper


def _finished(config):
    """The history of the run in config.out if it is finished, None if it is to be resumed;
    refuses a checkpoint of another run (other options)."""
    path = pathlib.Path(config.out) / "checkpoint.pkl"
    if not path.exists():
        held = ", ".join(existing_run_files(config.out))
        raise TrainError(f"--resume: {config.out} holds {held} but no checkpoint.pkl to resume "
                         f"from; pass --overwrite to train the preset's runs anew, or give a "
                         f"new --out")
    state = load_checkpoint(path)
    ours = dataclasses.asdict(config)
    differ = [f"{k}={v!r} (now {ours[k]!r})" for k, v in state["config"].items()
              if k in ours and k not in RESUME_MAY_CHANGE and v != ours[k]
              and not (isinstance(v, list) and tuple(v) == ours[k])]
    if differ:
        raise TrainError(f"--resume: {path} was trained with {', '.join(differ)}; give the "
                         f"options it was run with, or pass --overwrite to train the preset's "
                         f"runs anew, or give a new --out")
    return state["history"] if finished(state) else None


def check_out(name, base, runs, resume, overwrite):
    """Refuse an --out that holds this preset's runs, unless resumed or overwritten."""
    out = pathlib.Path(base.out)
    refuse_a_file(out)
    held = [run_name for run_name, config, _ in _configs(name, base, runs)
            if existing_run_files(config.out)]
    if (held or (out / "results.md").exists()) and not (resume or overwrite):
        what = f"runs of {name} ({', '.join(held)})" if held else "a results.md"
        raise TrainError(f"--out {out} already holds {what}; pass --resume to finish them "
                         f"where they stopped (finished runs are kept), --overwrite to train "
                         f"them anew, or give a new --out")


def run_preset(name, base, dataset=None, log=print, runs=None, resume=False, overwrite=False):
    """Train every run of a preset (or the `runs` named) from `base`; write results.md.
    With `resume`, finished runs are kept and stopped ones go on from their checkpoints."""
    out = pathlib.Path(base.out)
    check_out(name, base, runs, resume, overwrite)
    rows = []
    for run_name, config, paper in _configs(name, base, runs):
        held = resume and existing_run_files(config.out)
        history = _finished(config) if held else None
        if history is None:
            ckpt = str(pathlib.Path(config.out) / "checkpoint.pkl") if held else None
            history = train(config, dataset=dataset, log=log, resume=ckpt, overwrite=overwrite)
        else:
            log(f"{run_name}: finished before, kept as it is")
        error = 100 * (1 - history[-1]["test_acc"])
        rows.append({"run": run_name, "arch": config.arch, "epochs": len(history),
                     "error": error, "paper": paper.get(config.arch)})
    lines = [f"# {name}: {base.dataset}, {count(rows[0]['epochs'], 'epoch')}, seed {base.seed}"
             f"{', subset ' + str(base.subset) if base.subset else ''}"
             f"{', test subset ' + str(base.test_subset) if base.test_subset else ''}"
             f"{', widths ' + str(tuple(base.widths)) if base.widths else ''}"
             f", schedule {base.schedule}, batch {base.batch_size}, device {base.device}",
             "", "| run | network | test error % (last epoch) | paper (full schedule) |",
             "|---|---|---|---|"]
    for r in rows:
        paper = f"{r['paper']:.2f}" if r["paper"] is not None else "– (paper ran another depth)"
        lines.append(f"| {r['run']} | {r['arch']} | {r['error']:.2f} | {paper} |")
    out.mkdir(parents=True, exist_ok=True)
    save_atomic(out / "results.md", lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
    log("\n".join(lines))
    return rows


def main(argv=None):
    from .data import DataError
    from .models import BUILDERS
    from .run_folder import RunFolderError
    p = cli.Parser(prog="python -m minran.experiments", description=__doc__,
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("preset", choices=list(PRESETS))
    p.add_argument("--arch", choices=list(BUILDERS), default="attention56")
    cli.add_run_options(p, cli.epochs(), "epochs of every run (default 10)")
    p.add_argument("--schedule", choices=["paper", "step", "cosine"], default="paper")
    p.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    p.add_argument("--runs", default=None, help="comma-separated run names of the preset to train")
    p.add_argument("--resume", action="store_true",
                   help="finish the preset's runs in --out where they stopped")
    p.set_defaults(epochs=10, batch_size=64, seed=0)
    args = p.parse_args(argv)
    runs = args.runs.split(",") if args.runs else None
    if runs:
        try:
            select(args.preset, runs)
        except ValueError as error:
            p.error(f"--runs {args.runs}: {error}")
    with cli.one_line_errors(TrainError, DataError, RunFolderError):
        cli.check_environment()
        if args.resume and args.overwrite:
            raise TrainError("--resume and --overwrite: give one of them (--resume finishes the "
                             "runs in --out, --overwrite trains them anew)")
        widths = cli.parse_widths(args.widths, args.arch) if args.widths else None
        base = TrainConfig(arch=args.arch, epochs=args.epochs, subset=args.subset,
                           test_subset=args.test_subset, batch_size=args.batch_size,
                           schedule=args.schedule, device=cli.pick_device(args.device),
                           data_dir=args.data_dir, seed=args.seed,
                           out=args.out or f"runs/{args.preset}", widths=widths,
                           progress=not args.no_progress, cuda_graph=not args.no_cuda_graph)
        run_preset(args.preset, base, runs=runs, resume=args.resume, overwrite=args.overwrite)


if __name__ == "__main__":
    main()
