"""Small networks shared by the test folders (float64, seeded, fast on a CPU)."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

# Zennit's stabiliser epsilon; the class of each image of peer_x's batch
TINY = 1e-30
TARGET = torch.tensor([2, 7, 0])


def randomize_bn(model: nn.Module, seed: int, zero_shift: bool = False) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters.

    ``zero_shift``: running mean 0 and bias 0, so the folded bias is exactly zero.
    """
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            m.running_var = 0.5 + torch.rand(c, generator=g)
            m.weight.data = 1.0 + 0.3 * torch.randn(c, generator=g)
            if zero_shift:
                m.running_mean = torch.zeros(c)
                m.bias.data = torch.zeros(c)
            else:
                m.running_mean = 0.2 * torch.randn(c, generator=g)
                m.bias.data = 0.1 * torch.randn(c, generator=g)
    return model


def small_vgg(seed: int, bias: bool = True, standalone_bn: bool = True) -> nn.Module:
    """A VGG-like net exercising every layer kind the engine knows (32x32 input).

    BN after a conv is folded; BN after a ReLU stays a stand-alone affine node; the
    second max-pool has overlapping windows; AdaptiveAvgPool2d(3) on 4x4 overlaps too.
    """
    torch.manual_seed(seed)
    bn2 = [nn.BatchNorm2d(16)] if standalone_bn else []
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=bias), nn.BatchNorm2d(8), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1, bias=bias), nn.ReLU(), *bn2,
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(16, 16, 3, padding=1, bias=bias), nn.ReLU(),
        nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(3), nn.Flatten(),
        nn.Linear(144, 32, bias=bias), nn.ReLU(), nn.Dropout(),
        nn.Linear(32, 10, bias=bias),
    )
    return randomize_bn(model, seed + 1, zero_shift=not bias).double().eval()


def small_resnet(seed: int, zero_bias: bool = False) -> nn.Module:
    """torchvision's ResNet code (reused in-place ReLU, ``out += identity``,
    ``torch.flatten``) with one BasicBlock per stage: fast at 32x32."""
    torch.manual_seed(seed)
    model = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock,
                                             [1, 1, 1, 1], num_classes=10)
    randomize_bn(model, seed + 1, zero_shift=zero_bias)
    if zero_bias:
        model.fc.bias.data.zero_()
    return model.double().eval()


def peer_net(seed: int) -> nn.Sequential:
    """Conv-BN-ReLU-MaxPool-Conv-ReLU-AvgPool-Dense-ReLU-Dense on 16x16, float64.

    Separate ReLU modules (Captum's and Zennit's ReLU hooks need them)."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(256, 32), nn.ReLU(), nn.Linear(32, 10),
    )
    g = torch.Generator().manual_seed(seed + 1)
    bn = model[1]
    bn.running_mean = 0.2 * torch.randn(8, generator=g)
    bn.running_var = 0.5 + torch.rand(8, generator=g)
    bn.weight.data = 1 + 0.3 * torch.randn(8, generator=g)
    bn.bias.data = 0.1 * torch.randn(8, generator=g)
    # Zennit 0.5.1's merge resets the BN to running_var=1 but keeps its eps, so the
    # "identity" BN left behind scales by 1/sqrt(1 + eps) (5e-6 with the default):
    # eps = 0 keeps Zennit's canonized model equal to the original
    bn.eps = 0.0
    return model.double().eval()


def peer_x(seed, nonneg=False):
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(seed + 5),
                    dtype=torch.float64)
    return x.abs() if nonneg else x
