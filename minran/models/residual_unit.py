"""The pre-activation bottleneck residual unit (He et al. 2016, "Identity Mappings").

    a = relu(bn1(x))
    branch: conv1x1(a, C/4) -> bn-relu -> conv3x3(C/4, stride s) -> bn-relu -> conv1x1(C)
    out = branch + x                    (same channels and stride 1: the identity shortcut)
    out = branch + conv1x1(a, stride s) (only where channels or stride change)
"""
from ..nn import BatchNorm2d, Conv2d, Module


class ResidualUnit(Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        if out_channels % 4:
            raise ValueError(f"ResidualUnit: out_channels must be a multiple of 4 (the "
                             f"bottleneck is a quarter as wide), got {out_channels}")
        mid = out_channels // 4
        self.bn1 = BatchNorm2d(in_channels)
        self.conv1 = Conv2d(in_channels, mid, 1, bias=False)
        self.bn2 = BatchNorm2d(mid)
        self.conv2 = Conv2d(mid, mid, 3, stride=stride, padding=1, bias=False)
        self.bn3 = BatchNorm2d(mid)
        self.conv3 = Conv2d(mid, out_channels, 1, bias=False)
        projection = in_channels != out_channels or stride != 1
        self.shortcut = Conv2d(in_channels, out_channels, 1, stride=stride, bias=False) \
            if projection else None

    def forward(self, x):
        a = self.bn1(x, relu=True)              # a = relu(bn1(x)), fused into one op
        h = self.conv1(a)
        h = self.conv2(self.bn2(h, relu=True))
        h = self.conv3(self.bn3(h, relu=True))
        return h + (x if self.shortcut is None else self.shortcut(a))


def units(n, channels):
    """n identity-shortcut units of one width, one after another."""
    from ..nn import Sequential
    return Sequential(*[ResidualUnit(channels, channels) for _ in range(n)])
