"""The attention module: a trunk branch T and a soft mask branch M, combined as (1 + M) * T.

    x = p units(input)
    T = t units(x)                                   trunk: ordinary feature processing
    M = soft_mask(x)                                 bottom-up top-down, values in [0, 1]
    H = (1 + M) * T    attention residual learning   (or M * T: naive attention learning)
    out = p units(H)

The soft mask goes down k levels (max-pool, r units; a skip unit on every level but the
lowest), r more units at the bottom, then back up: bilinear upsample to the size the level
had before its pooling, add that level's skip, r units; the last upsample feeds the head
bn-relu-conv1x1-bn-relu-conv1x1 and the mask activation.
"""
from .. import functional as F
from ..nn import BatchNorm2d, Conv2d, Module, ReLU, Sequential
from .residual_unit import units

ACTIVATIONS = ("mixed", "channel", "spatial")
MASKS = ("encoder-decoder", "local")


class AttentionModule(Module):
    def __init__(self, channels, poolings, p=1, t=2, r=1, residual=True, activation="mixed",
                 mask="encoder-decoder"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"AttentionModule: activation must be one of {ACTIVATIONS}, "
                             f"got {activation!r}")
        if mask not in MASKS:
            raise ValueError(f"AttentionModule: mask must be one of {MASKS}, got {mask!r}")
        if poolings < 1:
            raise ValueError(f"AttentionModule: poolings must be >= 1, got {poolings}")
        self.poolings, self.residual, self.activation, self.mask = poolings, residual, activation, mask
        C = channels
        self.pre = units(p, C)
        self.trunk = units(t, C)
        self.mask_down = Sequential(*[units(r, C) for _ in range(poolings)])
        self.mask_skips = Sequential(*[units(1, C) for _ in range(poolings - 1)])
        self.mask_bottom = units(r, C)
        self.mask_up = Sequential(*[units(r, C) for _ in range(poolings - 1)])
        self.mask_head = Sequential(BatchNorm2d(C), ReLU(), Conv2d(C, C, 1, bias=False),
                                    BatchNorm2d(C), ReLU(), Conv2d(C, C, 1, bias=False))
        self.post = units(p, C)

    def soft_mask(self, x):
        """M in [0, 1] (mixed, spatial) or unit-norm over channels (channel), shaped like x."""
        downsample = self.mask == "encoder-decoder"  # 'local': same units, full resolution
        sizes, skips, h = [], [], x
        for level, down in enumerate(self.mask_down):
            sizes.append(h.shape[2:])
            if downsample:
                h = F.max_pool2d(h, 3, stride=2, padding=1)
            h = down(h)
            if level < self.poolings - 1:
                skips.append(self.mask_skips[level](h))
        h = self.mask_bottom(h)
        for level in reversed(range(self.poolings)):
            if downsample:  # to the exact size before this level's pooling (7 -> 14 -> 28)
                h = F.upsample_bilinear(h, sizes[level], align_corners=True)
            if level > 0:
                h = self.mask_up[level - 1](h + skips[level - 1])
        h = self.mask_head(h)
        if self.activation == "mixed":
            return F.sigmoid(h)
        if self.activation == "channel":
            return F.channel_normalize(h)
        return F.sigmoid(F.spatial_normalize(h))

    def forward(self, x, return_mask=False):
        x = self.pre(x)
        trunk = self.trunk(x)
        mask = self.soft_mask(x)
        out = self.post(F.attention_combine(mask, trunk, residual=self.residual))
        return (out, mask) if return_mask else out

    def extra_repr(self):
        return (f"poolings={self.poolings}, residual={self.residual}, "
                f"activation={self.activation!r}, mask={self.mask!r}")
