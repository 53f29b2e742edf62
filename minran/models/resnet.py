"""A plain pre-activation ResNet with the same stem, units and head, no attention modules.

The baseline of the paper's label-noise experiment (Table 5 compares Attention-92 with
ResNet-164): depth 9n + 2, n bottleneck units per stage, widths 64/128/256.
"""
from ..nn import Sequential
from .network import Network, cifar_stem
from .residual_unit import ResidualUnit


class PreActResNet(Network):
    def __init__(self, depth=164, num_classes=10, in_channels=3, width=1, widths=None):
        super().__init__()
        if (depth - 2) % 9:
            raise ValueError(f"PreActResNet: depth must be 9n + 2 (164 = 9*18 + 2), got {depth}")
        n = (depth - 2) // 9
        self.num_classes, self.in_channels = num_classes, in_channels
        widths = widths or tuple(w * width for w in (16, 64, 128, 256))
        self.stem = cifar_stem(in_channels, widths[0])
        previous, stages = widths[0], []
        for i, channels in enumerate(widths[1:4]):
            layers = [ResidualUnit(previous, channels, stride=1 if i == 0 else 2)]
            layers += [ResidualUnit(channels, channels) for _ in range(n - 1)]
            stages.append(Sequential(*layers))
            previous = channels
        self.stage1, self.stage2, self.stage3 = stages
        self._build_head(previous, num_classes)
