"""Exercise 11: the soft mask branch's loop, down and back up.

Fill in `soft_mask`, then check it against minran's from the repository's root:

    python -m lessons.check 11

`module` is a minran AttentionModule (minran/models/attention_module.py) with k =
module.poolings levels; use its parts, not its soft_mask method:

    module.mask_down[level]    r units after the pooling of each level, k of them
    module.mask_skips[level]   the skip unit of each level but the lowest, k - 1 of them
    module.mask_bottom         r more units at the lowest level
    module.mask_up[level - 1]  r units after the upsampling back to level `level`, k - 1
    module.mask_head           bn-relu-conv1x1-bn-relu-conv1x1

Going down, each level pools (F.max_pool2d(h, 3, stride=2, padding=1)), runs its units and,
except at the lowest level, keeps a skip (its skip unit applied to that level's output).
Coming up, each level upsamples (F.upsample_bilinear(h, size, align_corners=True)) to the
exact size the map had before that level's pooling, adds that level's skip if it has one,
then runs its units; the last upsampling goes straight to the head. Return
F.sigmoid(module.mask_head(h)): the mask M, shaped like x. Lesson 11 draws every step.
"""
import minran.functional as F


def soft_mask(module, x):
    raise NotImplementedError("soft_mask")
