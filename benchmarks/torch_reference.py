"""The same Residual Attention Network in PyTorch, layer for layer, for like-for-like timing.

Only a benchmark-time comparison: minran never imports torch. `build(name)` mirrors
minran.models.build_model for the CIFAR variants, and bench.py asserts equal parameter counts.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

MODULES = {"attention56": 1, "attention92": 2, "attention128": 3, "attention164": 4, "attention236": 6}


class Unit(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        mid = cout // 4
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, mid, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(mid), nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn3, self.conv3 = nn.BatchNorm2d(mid), nn.Conv2d(mid, cout, 1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if cin != cout or stride != 1 else None

    def forward(self, x):
        a = F.relu(self.bn1(x))
        h = self.conv3(F.relu(self.bn3(self.conv2(F.relu(self.bn2(self.conv1(a)))))))
        return h + (x if self.shortcut is None else self.shortcut(a))


def units(n, c):
    return nn.Sequential(*[Unit(c, c) for _ in range(n)])


class Attention(nn.Module):
    def __init__(self, c, k):
        super().__init__()
        self.k = k
        self.pre, self.trunk, self.post = units(1, c), units(2, c), units(1, c)
        self.down = nn.ModuleList([units(1, c) for _ in range(k)])
        self.skips = nn.ModuleList([units(1, c) for _ in range(k - 1)])
        self.bottom = units(1, c)
        self.up = nn.ModuleList([units(1, c) for _ in range(k - 1)])
        self.head = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c, 1, bias=False),
                                  nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c, 1, bias=False))

    def forward(self, x):
        x = self.pre(x)
        trunk = self.trunk(x)
        sizes, skips, h = [], [], x
        for level in range(self.k):
            sizes.append(h.shape[2:])
            h = self.down[level](F.max_pool2d(h, 3, 2, 1))
            if level < self.k - 1:
                skips.append(self.skips[level](h))
        h = self.bottom(h)
        for level in reversed(range(self.k)):
            h = F.interpolate(h, size=sizes[level], mode="bilinear", align_corners=True)
            if level > 0:
                h = self.up[level - 1](h + skips[level - 1])
        mask = torch.sigmoid(self.head(h))
        return self.post((1 + mask) * trunk)


class Net(nn.Module):
    def __init__(self, m, num_classes=10):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        layers, prev = [], 16
        for i, (c, k) in enumerate(zip((64, 128, 256), (3, 2, 1))):
            layers += [Unit(prev, c, 1 if i == 0 else 2)] + [Attention(c, k) for _ in range(m)] + [Unit(c, c)]
            prev = c
        self.body = nn.Sequential(*layers)
        self.bn, self.fc = nn.BatchNorm2d(prev), nn.Linear(prev, num_classes)

    def forward(self, x):
        h = F.relu(self.bn(self.body(self.stem(x))))
        return self.fc(h.mean(dim=(2, 3)))


def build(name):
    return Net(MODULES[name])
