"""Where the network looks: each test image beside its attention masks, stage by stage.

    python -m minran.visualize runs/cifar/checkpoint.pkl --images 16 --out masks/

For every image it writes one PNG: the image, then for each stage the mean over channels of
that stage's masks, resized to 32x32 and laid over the image as a heat map (red = high).
`index.md` lists each file with its true class and the prediction. It also turns the run's
log.csv into learning_curves.svg when the log sits beside the checkpoint.
"""
import argparse
import csv
import pathlib

import numpy as np

from . import functional as F
from .plots import learning_curves_svg, overlay, upscale, write_png
from .tensor import Tensor, no_grad


def stage_masks(model, x):
    """Logits, and per stage the channel-mean mask of its modules at the input's size."""
    with no_grad():
        logits, masks = model(x, return_masks=True)
        by_size = {}
        for m in masks:  # modules of one stage share a mask size; stages do not
            by_size.setdefault(m.shape[2:], []).append(m.data.mean(axis=1, keepdims=True))
        maps = []
        for size, group in by_size.items():
            mean = Tensor(np.mean(group, axis=0))
            maps.append(F.upsample_bilinear(mean, x.shape[2:], align_corners=True).data[:, 0])
    return logits.data, maps


def to_rgb(images_uint8):
    return images_uint8.transpose(0, 2, 3, 1)


def render(model, images_uint8, normalized, labels, classes, out, scale=4):
    """Write one PNG per image and an index; returns the file names."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    logits, maps = stage_masks(model, Tensor(normalized))
    predictions = logits.argmax(axis=1)
    rgb = to_rgb(images_uint8)
    gap = np.full((32 * scale, 4, 3), 255, np.uint8)
    lines = ["| file | true | predicted |", "|---|---|---|"]
    names = []
    for i in range(len(images_uint8)):
        panels = [upscale(rgb[i], scale)]
        for stage_map in maps:
            m = stage_map[i]
            m = (m - m.min()) / (m.max() - m.min() + 1e-12)  # contrast within each map
            panels += [gap, upscale(overlay(rgb[i], m), scale)]
        name = f"{i:03d}_{classes[labels[i]]}_as_{classes[predictions[i]]}.png"
        write_png(out / name, np.concatenate(panels, axis=1))
        names.append(name)
        lines.append(f"| ![]({name}) | {classes[labels[i]]} | {classes[predictions[i]]} |")
    header = (f"Each row: the test image, then the channel-mean attention mask of stages "
              f"1..{len(maps)} over it (red = high attention).\n\n")
    (out / "index.md").write_text(header + "\n".join(lines) + "\n")
    return names


def main(argv=None):
    from . import cli
    from .data import DataError, load
    from .run_folder import RunFolder, RunFolderError
    from .trainer import Run, TrainConfig, TrainError, load_checkpoint, load_weights, take_first
    p = cli.Parser(prog="python -m minran.visualize", description=__doc__,
                   formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--images", type=cli.POSITIVE, default=16,
                   help="how many test images, from the first (default 16)")
    p.add_argument("--out", default="masks", help="folder for the pictures (default masks)")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    with cli.one_line_errors(TrainError, DataError, RunFolderError):
        cli.check_environment()
        out = pathlib.Path(args.out)
        # --out is made (or found writable) first, and removed again if anything fails.
        with RunFolder(out, refuse_a_run=False) as folder:
            state = load_checkpoint(args.checkpoint)
            saved = state["config"]
            if not saved["arch"].startswith("attention"):
                raise TrainError(f"{args.checkpoint}: a {saved['arch']} has no attention masks to "
                                 f"show; give the checkpoint of an attention network")
            config = TrainConfig.from_dict({**saved, "device": "cpu", "test_subset": None,
                                            "epochs": saved["epochs"] or 1,
                                            "data_dir": args.data_dir or saved["data_dir"]})
            data = load(config.dataset, config.data_dir)
            data.test_images, data.test_labels = take_first(
                data.test_images, data.test_labels, args.images, "--images", "test")
            run = Run(config, dataset=data)
            load_weights(run.model, state, args.checkpoint)
            names = render(run.model, data.test_images, run.test_x, run.test_y, run.classes, out)
            folder.keep()
        log = pathlib.Path(args.checkpoint).with_name("log.csv")
        if log.exists():
            with open(log) as f:
                learning_curves_svg(list(csv.DictReader(f)), out / "learning_curves.svg",
                                    title=f"{saved['arch']} on {saved['dataset']}")
    print(f"wrote {len(names)} mask pictures and index.md to {args.out}")


if __name__ == "__main__":
    main()
