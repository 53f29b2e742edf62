#!/usr/bin/env python3
"""Train the Residual Attention Network on CIFAR-10 or CIFAR-100.

With no options this is the paper's experiment: Attention-92 on CIFAR-10, batch 64, SGD with
Nesterov momentum 0.9, weight decay 1e-4, lr 0.1 divided by 10 at 64k and 96k iterations,
160k iterations in all, on the GPU when CuPy finds one.

    python train_cifar.py --device gpu
    python train_cifar.py --device cpu --arch attention56 --subset 5000 --epochs 2
    python train_cifar.py --resume runs/cifar/checkpoint.pkl
    python train_cifar.py --eval-only runs/cifar/checkpoint.pkl
"""
import argparse
import sys

from minran import backend
from minran.data import DataError
from minran.models import BUILDERS
from minran.trainer import TrainConfig, Run, evaluate, load_checkpoint, parse_widths, train


def parse_args(argv):
    d = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "gpu"], default=None,
                   help="default: gpu when CuPy finds one, else cpu")
    p.add_argument("--arch", choices=list(BUILDERS), default=d.arch)
    p.add_argument("--dataset", choices=["cifar10", "cifar100"], default=d.dataset)
    p.add_argument("--data-dir", default=None,
                   help="folder holding (or receiving) the CIFAR archive; default $MINRAN_DATA "
                        "or ~/.cache/minran")
    p.add_argument("--epochs", type=int, default=None,
                   help="default: the paper's 160k iterations (205 epochs at batch 64)")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--schedule", choices=["paper", "step", "cosine"], default=d.schedule,
                   help="paper: /10 at 40%% and 60%% of the run (64k and 96k of 160k)")
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--subset", type=int, default=None, help="train on the first N images")
    p.add_argument("--test-subset", type=int, default=None, help="test on the first N images")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--out", default=d.out, help="folder for log.csv, checkpoint.pkl, result.json")
    p.add_argument("--resume", nargs="?", const="", default=None, metavar="CHECKPOINT",
                   help="continue a run (default: OUT/checkpoint.pkl)")
    p.add_argument("--eval-only", metavar="CHECKPOINT", help="only evaluate a checkpoint")
    p.add_argument("--label-noise", type=float, default=0.0, metavar="RATE",
                   help="flip this fraction of training labels (the paper's Table 5)")
    p.add_argument("--dtype", choices=["float32", "float64"], default=d.dtype)
    p.add_argument("--width", type=int, default=d.width, help="channel multiplier (4 = ports' width)")
    p.add_argument("--widths", default=None, metavar="STEM,S1,S2,S3",
                   help="explicit channel widths for reduced-scale runs, e.g. 8,32,64,128 "
                        "(overrides --width; the paper's are 16,64,128,256)")
    p.add_argument("--nal", action="store_true", help="naive attention learning M*T (Table 3)")
    p.add_argument("--activation", choices=["mixed", "channel", "spatial"], default=d.activation)
    p.add_argument("--mask", choices=["encoder-decoder", "local"], default=d.mask)
    p.add_argument("--mean", choices=["channel", "pixel", "channel-std"], default=d.mean)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def pick_device(requested):
    if requested == "gpu" and not backend.gpu_available():
        sys.exit("error: --device gpu, but CuPy is not installed or finds no CUDA GPU "
                 "(pip install -e '.[gpu]' on a machine with an NVIDIA GPU, or use --device cpu)")
    if requested:
        return requested
    if backend.gpu_available():
        return "gpu"
    print("warning: no GPU found, training on the CPU; the paper's full run takes weeks there: "
          "try --arch attention56 --subset 5000 --epochs 2 for a quick run", file=sys.stderr)
    return "cpu"


def main(argv=None):
    args = parse_args(argv)
    device = pick_device(args.device)
    if args.eval_only:
        state = load_checkpoint(args.eval_only)
        config = TrainConfig.from_dict({**state["config"], "device": device,
                                        "data_dir": args.data_dir or state["config"]["data_dir"],
                                        "epochs": state["config"]["epochs"] or 1})
        try:
            run = Run(config)
        except DataError as error:
            sys.exit(f"error: {error}")
        run.model.load_state_dict(state["model"])
        loss, acc = evaluate(run.model, run.test_x, run.test_y, config.eval_batch_size, device)
        print(f"{config.arch} from {args.eval_only} (epoch {state['epoch']}): "
              f"test loss {loss:.4f}, test accuracy {acc:.4f}")
        return acc
    try:
        widths = parse_widths(args.widths) if args.widths else None
    except ValueError as error:
        sys.exit(f"error: {error}")
    config = TrainConfig(
        arch=args.arch, dataset=args.dataset, data_dir=args.data_dir, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, schedule=args.schedule, momentum=args.momentum,
        weight_decay=args.weight_decay, subset=args.subset, test_subset=args.test_subset,
        seed=args.seed, out=args.out, device=device, dtype=args.dtype,
        label_noise=args.label_noise, width=args.width, widths=widths, residual=not args.nal,
        activation=args.activation, mask=args.mask, mean=args.mean, augment=not args.no_augment,
        progress=not args.no_progress)
    resume = None
    if args.resume is not None:  # the run goes on as it was configured; only the device may change
        path = args.resume or f"{args.out}/checkpoint.pkl"
        resume = load_checkpoint(path)
        saved = resume["config"]
        config = TrainConfig.from_dict({**saved, "device": device, "progress": not args.no_progress,
                                        "data_dir": args.data_dir or saved["data_dir"]})
        print(f"resuming {path}")
    try:
        return train(config, resume=resume)
    except DataError as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
