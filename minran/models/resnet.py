"""A plain pre-activation ResNet with the same stages and units, no attention modules.

The baseline of the paper's label-noise experiment (Table 5 compares Attention-92 with
ResNet-164): depth 9n + 2, n bottleneck units per stage, widths 64/128/256.
"""
from .. import functional as F
from ..nn import BatchNorm2d, Conv2d, Linear, Module, Sequential
from .residual_unit import ResidualUnit


class PreActResNet(Module):
    def __init__(self, depth=164, num_classes=10, in_channels=3, width=1, widths=None):
        super().__init__()
        if (depth - 2) % 9:
            raise ValueError(f"PreActResNet: depth must be 9n + 2 (164 = 9*18 + 2), got {depth}")
        n = (depth - 2) // 9
        self.in_channels = in_channels
        widths = widths or tuple(w * width for w in (16, 64, 128, 256))
        self.stem = Sequential(Conv2d(in_channels, widths[0], 3, padding=1, bias=False))
        previous, stages = widths[0], []
        for i, channels in enumerate(widths[1:4]):
            layers = [ResidualUnit(previous, channels, stride=1 if i == 0 else 2)]
            layers += [ResidualUnit(channels, channels) for _ in range(n - 1)]
            stages.append(Sequential(*layers))
            previous = channels
        self.stage1, self.stage2, self.stage3 = stages
        self.head_bn = BatchNorm2d(previous)
        self.fc = Linear(previous, num_classes)

    @property
    def stages(self):
        return [self.stage1, self.stage2, self.stage3]

    def forward(self, x, return_masks=False):
        h = self.stem(x)
        for stage in self.stages:
            h = stage(h)
        logits = self.fc(F.global_avg_pool(F.relu(self.head_bn(h))))
        return (logits, []) if return_masks else logits

    def summary(self, input_size=None, file=None):
        from .summary import summary
        return summary(self, input_size, file=file)
