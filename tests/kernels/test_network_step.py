"""The whole network on kernels: one training step of a reduced Attention-56 (forward,
backward, SGD) with every op on the tier's kernels equals the NumPy step in float64."""
import numpy as np
import pytest

import minran.functional as F
from minran import Tensor, backend, manual_seed
from minran.cuda import kernels
from minran.models import attention56
from minran.optim import SGD

from .tiers import TIERS, on

# Every kernel a training step of the network launches (spatial and channel attention,
# average pooling and the evaluation-mode batch norm have their own tests).
NETWORK_KERNELS = {
    "im2col", "col2im", "max_pool2d_forward", "max_pool2d_backward",
    "upsample_bilinear_forward", "upsample_bilinear_backward", "batch_norm_forward_training",
    "batch_norm_backward", "sigmoid_forward", "sigmoid_backward",
    "attention_combine_forward", "attention_combine_backward",
    "softmax_cross_entropy_forward", "softmax_cross_entropy_backward", "sgd_update"}


def training_step(where):
    manual_seed(0)
    # Half-size channels and 16x16 images: the masks still pool 3, 2 and 1 times, and the
    # upsampling goes 2 -> 4 -> 8 -> 16 (stage 1), so every op of the full network runs.
    model = attention56(widths=(4, 8, 8, 8)).to(dtype=np.float64)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 3, 16, 16))
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


@pytest.mark.parametrize("tier", TIERS)
def test_a_training_step_on_kernels_equals_the_numpy_step(tier, monkeypatch):
    launched = set()
    real_launch = kernels.Source.launch

    def counting_launch(self, name, *args, **size):
        launched.add(name)
        return real_launch(self, name, *args, **size)
    monkeypatch.setattr(kernels.Source, "launch", counting_launch)

    want = training_step("numpy")
    assert launched == set()   # the plain path launches nothing
    got = training_step(tier)
    assert launched == NETWORK_KERNELS

    assert got[0] == pytest.approx(want[0], rel=1e-12)
    for name in want[1]:
        np.testing.assert_allclose(got[1][name], want[1][name], rtol=1e-9, atol=1e-12,
                                   err_msg=f"gradient of {name}")
    for name in want[2]:   # parameters after two SGD steps, and the running statistics
        np.testing.assert_allclose(got[2][name], want[2][name], rtol=1e-9, atol=1e-12,
                                   err_msg=name)
