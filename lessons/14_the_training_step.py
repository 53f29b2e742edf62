"""Lesson 14: the training step as a plain loop, and the optimiser read line by line.

Files: minran/optim/sgd.py, minran/reference/sgd.py (the update, parameter by parameter),
       minran/functional/loss.py, minran/reference/loss.py (cross-entropy, row by row),
       minran/functional/linear.py, minran/reference/linear.py (the classifier's layer),
       minran/nn/module.py (parameters(), train() and eval())
Paper: Sec. 4.1 (SGD with Nesterov momentum 0.9, weight decay 1e-4, lr 0.1, batch 64).

Training is five lines repeated: run the batch forward (the ops build the graph), take the
loss, clear the old gradients, run backward (every parameter gets its .grad), and let the
optimiser move every parameter a little against its gradient. Here they are, on a tiny
Attention-56 and a task it can learn in seconds. minran/trainer.py (lesson 15) runs this
same loop, with a learning-rate schedule, checkpoints, logs and progress bars around it.
"""
import math

import numpy as np

import minran
import minran.functional as F
from minran import Tensor, no_grad, reference
from minran.data import augment
from minran.models import build_model
from minran.nn import Parameter
from minran.optim import SGD

# The task: is the top or the bottom half of the image brighter (under noise)? Lesson 15
# trains it with the trainer; why top against bottom and not left against right is there.
rng = np.random.default_rng(0)
labels = rng.integers(0, 2, 320)
images = rng.normal(0, 0.3, (320, 3, 32, 32)).astype(np.float32)
images[labels == 0, :, :16] += 1.0
images[labels == 1, :, 16:] += 1.0
train_x, train_y, test_x, test_y = images[:256], labels[:256], images[256:], labels[256:]

minran.manual_seed(0)
model = build_model("attention56", widths=(4, 8, 8, 8), num_classes=2)
optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)

# The loop.
losses = []
model.train()                                         # batch norm uses each batch's statistics
for step in range(60):
    optimizer.lr = 0.05 * (1 + math.cos(math.pi * step / 60))   # from 0.1 down to 0: a cosine
    index = rng.choice(len(train_x), 32, replace=False)
    x = Tensor(augment(train_x[index], rng))          # pad, random crop, random mirror (lesson 13)
    y = train_y[index]
    logits = model(x)                                 # forward: the ops record the graph
    loss = F.cross_entropy(logits, y)                 # mean of -log p(true class)
    optimizer.zero_grad()                             # forget the last step's gradients
    loss.backward()                                   # d loss / d p, into every p.grad
    optimizer.step()                                  # p -= lr * (the gradient, with momentum)
    losses.append(float(loss.data))
    if step % 10 == 9:
        print(f"step {step + 1}: mean loss of the last 10 steps {np.mean(losses[-10:]):.3f}")

model.eval()                                          # the running statistics, no graph
with no_grad():
    accuracy = float((model(Tensor(test_x)).data.argmax(axis=1) == test_y).mean())
print(f"after {step + 1} steps: test accuracy {accuracy:.3f} on {len(test_y)} images (chance: 0.5)")

# The optimiser, read. optim/sgd.py says what one step does to a parameter p with gradient
# grad (its module docstring):
print(next(part for part in minran.optim.sgd.__doc__.split("\n\n") if "p = p - lr * g" in part))
# By hand, for one number: p = 1, grad = 0.5, lr = 0.1, momentum 0.9, Nesterov, decay 1e-4.
#   g = 0.5 + 1e-4 * 1 = 0.5001;  buf = g = 0.5001 (the first step);
#   g = g + 0.9 * buf = 0.95019;  p = 1 - 0.1 * 0.95019 = 0.904981
p = Parameter(np.array([1.0]))
sgd = SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
p.grad = Tensor(np.array([0.5]))
sgd.step()
print(f"one step by hand: 0.904981; SGD.step: {p.data[0]:.6f}")

# And over many steps, against the plain version in minran/reference/sgd.py (the same rule,
# parameter by parameter, returning new arrays instead of changing them in place): the
# momentum buffer carries a running sum of past gradients from step to step.
start = [np.random.default_rng(1).standard_normal((3, 2)), np.random.default_rng(2).standard_normal(4)]
params = [Parameter(a.copy()) for a in start]
sgd = SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
plain, buffers = [a.copy() for a in start], [None, None]
for step in range(5):
    grads = [np.random.default_rng(10 + step).standard_normal(a.shape) for a in start]
    for q, g in zip(params, grads):
        q.grad = Tensor(g)
    sgd.step()
    plain, buffers = reference.sgd.sgd_step(plain, grads, buffers, 0.1, 0.9, True, 1e-4)
largest = max(float(np.abs(q.data - a).max()) for q, a in zip(params, plain))
print(f"5 steps of SGD against the plain version: largest difference {largest:.1e}")

# The loss has a plain version too (minran/reference/loss.py), row by row:
z = np.random.default_rng(3).standard_normal((4, 3))
print("cross_entropy == its plain version:", np.isclose(
    F.cross_entropy(Tensor(z), np.array([0, 2, 1, 2])).item(),
    reference.loss.cross_entropy(z, np.array([0, 2, 1, 2]))))

# Exercises
# 1. Drop optimizer.zero_grad() from the loop: what happens to the loss, and why (lesson 2:
#    gradients accumulate)?
# 2. Set momentum=0 and compare the losses after 60 steps. Then a constant lr of 1.0.
# 3. Why does weight decay add weight_decay * p to the gradient rather than subtract it from
#    the loss? (Write the loss with 0.5 * weight_decay * |p|^2 added and differentiate.)
