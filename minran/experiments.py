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
"""
import argparse
import dataclasses
import pathlib

from .trainer import TrainConfig, parse_widths, train

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


def run_preset(name, base, dataset=None, log=print, runs=None):
    """Train every run of a preset (or the `runs` named) from `base`; write results.md."""
    out = pathlib.Path(base.out)
    rows = []
    for run_name, changes, paper in select(name, runs):
        if changes.get("arch") == BASELINE:
            changes = {**changes, "arch": baseline_for(base.arch)}
        config = dataclasses.replace(base, out=str(out / run_name), **changes)
        history = train(config, dataset=dataset, log=log)
        error = 100 * (1 - history[-1]["test_acc"])
        rows.append({"run": run_name, "arch": config.arch, "epochs": len(history),
                     "error": error, "paper": paper.get(config.arch)})
    lines = [f"# {name}: {base.dataset}, {rows[0]['epochs']} epochs, seed {base.seed}"
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
    (out / "results.md").write_text("\n".join(lines) + "\n")
    log("\n".join(lines))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("preset", choices=list(PRESETS))
    p.add_argument("--arch", default="attention56")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--subset", type=int, default=None)
    p.add_argument("--test-subset", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--schedule", default="paper")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    p.add_argument("--widths", default=None,
                   help="channel widths stem,stage1,stage2,stage3 for reduced-scale runs, e.g. 8,32,64,128")
    p.add_argument("--runs", default=None, help="comma-separated run names of the preset to train")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    try:
        widths = parse_widths(args.widths) if args.widths else None
    except ValueError as error:
        p.error(str(error))
    base = TrainConfig(arch=args.arch, epochs=args.epochs, subset=args.subset,
                       test_subset=args.test_subset, batch_size=args.batch_size,
                       schedule=args.schedule, device=args.device, data_dir=args.data_dir,
                       seed=args.seed, out=args.out or f"runs/{args.preset}", widths=widths,
                       progress=not args.no_progress)
    run_preset(args.preset, base, runs=args.runs.split(",") if args.runs else None)


if __name__ == "__main__":
    main()
