"""Why Captum's LRP is wrong on ResNets: the residual ``+``, not the reused ReLU.

A torchvision ResNet-18 (seeded random weights, random BatchNorm statistics, eval,
float64, one 64x64 input) in three variants:

* ``original``: torchvision's BasicBlock (one ``self.relu`` module used twice, and
  ``out += identity``);
* ``distinct_relu``: the same weights, each ReLU use its own module;
* ``no_identity``: the same weights and the *reused* ReLU, without ``+ identity``
  (downsample branches unused).

For each, Captum's LRP with ``EpsilonRule`` on every layer is compared with
liecheck's ``lrp_epsilon`` (same epsilon; liecheck splits the relevance at the ``+``
in proportion to the two summands, as Zennit does). Printed: the correlation of the
two input relevance maps, the largest difference relative to the largest value, and
the total input relevance over the explained logit (LRP-epsilon conserves it up to
what biases absorb: liecheck stays near 1, Captum's grows block after block on the skip
paths when the ``+`` is present).

    python benchmarks/captum_resnet_cause.py
"""

from __future__ import annotations

import types
import warnings

import numpy as np
import torch
import torchvision
from torch import nn

import liecheck


def block_forward(identity: bool, distinct: bool):
    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if identity:
            out = out + (self.downsample(x) if self.downsample is not None else x)
        return (self.relu2 if distinct else self.relu)(out)
    return forward


def variant(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(m.num_features, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(m.num_features, generator=g))
    for m in model.modules():
        if isinstance(m, torchvision.models.resnet.BasicBlock):
            m.relu2 = nn.ReLU()
            m.forward = types.MethodType(block_forward(name != "no_identity",
                                                       name == "distinct_relu"), m)
    return model.double().eval()


def captum_lrp(model: nn.Module, x: torch.Tensor, target: int, eps: float) -> torch.Tensor:
    from captum.attr import LRP
    from captum.attr._utils.lrp_rules import EpsilonRule

    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear,
                                                            nn.BatchNorm2d))]
    for m in layers:
        m.rule = EpsilonRule(epsilon=eps)
    try:
        return LRP(model).attribute(x, target=target).detach()
    finally:
        for m in layers:
            m.__dict__.pop("rule", None)


def main() -> None:
    warnings.filterwarnings("ignore", module="captum")
    eps = liecheck.DEFAULTS["epsilon"]
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2),
                    dtype=torch.float64)
    print(f"ResNet-18, random weights and BN statistics, float64, epsilon {eps}")
    print(f"{'variant':15s} {'corr(captum, liecheck)':>24s} {'max |diff| / max |lc|':>22s} "
          f"{'sum R / logit: liecheck':>24s} {'captum':>10s}")
    for name in ("original", "distinct_relu", "no_identity"):
        model = variant(name)
        logits = model(x)[0].detach()
        target = int(logits.argmax())
        lc = liecheck.attribute(model, x, "lrp_epsilon", target=target).detach()
        ca = captum_lrp(model, x, target, eps)
        a, b = lc.flatten().numpy(), ca.flatten().numpy()
        corr = float(np.corrcoef(a, b)[0, 1])
        rel = float(np.abs(a - b).max() / np.abs(a).max())
        f = float(logits[target])
        print(f"{name:15s} {corr:24.6f} {rel:22.2e} {a.sum() / f:24.3g} {b.sum() / f:10.3g}")


if __name__ == "__main__":
    main()
