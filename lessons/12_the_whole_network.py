"""Lesson 12: the whole network: a stem, three stages of attention modules, a classifier.

Files: minran/models/network.py (Variant, VARIANTS, POOLINGS, ResidualAttentionNet),
       minran/models/__init__.py (build_model and a builder per variant),
       minran/models/summary.py (the per-stage table)
Paper: Sec. 4.1 (m modules per stage, depth 36m + 20), Table 2 (ImageNet), Table 6 (sizes).

network.py stacks what lessons 9-11 built. A CIFAR network is a 3x3 convolution (the stem),
then three stages, each a residual unit (the second and third halve the map with stride 2
and double the channels), m attention modules and one more residual unit, then bn-relu,
global average pooling and a fully connected layer. The variants differ in m and in the
modules' p, t, r: one row of VARIANTS each. The stage sets the modules' number of
poolings k: 3, 2, 1 for maps of 32, 16, 8, so the smallest mask map is 4x4 in every stage.
"""
from minran.models import VARIANTS, AttentionModule, ResidualAttentionNet, Variant, build_model
from minran.models.network import POOLINGS

for name, variant in VARIANTS.items():
    print(f"{name:<22} {variant}")

net = build_model("attention56")
table = net.summary()

# Stage by stage: what each holds, the map size its modules see, and how far their masks pool.
stages = []
for number, stage in enumerate(net.stages, 1):
    modules = [layer for layer in stage if isinstance(layer, AttentionModule)]
    size = 32 // 2 ** (number - 1)
    smallest = size // 2 ** modules[0].poolings
    stages.append((size, modules[0].poolings, smallest))
    print(f"stage {number}: {len(stage) - len(modules)} residual units and {len(modules)} attention "
          f"module(s) on {size}x{size} maps; the mask pools k = {modules[0].poolings} times, "
          f"down to {smallest}x{smallest}")
print("k by stage, from network.POOLINGS:", POOLINGS)


def trunk_depth(network):
    """Weight layers on the path from the image to the logits through every trunk: the stem's
    convolution, three per residual unit, three per unit of each module's p + t + p (its
    mask branch runs beside that path, not on it), and the classifier. A projection
    shortcut is not counted: it runs beside its unit's three layers."""
    layers = sum(1 for m in network.stem.modules() if type(m).__name__ == "Conv2d") + 1
    for stage in network.stages:
        for layer in stage:
            if isinstance(layer, AttentionModule):
                layers += 3 * (len(layer.pre) + len(layer.trunk) + len(layer.post))
            else:
                layers += 3
    return layers


# Depth: 36m + 20 for the CIFAR networks with p, t = 1, 2. Each of the 3m modules puts
# p + t + p = 4 units (12 layers) on the trunk path, so 36m; the stem, two units per stage
# (18 layers) and the classifier make the 20. Attention-452 has m = 6 and p, t = 2, 4:
# 24 layers per module, 18 * 24 + 20 = 452.
print("\nnetwork                depth: counted, by formula        parameters   the paper's")
PAPER_PARAMETERS = {"attention92": 1.9e6, "attention236": 5.1e6, "attention452": 8.6e6,
                    "attention56_imagenet": 31.9e6, "attention92_imagenet": 51.3e6}
rows = {}
for name, variant in VARIANTS.items():
    model = build_model(name)
    m = variant.modules[0]
    if variant.imagenet:   # Table 2: no closing unit per stage, and a fourth stage of 3 units
        formula, by_formula = "(Table 2)", int(name[len("attention"):].split("_")[0])
    elif (variant.p, variant.t) == (1, 2):
        formula, by_formula = f"36*{m}+20", 36 * m + 20
    else:
        per_module = 3 * (2 * variant.p + variant.t)
        formula, by_formula = f"{per_module}*3*{m}+20", per_module * 3 * m + 20
    rows[name] = (trunk_depth(model), by_formula, model.num_parameters())
    paper = PAPER_PARAMETERS.get(name)
    shown = f"{paper / 1e6:.1f}M ({rows[name][2] / paper - 1:+.1%})" if paper else "not given"
    print(f"{name:<22} {rows[name][0]:>5}, {formula:>12} = {by_formula:<4} "
          f"{rows[name][2]:>12,}   {shown}")

# Attention-452 comes out 18% larger than the paper says. The paper does not print its layer
# widths; these (16, 64, 128, 256, which fit the other rows) give this count for p, t, r =
# 2, 4, 3. The ImageNet rows have widths in Table 2, and match within 2.3%.

# ImageNet's Attention-56 also has its multiply-accumulates in the paper: 6.3 G per image.
imagenet = build_model("attention56_imagenet").summary()

# A Variant is all it takes to build another depth: m = 2 in stage 1 only, say.
custom = ResidualAttentionNet(Variant((2, 1, 1)), widths=(4, 8, 8, 8))
print("\nVariant((2, 1, 1)) at tiny widths:", trunk_depth(custom), "layers,",
      f"{custom.num_parameters():,} parameters")

# Exercises
# 1. Build attention92 with width=4 (the 256/512/1024 channels PyTorch ports use): how many
#    parameters, and how do they scale with the width? Why about 16 times, not 4?
# 2. Why must a CIFAR input be at least 8x8 (network.min_input_size)? Feed a 4x4 image.
# 3. Build attention56 with residual=False (naive attention learning): what changes in the
#    parameter count, and why nothing?
