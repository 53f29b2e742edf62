"""Optimiser and learning-rate schedules."""
from .schedules import ConstantSchedule, CosineSchedule, MultiStepSchedule
from .sgd import SGD

__all__ = ["SGD", "ConstantSchedule", "CosineSchedule", "MultiStepSchedule"]
