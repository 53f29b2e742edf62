"""A per-stage table of output shapes, parameters and multiply-accumulates."""
import sys

import numpy as np

from .. import functional as F
from ..tensor import Tensor, no_grad


def summary(model, input_size=None, file=None):
    """Run one image through `model` and print what each part makes and costs."""
    size = input_size or model.input_size
    dtype = model.parameters()[0].dtype
    x = Tensor(np.zeros((1, model.in_channels, size, size), dtype=dtype))
    if model.parameters()[0].device == "gpu":
        x = x.to("gpu")
    rows = []

    def run(name, part, h, *modules):
        with F.counting_macs() as macs:
            out = part(h)
        params = sum(p.size for m in modules for p in m.parameters())
        rows.append((name, out.shape[1:], params, sum(macs.values())))
        return out

    # eval mode, each module's own given back; the same parts, in the same order, as the
    # network's own forward
    with model.evaluating(), no_grad():
        h = run("stem", model.stem, x, model.stem)
        for i, stage in enumerate(model.stages, 1):
            h = run(f"stage{i}", stage, h, stage)
        run("head", model.head, h, model.head_bn, model.fc)

    lines = [f"{type(model).__name__}  input 1x{model.in_channels}x{size}x{size}",
             f"{'part':<8}{'output':>18}{'params':>14}{'MACs':>16}"]
    for name, shape, params, macs in rows:
        lines.append(f"{name:<8}{'x'.join(map(str, shape)):>18}{params:>14,}{macs:>16,}")
    total_params = model.num_parameters()
    total_macs = sum(r[3] for r in rows)
    lines.append(f"{'total':<8}{'':>18}{total_params:>14,}{total_macs:>16,}")
    params, params_unit = _amount(total_params)
    macs, macs_unit = _amount(total_macs)
    lines.append(f"= {params}{params_unit} parameters (BN scales and shifts included, "
                 f"running statistics not), {macs} {macs_unit}MACs per image")
    text = "\n".join(lines)
    print(text, file=file or sys.stdout)
    return text



def _amount(n):
    """(number, unit prefix): 1,030,362 -> ("1.03", "M"), 122,825,216 -> ("0.12", "G"); below
    100,000 the exact count, so a tiny network's 3,802 parameters do not print as 0.00M."""
    if n >= 1e8:
        return f"{n / 1e9:.2f}", "G"
    if n >= 1e5:
        return f"{n / 1e6:.2f}", "M"
    return f"{n:,}", ""
