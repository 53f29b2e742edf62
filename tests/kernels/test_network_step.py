"""The whole network on kernels: one training step of a reduced Attention-56 (forward,
backward, SGD) with every op on the tier's kernels equals the NumPy step in float64, with
each of the mask's three activations (mixed, channel, spatial)."""
import numpy as np
import pytest

import minran.functional as F
from minran import Tensor, backend, manual_seed
from minran.cuda import kernels
from minran.models import attention56
from minran.optim import SGD

from .tiers import AS_ACCURATE_WITHIN, TIERS, on

# Every kernel a training step of the network launches with mixed attention (average
# pooling and the evaluation-mode batch norm have their own tests); channel attention
# normalises instead of the sigmoid, spatial attention normalises before it.
NETWORK_KERNELS = {
    "im2col", "col2im", "max_pool2d_forward", "max_pool2d_backward",
    "upsample_bilinear_forward", "upsample_bilinear_backward", "batch_norm_forward_training",
    "batch_norm_backward", "sigmoid_forward", "sigmoid_backward",
    "attention_combine_forward", "attention_combine_backward",
    "softmax_cross_entropy_forward", "softmax_cross_entropy_backward", "sgd_update"}
SIGMOID = {"sigmoid_forward", "sigmoid_backward"}
ACTIVATION_KERNELS = {
    "mixed": NETWORK_KERNELS,
    "channel": NETWORK_KERNELS - SIGMOID | {"channel_normalize_forward", "channel_normalize_backward"},
    "spatial": NETWORK_KERNELS | {"spatial_normalize_forward", "spatial_normalize_backward"}}


def training_step(where, activation="mixed", input_ulps=0):
    """The loss after two steps, the first step's gradients, and the state after both;
    `input_ulps` moves every input pixel by that many units in the last place."""
    manual_seed(0)
    # Half-size channels and 16x16 images: the masks still pool 3, 2 and 1 times, and the
    # upsampling goes 2 -> 4 -> 8 -> 16 (stage 1), so every op of the full network runs.
    model = attention56(widths=(4, 8, 8, 8), activation=activation).to(dtype=np.float64)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 3, 16, 16)) * (1 + input_ulps * np.finfo(np.float64).eps)
    y = np.array([1, 7, 3])
    with on(where) as put:
        if where == "gpu":
            model.to(device="gpu")
        opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
        for step in range(2):   # the second step runs the momentum kernels' later branch
            logits = model(Tensor(put(x)))
            loss = F.cross_entropy(logits, put(y))
            opt.zero_grad()
            loss.backward()
            if step == 0:
                grads = {name: backend.to_numpy(p.grad.data)
                         for name, p in model.named_parameters()}
            opt.step()
        state = {k: backend.to_numpy(v) for k, v in model.state_dict().items()}
    return float(loss.item()), grads, state


@pytest.mark.parametrize("activation", ["mixed", "channel", "spatial"])
@pytest.mark.parametrize("tier", TIERS)
def test_a_training_step_on_kernels_equals_the_numpy_step(tier, activation, monkeypatch):
    launched = set()
    real_launch = kernels.Source.launch

    def counting_launch(self, name, *args, **size):
        launched.add(name)
        return real_launch(self, name, *args, **size)
    monkeypatch.setattr(kernels.Source, "launch", counting_launch)

    want = training_step("numpy", activation)
    assert launched == set()   # the plain path launches nothing
    got = training_step(tier, activation)
    assert launched == ACTIVATION_KERNELS[activation]

    assert got[0] == pytest.approx(want[0], rel=1e-12)
    # The twins add in different orders, so they agree to rounding: within rtol 1e-9 and
    # atol 1e-12, or, where the step amplifies rounding more than that (channel attention
    # divides by norms that are small at initialisation: one ulp more on the input moves
    # NumPy's own step by 6e-11), as close as NumPy comes to itself after that ulp.
    moved = None
    for index, what in ((1, "gradient of "), (2, "")):   # then the parameters after two SGD
        for name in want[index]:                       # steps, and the running statistics
            g, w = got[index][name], want[index][name]
            if np.allclose(g, w, rtol=1e-9, atol=1e-12):
                continue
            if moved is None:
                moved = training_step("numpy", activation, input_ulps=1)
            sensitivity = np.abs(moved[index][name] - w).max()
            assert np.abs(g - w).max() <= AS_ACCURATE_WITHIN * sensitivity, (
                f"{what}{name}: the kernels' step is {np.abs(g - w).max():.3g} from NumPy's, "
                f"NumPy's own step moves by {sensitivity:.3g} when its input moves by one ulp")
