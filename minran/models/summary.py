"""A per-stage table of output shapes, parameters and multiply-accumulates."""
import sys

import numpy as np

from .. import functional as F
from ..tensor import Tensor, no_grad


def summary(model, input_size=None, file=None):
    """Run one image through `model` and print what each part makes and costs."""
    imagenet = getattr(getattr(model, "variant", None), "imagenet", False)
    size = input_size or (224 if imagenet else 32)
    dtype = model.parameters()[0].dtype
    x = Tensor(np.zeros((1, model.in_channels, size, size), dtype=dtype))
    if model.parameters()[0].device == "gpu":
        x = x.to("gpu")
    was_training = model.training
    model.eval()
    rows = []

    def run(name, fn, h, params):
        with F.counting_macs() as macs:
            out = fn(h)
        rows.append((name, out.shape[1:], params, sum(macs.values())))
        return out

    def count(module):
        return sum(p.size for p in module.parameters())

    with no_grad():
        h = run("stem", model.stem, x, count(model.stem))
        if imagenet:
            h = F.max_pool2d(F.relu(h), 3, stride=2, padding=1)
        for i, stage in enumerate(model.stages, 1):
            h = run(f"stage{i}", lambda h, s=stage: model_stage(s, h), h, count(stage))
        head = count(model.head_bn) + count(model.fc)
        run("head", lambda h: model.fc(F.global_avg_pool(F.relu(model.head_bn(h)))), h, head)
    model.train(was_training)

    lines = [f"{type(model).__name__}  input 1x{model.in_channels}x{size}x{size}",
             f"{'part':<8}{'output':>18}{'params':>14}{'MACs':>16}"]
    for name, shape, params, macs in rows:
        lines.append(f"{name:<8}{'x'.join(map(str, shape)):>18}{params:>14,}{macs:>16,}")
    total_params = model.num_parameters()
    total_macs = sum(r[3] for r in rows)
    lines.append(f"{'total':<8}{'':>18}{total_params:>14,}{total_macs:>16,}")
    lines.append(f"= {total_params / 1e6:.2f}M parameters (BN scales and shifts included, "
                 f"running statistics not), {total_macs / 1e9:.2f} GMACs per image")
    text = "\n".join(lines)
    print(text, file=file or sys.stdout)
    return text


def model_stage(stage, h):
    for layer in stage:
        h = layer(h)
    return h
