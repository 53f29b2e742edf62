"""An answer to exercise 11: a list of sizes going down, a list of skips, then the way up."""
import minran.functional as F


def soft_mask(module, x):
    sizes, skips, h = [], [], x
    for level in range(module.poolings):
        sizes.append(h.shape[2:])
        h = module.mask_down[level](F.max_pool2d(h, 3, stride=2, padding=1))
        if level < module.poolings - 1:
            skips.append(module.mask_skips[level](h))
    h = module.mask_bottom(h)
    for level in reversed(range(module.poolings)):
        h = F.upsample_bilinear(h, sizes[level], align_corners=True)   # 7 -> 13, not 14
        if level > 0:
            h = module.mask_up[level - 1](h + skips[level - 1])
    return F.sigmoid(module.mask_head(h))
