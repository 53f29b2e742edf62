"""The Residual Attention Network: counts against the paper, shapes, gradients, the combine."""
import re

import numpy as np
import pytest

import minran
import minran.functional as F
from minran import Tensor, gradcheck, no_grad
from minran.models import AttentionModule, ResidualUnit, build_model

from .helpers import randn

# ---- parameter counts, by hand from SPEC.md's layer table ----------------------------------
# Identity unit of width C: bn1 2C + conv1 C*C/4 + bn2 C/2 + conv2 9(C/4)^2 + bn3 C/2
#   + conv3 (C/4)*C  =  3C + 17C^2/16:  C=64: 4544, C=128: 17792, C=256: 70400.
# Projection unit Cin->C: 2Cin + Cin*C/4 + C/2 + 9C^2/16 + C/2 + C^2/4 + Cin*C (shortcut)
#   = 2Cin + 5Cin*C/4 + C + 13C^2/16:  16->64: 4704, 64->128: 23808, 128->256: 94720.
# Attention module, k poolings (p=1, t=2, r=1): pre 1 + trunk 2 + post 1 units, mask
#   k down + (k-1) skips + 1 bottom + (k-1) up = 3k - 1 units; head 2 BN (4C) + 2 conv (2C^2).
#   k=3, C=64: 12*4544 + 8448 = 62976;  k=2, C=128: 9*17792 + 33280 = 193408;
#   k=1, C=256: 6*70400 + 132096 = 554496.  Together 810880 per m.
# Fixed part: stem 3*16*9 = 432; stage units 4704 + 4544, 23808 + 17792, 94720 + 70400;
#   head bn 512 + fc 2570 = 3082.  Sum 219482.
# Attention-56 (m=1): 219482 + 810880 = 1,030,362;  Attention-92 (m=2): 1,841,242;
# Attention-128 (m=3): 2,652,122;  Attention-164 (m=4): 3,463,002;  Attention-236 (m=6): 5,084,762.
# Attention-452 (m=6, p=2, t=4, r=3): a module has 2p + t = 8 trunk-path units and a mask of
#   k*r down + (k-1) skips + r bottom + (k-1)*r up = 2kr + k - 1 units: 7k + 7 in all.
#   k=3, C=64: 28*4544 + 8448 = 135680;  k=2, C=128: 21*17792 + 33280 = 406912;
#   k=1, C=256: 14*70400 + 132096 = 1117696.  6 * 1660288 + 219482 = 10,181,210.
# ImageNet Attention-56: stem 9408 + 128 = 9536; stage1 74112 + 976896 = 1,051,008;
#   stage2 377856 + 3046912 = 3,424,768; stage3 1509376 + 8804352 = 10,313,728;
#   stage4 6033408 + 2 * 4462592 = 14,958,592; head 4096 + 2,049,000 = 2,053,096;
#   total 31,810,728 (paper: 31.9M).  Attention-92 adds one k=2 module of width 512
#   (3,046,912) and two k=1 modules of width 1024 (2 * 8,804,352): 52,466,344 (paper: 51.3M).
# Plain pre-activation ResNet, n = (depth - 2) / 9 units per stage, no attention modules:
#   stem 432 + (4704 + (n-1) 4544) + (23808 + (n-1) 17792) + (94720 + (n-1) 70400) + 3082.
#   ResNet-56 (n=6): 590,426;  ResNet-164 (n=18): 1,703,258 (He et al.: 1.7M).
EXPECTED = {
    "attention56": 1_030_362,
    "attention92": 1_841_242,
    "attention128": 2_652_122,
    "attention164": 3_463_002,
    "attention236": 5_084_762,
    "attention452": 10_181_210,
    "attention56_imagenet": 31_810_728,
    "attention92_imagenet": 52_466_344,
    "preact_resnet56": 590_426,
    "preact_resnet164": 1_703_258,
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_parameter_counts_match_the_hand_count(name):
    assert build_model(name).num_parameters() == EXPECTED[name]


def trunk_depth(model):
    """Weight layers on the trunk path: the stem conv, 3 per residual unit, the classifier."""
    units = 0
    for stage in model.stages:
        for layer in stage:
            if isinstance(layer, AttentionModule):
                units += len(layer.pre) + len(layer.trunk) + len(layer.post)
            else:
                units += 1
    return 1 + 3 * units + 1


@pytest.mark.parametrize("name", list(minran.models.BUILDERS))
def test_depth_in_the_name_is_the_trunk_depth(name):
    # Sec. 4.1: Attention-56/92/128/164/236 have trunk depth 36m + 20; Attention-452 gets
    # its depth from p=2, t=4 (the mask's r adds no depth: see the hand count above).
    depth = int(re.search(r"\d+", name).group())
    assert trunk_depth(build_model(name, widths=(4, 4, 4, 4, 4))) == depth


@pytest.mark.parametrize("name", list(minran.models.BUILDERS))
def test_builders_refuse_unknown_options(name):
    # A misspelt option used to be swallowed by the ResNet builders (**_ignored): a run
    # with residul=False trained the default network and said nothing.
    accepted = r"it accepts num_classes, in_channels, width, .*residual"
    with pytest.raises(TypeError, match=rf"{name}: unknown option 'residul' \(did you mean 'residual'\?\); {accepted}"):
        build_model(name, residul=False)
    with pytest.raises(TypeError, match=rf"{name}: unknown option 'colour'; {accepted}"):
        minran.models.BUILDERS[name](colour="red")


def test_every_builder_builds_with_every_option():
    for name in minran.models.BUILDERS:
        if "imagenet" in name or name == "attention452":
            continue
        for kw in ({}, {"residual": False}, {"activation": "channel"},
                   {"activation": "spatial"}, {"mask": "local"}, {"num_classes": 100}):
            model = build_model(name, **kw)
            assert model.fc.weight.shape[0] == kw.get("num_classes", 10)
    assert build_model("attention452").num_parameters() > build_model("attention236").num_parameters()
    assert build_model("attention56", width=4).num_parameters() > 15e6
    with pytest.raises(ValueError, match="unknown architecture 'attention57'"):
        build_model("attention57")


def test_local_mask_keeps_the_parameter_count():
    # Table 4 compares masks of the same units: only the down/up sampling differs.
    assert build_model("attention56", mask="local").num_parameters() == EXPECTED["attention56"]


@pytest.mark.parametrize("name, shape, kw", [
    ("attention56", (2, 3, 32, 32), {}),
    ("attention92", (2, 3, 32, 32), {"num_classes": 100}),
    ("attention56", (2, 1, 28, 28), {"in_channels": 1}),
    ("attention56", (2, 3, 64, 64), {}),
    ("attention56", (2, 3, 13, 11), {}),  # odd sizes: upsample targets come from the input
])
def test_output_shapes_and_masks(name, shape, kw):
    model = build_model(name, widths=(4, 8, 8, 8), **kw)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    logits, masks = model(Tensor(x), return_masks=True)
    assert logits.shape == (shape[0], kw.get("num_classes", 10))
    m = {"attention56": 1, "attention92": 2}[name]
    assert len(masks) == 3 * m
    H = shape[2]
    expected_sizes = [H] * m + [(H + 1) // 2] * m + [((H + 1) // 2 + 1) // 2] * m
    assert [mk.shape[2] for mk in masks] == expected_sizes
    # A real input (an all-zero one makes every mask 0.5, with or without its sigmoid).
    assert all(0 <= mk.data.min() and mk.data.max() <= 1 and mk.data.std() > 0.01 for mk in masks)


def _mask_and_head_output(activation):
    """A module's soft mask, and the mask head's output it was made from (train mode)."""
    minran.manual_seed(0)
    module = AttentionModule(8, poolings=2, activation=activation).to(dtype=np.float64)
    heads = []
    original = module.mask_head.forward
    module.mask_head.forward = lambda h: heads.append(original(h)) or heads[-1]
    mask = module.soft_mask(randn((2, 8, 8, 6), seed=4, requires_grad=False))
    return mask.data, heads[0].data


def test_mixed_mask_is_the_sigmoid_of_the_head():
    mask, head = _mask_and_head_output("mixed")
    assert head.min() < 0 and head.max() > 0   # so a missing sigmoid would show
    np.testing.assert_allclose(mask, 1 / (1 + np.exp(-head)), rtol=1e-12)


def test_spatial_mask_normalises_each_map_before_its_sigmoid():
    # Table 1's spatial attention: sigmoid of each channel's map shifted to mean 0, std 1.
    mask, head = _mask_and_head_output("spatial")
    logit = np.log(mask / (1 - mask))
    np.testing.assert_allclose(logit.mean(axis=(2, 3)), 0, atol=1e-8)
    np.testing.assert_allclose(logit.std(axis=(2, 3)), 1, rtol=1e-3)
    centred = head - head.mean(axis=(2, 3), keepdims=True)
    np.testing.assert_allclose(logit, centred / np.sqrt((centred ** 2).mean(axis=(2, 3), keepdims=True) + 1e-5),
                               rtol=1e-6, atol=1e-8)


def test_channel_mask_has_unit_norm_over_channels():
    mask, head = _mask_and_head_output("channel")
    np.testing.assert_allclose(np.sqrt((mask ** 2).sum(axis=1)), 1, rtol=1e-12)
    np.testing.assert_allclose(mask, head / np.sqrt((head ** 2).sum(axis=1, keepdims=True)), rtol=1e-12)


def reference_unit(unit, x, stride):
    """He et al.'s pre-activation bottleneck, written out: a = relu(bn(x)); the branch
    conv1x1-bn-relu-conv3x3-bn-relu-conv1x1 of a; plus x, or a projection of a."""
    def bn(m, h):
        return F.batch_norm(h, m.weight, m.bias, None, None, training=True)
    a = F.relu(bn(unit.bn1, x))
    h = F.conv2d(a, unit.conv1.weight)
    h = F.conv2d(F.relu(bn(unit.bn2, h)), unit.conv2.weight, None, stride, 1)
    h = F.conv2d(F.relu(bn(unit.bn3, h)), unit.conv3.weight)
    return h + (x if unit.shortcut is None else F.conv2d(a, unit.shortcut.weight, None, stride))


@pytest.mark.parametrize("cin, cout, stride", [(8, 8, 1), (8, 16, 1), (8, 16, 2), (8, 8, 2)])
def test_residual_unit_against_its_definition(cin, cout, stride):
    minran.manual_seed(2)
    unit = ResidualUnit(cin, cout, stride).to(dtype=np.float64)
    assert (unit.shortcut is None) == (cin == cout and stride == 1)
    x = randn((2, cin, 6, 5), seed=5, requires_grad=False, scale=3.0, shift=1.0)
    np.testing.assert_allclose(unit(x).data, reference_unit(unit, x, stride).data, rtol=1e-12, atol=1e-12)


def test_imagenet_forward_and_backward_batch_1():
    model = minran.models.attention56_imagenet()
    x = Tensor(np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32))
    model.eval()  # batch 1: BN uses running statistics
    logits = model(x)
    assert logits.shape == (1, 1000)
    F.cross_entropy(logits, np.array([3])).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_imagenet_92_builds_and_runs_small():
    # The full 224x224 forward of Attention-92 is covered by the 56's test; here the layout
    # at the smallest input it accepts.
    model = minran.models.attention92_imagenet(widths=(8, 8, 8, 8, 8))
    model.eval()
    assert model(Tensor(np.zeros((1, 3, 32, 32), np.float32))).shape == (1, 1000)
    assert model.min_input_size() == 32


def test_too_small_input_says_which_sizes_work():
    model = build_model("attention56", widths=(4, 8, 8, 8))
    with pytest.raises(ValueError, match="at least 8x8"):
        model(Tensor(np.zeros((1, 3, 4, 4), np.float32)))
    with pytest.raises(ValueError, match=r"expected input \(N, 3, H, W\)"):
        model(Tensor(np.zeros((1, 1, 32, 32), np.float32)))


def test_every_parameter_gets_a_gradient():
    model = build_model("attention56", widths=(4, 8, 8, 8))
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32))
    F.cross_entropy(model(x), np.array([0, 1, 2, 3])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert np.abs(p.grad.data).sum() > 0, name


@pytest.mark.slow
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("kw", [{}, {"residual": False, "activation": "spatial"},
                                {"activation": "channel", "mask": "local"}])
def test_whole_network_gradcheck(training, kw):
    minran.manual_seed(1)
    model = build_model("attention56", in_channels=2, num_classes=3, widths=(4, 4, 4, 4), **kw)
    model.to(dtype=np.float64).train(training)
    if not training:  # non-trivial running statistics
        for _, buf in model.named_buffers():
            buf += np.random.default_rng(0).uniform(0.1, 0.5, buf.shape)
    x = randn((2, 2, 8, 8), seed=3)
    params = dict(model.named_parameters())
    sample = [params[n] for n in ("stem.0.weight", "stage1.1.mask_head.2.weight",
                                  "stage2.1.trunk.0.bn2.weight", "stage3.0.shortcut.weight",
                                  "fc.bias")]
    labels = np.array([0, 2])
    gradcheck(lambda x, *ps: F.cross_entropy(model(x), labels) * 1.0, x, *sample,
              atol=1e-6, rtol=1e-4)


def _zero_mask_module(residual):
    minran.manual_seed(0)
    module = AttentionModule(8, poolings=2, residual=residual).to(dtype=np.float64).eval()
    module.soft_mask = lambda x: Tensor(np.zeros(x.shape, x.dtype))
    return module


def test_arl_with_zero_mask_is_the_trunk_path():
    module = _zero_mask_module(residual=True)
    x = randn((2, 8, 8, 8), requires_grad=False)
    with no_grad():
        expected = module.post(module.trunk(module.pre(x)))
        np.testing.assert_allclose(module(x).data, expected.data)


def test_nal_with_zero_mask_zeroes_the_features():
    module = _zero_mask_module(residual=False)
    x = randn((2, 8, 8, 8), requires_grad=False)
    with no_grad():
        zero = Tensor(np.zeros(x.shape))
        np.testing.assert_allclose(module(x).data, module.post(zero).data)
        assert not np.allclose(module(x).data, module.post(module.trunk(module.pre(x))).data)


def test_mask_is_skipped_in_the_local_variant_only():
    x = randn((1, 8, 8, 8), requires_grad=False)
    for mask, calls in (("encoder-decoder", 2), ("local", 0)):
        module = AttentionModule(8, poolings=2, mask=mask).to(dtype=np.float64)
        counted = []
        original = F.max_pool2d
        try:
            minran.models.attention_module.F.max_pool2d = lambda *a, **k: counted.append(1) or original(*a, **k)
            module(x)
        finally:
            minran.models.attention_module.F.max_pool2d = original
        assert len(counted) == calls


def test_summary_prints_the_table(capsys):
    text = minran.models.attention92().summary()
    assert "1,841,242" in text and "256x8x8" in text and "GMACs" in text
    assert capsys.readouterr().out.strip() == text.strip()


@pytest.mark.slow
def test_tiny_network_overfits_64_images():
    # Random images, random labels: only memorisation can fit them. Training accuracy is
    # measured on the batch as the step sees it (train mode, batch statistics). lr 0.05 keeps
    # the descent smooth: at 0.2 the path was chaotic (float64 runs differing by rounding
    # alone parted after 40 steps), so reaching 100% depended on summation order.
    minran.manual_seed(0)
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((64, 3, 32, 32)).astype(np.float32))
    y = rng.integers(0, 10, 64)
    model = build_model("attention56", widths=(8, 16, 16, 16))
    opt = minran.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for step in range(150):
        logits = model(x)
        accuracy = (logits.data.argmax(1) == y).mean()
        if accuracy == 1.0:
            break
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert accuracy == 1.0, f"train accuracy {accuracy} after {step} steps"
