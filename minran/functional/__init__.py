"""Every op minran has, each a forward and a hand-written backward.  `import minran.functional as F`."""
from .activation import relu, sigmoid
from .attention import attention_combine, channel_normalize, spatial_normalize
from .conv import col2im, conv2d, im2col
from .elementwise import add, div, exp, log, mul, neg, sqrt, sub
from .linear import linear
from .loss import cross_entropy, log_softmax
from .normalization import batch_norm
from .pooling import avg_pool2d, global_avg_pool, max_pool2d
from .macs import counting_macs
from .shape import matmul, mean, reduce_sum as sum, reshape, transpose
from .upsample import interpolation_matrix, upsample_bilinear

__all__ = [
    "relu", "sigmoid", "attention_combine", "channel_normalize", "spatial_normalize",
    "col2im", "conv2d", "im2col", "add", "div", "exp", "log", "mul", "neg", "sqrt", "sub",
    "linear", "cross_entropy", "log_softmax", "batch_norm", "avg_pool2d", "global_avg_pool",
    "max_pool2d", "counting_macs", "matmul", "mean", "reshape", "sum", "transpose",
    "interpolation_matrix", "upsample_bilinear",
]
