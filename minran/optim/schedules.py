"""Learning-rate schedules, counted in iterations (the paper counts iterations, not epochs).

Call `schedule.step()` once per iteration, after `optimizer.step()`; it sets the optimiser's
lr for the next iteration.
"""
import math


class _Schedule:
    def __init__(self, optimizer, base_lr):
        self.optimizer, self.base_lr, self.iteration = optimizer, base_lr, 0
        optimizer.lr = self.lr_at(0)

    def lr_at(self, iteration):
        raise NotImplementedError

    def step(self):
        self.iteration += 1
        self.optimizer.lr = self.lr_at(self.iteration)

    def state_dict(self):
        return {"iteration": self.iteration}

    def load_state_dict(self, state):
        self.iteration = state["iteration"]
        self.optimizer.lr = self.lr_at(self.iteration)


class MultiStepSchedule(_Schedule):
    """base_lr, multiplied by gamma at each milestone iteration (the paper: 0.1 at 64k, 96k)."""

    def __init__(self, optimizer, base_lr, milestones, gamma=0.1):
        self.milestones, self.gamma = sorted(milestones), gamma
        super().__init__(optimizer, base_lr)

    def lr_at(self, iteration):
        return self.base_lr * self.gamma ** sum(iteration >= m for m in self.milestones)


class CosineSchedule(_Schedule):
    """Half a cosine from base_lr down to min_lr over total iterations."""

    def __init__(self, optimizer, base_lr, total, min_lr=0.0):
        self.total, self.min_lr = max(1, total), min_lr
        super().__init__(optimizer, base_lr)

    def lr_at(self, iteration):
        t = min(iteration, self.total) / self.total
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * t))


class ConstantSchedule(_Schedule):
    def lr_at(self, iteration):
        return self.base_lr
