"""The Residual Attention Network (Wang et al., CVPR 2017) and its baseline.

Read residual_unit.py, then attention_module.py (trunk, soft mask, attention residual
learning), then network.py (stages and variants).
"""
import difflib
import functools
import inspect

from .attention_module import AttentionModule
from .network import VARIANTS, Network, ResidualAttentionNet, Variant
from .residual_unit import ResidualUnit
from .resnet import PreActResNet


def _strict(build):
    """Refuse options a builder does not have, naming them and the ones it has: a misspelt
    `residul=False` must fail, not quietly train the default network."""
    accepted = list(inspect.signature(build).parameters)

    @functools.wraps(build)
    def checked(*args, **options):
        unknown = [k for k in options if k not in accepted]
        if unknown:
            guesses = [g for k in unknown for g in difflib.get_close_matches(k, accepted, 1)]
            hint = f" (did you mean {', '.join(map(repr, guesses))}?)" if guesses else ""
            raise TypeError(f"{build.__name__}: unknown option {', '.join(map(repr, unknown))}"
                            f"{hint}; it accepts {', '.join(accepted)}")
        return build(*args, **options)
    return checked


def _builder(name):
    def build(num_classes=None, in_channels=3, width=1, residual=True, activation="mixed",
              mask="encoder-decoder", widths=None):
        if num_classes is None:
            num_classes = 1000 if VARIANTS[name].imagenet else 10
        return ResidualAttentionNet(VARIANTS[name], num_classes=num_classes,
                                    in_channels=in_channels, width=width, residual=residual,
                                    activation=activation, mask=mask, widths=widths)
    build.__name__ = name
    build.__doc__ = f"{name}: {VARIANTS[name]}"
    return _strict(build)


attention56 = _builder("attention56")
attention92 = _builder("attention92")
attention128 = _builder("attention128")
attention164 = _builder("attention164")
attention236 = _builder("attention236")
attention452 = _builder("attention452")
attention56_imagenet = _builder("attention56_imagenet")
attention92_imagenet = _builder("attention92_imagenet")


def _resnet_builder(depth, doc):
    def build(num_classes=10, in_channels=3, width=1, widths=None, residual=True,
              activation="mixed", mask="encoder-decoder"):
        # The attention options are named (so a misspelling is still an error) and ignored:
        # one command line or experiment config builds either kind of network.
        return PreActResNet(depth, num_classes=num_classes, in_channels=in_channels,
                            width=width, widths=widths)
    build.__name__ = f"preact_resnet{depth}"
    build.__doc__ = doc + "; attention-only options (residual, activation, mask) are ignored."
    return _strict(build)


preact_resnet164 = _resnet_builder(164, "The Table 5 baseline, paired with Attention-92")
preact_resnet56 = _resnet_builder(56, "As deep as Attention-56 (9 * 6 + 2), its label-noise baseline")


BUILDERS = {name: globals()[name] for name in VARIANTS}
BUILDERS["preact_resnet164"] = preact_resnet164
BUILDERS["preact_resnet56"] = preact_resnet56


def build_model(name, **options):
    """Look a network up by name: `build_model('attention92', num_classes=100)`."""
    if name not in BUILDERS:
        raise ValueError(f"build_model: unknown architecture {name!r}; "
                         f"choose from {', '.join(BUILDERS)}")
    return BUILDERS[name](**options)


__all__ = ["AttentionModule", "Network", "ResidualAttentionNet", "ResidualUnit", "PreActResNet",
           "Variant", "VARIANTS", "BUILDERS", "build_model", "preact_resnet164", "preact_resnet56",
           *VARIANTS]
