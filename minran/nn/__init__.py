"""Layers and the Module they are built on."""
from . import init
from .init import manual_seed
from .layers import BatchNorm2d, Conv2d, GlobalAvgPool, Linear, MaxPool2d, ReLU, Sequential, Sigmoid
from .module import Module, Parameter

__all__ = ["init", "manual_seed", "BatchNorm2d", "Conv2d", "GlobalAvgPool", "Linear",
           "MaxPool2d", "ReLU", "Sequential", "Sigmoid", "Module", "Parameter"]
