"""The Residual Attention Network: a stem, stages of attention modules, and a classifier.

Each variant is one row of `VARIANTS`: how many attention modules each stage holds and the
module's p, t, r. The stage decides the mask's pooling depth k (3, 2, 1 from the largest map
to the smallest), so the smallest mask map is the same size in every stage.
"""
from dataclasses import dataclass

from .. import functional as F
from ..nn import BatchNorm2d, Conv2d, Linear, MaxPool2d, Module, ReLU, Sequential
from .attention_module import AttentionModule
from .residual_unit import ResidualUnit


@dataclass(frozen=True)
class Variant:
    modules: tuple          # attention modules in each stage
    p: int = 1
    t: int = 2
    r: int = 1
    imagenet: bool = False


VARIANTS = {
    # CIFAR (Sec. 4.1): the same m in each stage; trunk depth 36m + 20.
    "attention56": Variant((1, 1, 1)),
    "attention92": Variant((2, 2, 2)),
    "attention128": Variant((3, 3, 3)),
    "attention164": Variant((4, 4, 4)),
    "attention236": Variant((6, 6, 6)),
    "attention452": Variant((6, 6, 6), p=2, t=4, r=3),
    # ImageNet (Table 2).
    "attention56_imagenet": Variant((1, 1, 1), imagenet=True),
    "attention92_imagenet": Variant((1, 2, 3), imagenet=True),
}

POOLINGS = (3, 2, 1)   # mask pooling depth k of stages 1, 2, 3


class Network(Module):
    """What every network here shares: a stem, stages, and the head bn-relu-average-fc.

    A subclass builds `stem`, the stages named in `stage_names` (Sequentials of residual
    units and, in the attention network, attention modules), `head_bn` and `fc`; the pass
    through them, the input check and `summary()` are written once, here.
    """
    stage_names = ("stage1", "stage2", "stage3")
    input_size = 32        # what summary() feeds when given no size

    @property
    def stages(self):
        return [getattr(self, n) for n in self.stage_names]

    def _build_head(self, channels, num_classes):
        self.head_bn = BatchNorm2d(channels)
        self.fc = Linear(channels, num_classes)

    def head(self, h):
        """Pre-activation networks end with the bn-relu their last unit did not apply."""
        return self.fc(F.global_avg_pool(self.head_bn(h, relu=True)))

    def _check_input(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{type(self).__name__}: expected input (N, {self.in_channels}, H, W), "
                             f"got {x.shape}")

    def forward(self, x, return_masks=False):
        """Logits (N, classes); with return_masks, also every attention module's mask."""
        self._check_input(x)
        masks = []
        h = self.stem(x)
        for stage in self.stages:
            for layer in stage:
                if isinstance(layer, AttentionModule):
                    h, mask = layer(h, return_mask=True)
                    masks.append(mask)
                else:
                    h = layer(h)
        logits = self.head(h)
        return (logits, masks) if return_masks else logits

    def summary(self, input_size=None, file=None):
        from .summary import summary
        return summary(self, input_size, file=file)


def cifar_stem(in_channels, width):
    """One 3x3 convolution; no bn-relu, since the first residual unit starts with one."""
    return Sequential(Conv2d(in_channels, width, 3, padding=1, bias=False))


class ResidualAttentionNet(Network):
    def __init__(self, variant, num_classes=10, in_channels=3, width=1, residual=True,
                 activation="mixed", mask="encoder-decoder", widths=None):
        """`widths` = (stem, stage1, stage2, stage3[, top]) overrides `width` (tiny test nets)."""
        super().__init__()
        if isinstance(variant, str):
            variant = VARIANTS[variant]
        if not (isinstance(width, int) and width >= 1):
            raise ValueError(f"ResidualAttentionNet: width must be a positive int, got {width!r}")
        self.variant, self.num_classes, self.in_channels = variant, num_classes, in_channels
        options = dict(p=variant.p, t=variant.t, r=variant.r, residual=residual,
                       activation=activation, mask=mask)
        if widths is None:
            widths = (64, 256, 512, 1024, 2048) if variant.imagenet else (16, 64, 128, 256)
            widths = tuple(w * width for w in widths)
        stem_width, top, widths = widths[0], widths[-1], widths[1:4]
        if variant.imagenet:   # Table 2: conv 7x7 /2, then max pool 3x3 /2
            self.stem = Sequential(Conv2d(in_channels, stem_width, 7, stride=2, padding=3,
                                          bias=False), BatchNorm2d(stem_width), ReLU(),
                                   MaxPool2d(3, stride=2, padding=1))
            self.downsample = 4
            self.stage_names = ("stage1", "stage2", "stage3", "stage4")
            self.input_size = 224
        else:
            self.stem = cifar_stem(in_channels, stem_width)
            self.downsample = 1
        previous = stem_width
        stages = []
        for i, (channels, m, k) in enumerate(zip(widths, variant.modules, POOLINGS)):
            layers = [ResidualUnit(previous, channels, stride=1 if i == 0 else 2)]
            layers += [AttentionModule(channels, k, **options) for _ in range(m)]
            if not variant.imagenet:
                layers.append(ResidualUnit(channels, channels))
            stages.append(Sequential(*layers))
            previous = channels
        self.stage1, self.stage2, self.stage3 = stages
        if variant.imagenet:   # Table 2: three units of width 2048 at 7x7
            self.stage4 = Sequential(ResidualUnit(previous, top, stride=2),
                                     ResidualUnit(top, top), ResidualUnit(top, top))
            previous = top
        self._build_head(previous, num_classes)

    def min_input_size(self):
        """Smallest H (= W) whose every mask level still halves: 8 for CIFAR, 32 for ImageNet."""
        return max(self.downsample * 2 ** stage * 2 ** k for stage, k in enumerate(POOLINGS))

    def _check_input(self, x):
        super()._check_input(x)
        smallest = self.min_input_size()
        if min(x.shape[2:]) < smallest:
            raise ValueError(f"ResidualAttentionNet: input {x.shape[2]}x{x.shape[3]} is too "
                             f"small: stage 1's mask pools {POOLINGS[0]} times after a "
                             f"/{self.downsample} stem, so inputs must be at least "
                             f"{smallest}x{smallest}")

    def attention_modules(self):
        return [m for m in self.modules() if isinstance(m, AttentionModule)]
