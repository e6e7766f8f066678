"""Every torchvision classification family at reduced width and depth, for the zoo.

Each entry builds the family's own blocks (torchvision's classes: ``MBConv``,
``CNBlock``, ``InvertedResidual``, ``SwinTransformerBlock``, ...) with ten outputs,
small enough to train on the two-digit images in a minute or two of CPU time. Where a
family's constructor fixes its widths (AlexNet's and VGG's dense head, Inception v3,
GoogLeNet), the smallest torchvision member is used, with the dense head narrowed.

:data:`FAMILIES` maps a family to a :class:`Family`: its builder and the side of the
square input it takes (the two-digit images are padded to that square with blank
pixels, :func:`liecheck.zoo.data.zoo_images`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

N_CLASSES = 10


@dataclass(frozen=True)
class Family:
    """One family of the zoo: ``build()`` gives a fresh network, ``size`` its input side,
    ``kind`` ``"cnn"`` or ``"transformer"``, ``blocks`` the blocks that make it the family;
    ``lr`` and ``epochs`` override the kind's training settings
    (:data:`liecheck.zoo.train.LR`, :data:`~liecheck.zoo.train.EPOCHS`);
    ``recalibrate_bn``: re-estimate the BatchNorm running statistics on the training
    images after training (for a family whose BatchNorm momentum is too small for a
    short training to move them); ``loss``: ``"sigmoid"`` (a sigmoid cross-entropy per
    class against the multi-hot target) or ``"softmax"`` (the softmax cross-entropy
    against 1/2 on each digit's class, for a family whose logits pass a ReLU)."""

    name: str
    build: Callable[[], nn.Module]
    size: int = 64
    kind: str = "cnn"
    blocks: str = ""
    lr: float | None = None         # the training's, where the kind's default fails it
    epochs: int | None = None
    recalibrate_bn: bool = False    # re-estimate BatchNorm statistics after training
    loss: str = "sigmoid"           # "sigmoid" (multi-label) | "softmax" (both classes 1/2)


def _alexnet():
    from torchvision.models import AlexNet

    m = AlexNet(num_classes=N_CLASSES)
    m.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(256 * 6 * 6, 128), nn.ReLU(True),
                                 nn.Dropout(0.5), nn.Linear(128, 128), nn.ReLU(True),
                                 nn.Linear(128, N_CLASSES))
    return m


def _vgg():
    from torchvision.models.vgg import VGG, make_layers

    m = VGG(make_layers([16, "M", 32, "M", 64, 64, "M", 64, 64, "M"]), num_classes=N_CLASSES)
    m.avgpool = nn.AdaptiveAvgPool2d((4, 4))
    m.classifier = nn.Sequential(nn.Linear(64 * 16, 128), nn.ReLU(True), nn.Dropout(),
                                 nn.Linear(128, 128), nn.ReLU(True), nn.Dropout(),
                                 nn.Linear(128, N_CLASSES))
    return m


def _resnet(block: str, **kw):
    from torchvision.models import resnet

    b = resnet.BasicBlock if block == "basic" else resnet.Bottleneck
    return resnet.ResNet(b, [1, 1, 1, 1], num_classes=N_CLASSES, **kw)


def _densenet():
    from torchvision.models import DenseNet

    return DenseNet(growth_rate=12, block_config=(2, 2, 2), num_init_features=16,
                    num_classes=N_CLASSES)


def _googlenet():
    from torchvision.models import googlenet

    return googlenet(num_classes=N_CLASSES, aux_logits=False, init_weights=True)


def _inception():
    from torchvision.models import inception_v3

    return inception_v3(num_classes=N_CLASSES, aux_logits=False, init_weights=True)


def _efficientnet():
    from torchvision.models import efficientnet as e

    cfg = [e.MBConvConfig(1, 3, 1, 16, 16, 1), e.MBConvConfig(4, 3, 2, 16, 24, 1),
           e.MBConvConfig(4, 5, 2, 24, 32, 1), e.MBConvConfig(4, 3, 2, 32, 48, 1)]
    return e.EfficientNet(cfg, dropout=0.2, stochastic_depth_prob=0.1, num_classes=N_CLASSES,
                          last_channel=128)


def _efficientnet_v2():
    from torchvision.models import efficientnet as e

    cfg = [e.FusedMBConvConfig(1, 3, 1, 16, 16, 1), e.FusedMBConvConfig(4, 3, 2, 16, 24, 1),
           e.MBConvConfig(4, 3, 2, 24, 32, 1), e.MBConvConfig(4, 3, 2, 32, 48, 1)]
    return e.EfficientNet(cfg, dropout=0.2, stochastic_depth_prob=0.1, num_classes=N_CLASSES,
                          last_channel=128)


def _regnet(se: bool):
    from torchvision.models import regnet

    params = regnet.BlockParams.from_init_params(depth=6, w_0=16, w_a=8.0, w_m=2.0,
                                                 group_width=8, se_ratio=0.25 if se else None)
    return regnet.RegNet(params, num_classes=N_CLASSES)


def _convnext():
    from torchvision.models import convnext

    cfg = [convnext.CNBlockConfig(32, 64, 1), convnext.CNBlockConfig(64, 128, 1),
           convnext.CNBlockConfig(128, None, 1)]
    return convnext.ConvNeXt(cfg, stochastic_depth_prob=0.0, num_classes=N_CLASSES)


def _vit():
    from torchvision.models import VisionTransformer

    return VisionTransformer(image_size=64, patch_size=8, num_layers=4, num_heads=4,
                             hidden_dim=64, mlp_dim=128, num_classes=N_CLASSES)


def _swin():
    from torchvision.models import SwinTransformer

    return SwinTransformer(patch_size=[4, 4], embed_dim=32, depths=[2, 2], num_heads=[2, 4],
                           window_size=[4, 4], stochastic_depth_prob=0.0,
                           num_classes=N_CLASSES)


def _maxvit():
    from torchvision.models import MaxVit

    return MaxVit(input_size=(64, 64), stem_channels=16, partition_size=4,
                  block_channels=[32, 64], block_layers=[1, 1], head_dim=16,
                  stochastic_depth_prob=0.0, num_classes=N_CLASSES)


def _tv(name: str, **kw):
    def build():
        import torchvision

        return getattr(torchvision.models, name)(num_classes=N_CLASSES, **kw)
    return build


FAMILIES: dict[str, Family] = {f.name: f for f in [
    # AlexNet (no normalisation, dropout) stays at chance at the CNNs' rate (test accuracy
    # 0.09 after 4 epochs at 2e-3) and leaves chance late at 5e-4 (0.15 after 8 epochs)
    Family("alexnet", _alexnet, 64, blocks="AlexNet's features, dense head at width 128",
           lr=5e-4, epochs=20),
    Family("vgg", _vgg, blocks="VGG's conv stacks (16-64 channels), dense head at 128"),
    Family("resnet", lambda: _resnet("basic"), blocks="BasicBlock, one per stage"),
    Family("resnext", lambda: _resnet("bottleneck", groups=4, width_per_group=4),
           blocks="grouped Bottleneck (4 x 4), one per stage"),
    Family("wide_resnet", lambda: _resnet("bottleneck", width_per_group=32),
           blocks="wide Bottleneck, one per stage"),
    Family("densenet", _densenet, blocks="dense blocks (growth 12, 3 x 2 layers)"),
    # SqueezeNet's logits pass a ReLU: under the sigmoid loss, which pushes the eight
    # absent classes' logits below zero, every logit died (test accuracy 0.02 at 2e-3 for
    # 4 epochs and at 5e-4 for 12); the softmax loss only orders them
    Family("squeezenet", _tv("squeezenet1_1"), blocks="Fire modules (squeezenet1_1)",
           lr=1e-3, epochs=12, loss="softmax"),
    Family("googlenet", _googlenet, blocks="Inception modules (GoogLeNet)"),
    Family("inception", _inception, 80, blocks="Inception v3 modules"),
    Family("mobilenet_v2", _tv("mobilenet_v2", width_mult=0.5),
           blocks="InvertedResidual, ReLU6 (width 0.5)"),
    # 0.59 after 4 epochs
    Family("mobilenet_v3", _tv("mobilenet_v3_small"),
           blocks="InvertedResidual with squeeze-excitation, Hardswish", epochs=12),
    # MNASNet's BatchNorm momentum is 3e-4 (torchvision's): 500 steps leave its running
    # statistics near their initial values, and the model at chance (0.02) in eval mode
    Family("mnasnet", _tv("mnasnet0_5"), blocks="MNASNet stacks (0.5)",
           recalibrate_bn=True),
    Family("shufflenet", _tv("shufflenet_v2_x0_5"), blocks="channel shuffle, split (x0.5)"),
    Family("efficientnet", _efficientnet, blocks="MBConv with squeeze-excitation, SiLU"),
    Family("efficientnet_v2", _efficientnet_v2, blocks="FusedMBConv and MBConv"),
    Family("regnet_x", lambda: _regnet(False), blocks="ResBottleneckBlock, grouped"),
    Family("regnet_y", lambda: _regnet(True), blocks="ResBottleneckBlock with SE"),
    Family("convnext", _convnext, blocks="CNBlock: depthwise 7x7, LayerNorm2d, GELU, "
                                         "layer scale"),
    Family("vit", _vit, kind="transformer", blocks="encoder blocks, class token (4 x 64)"),
    Family("swin", _swin, kind="transformer", blocks="shifted-window blocks, patch merging"),
    Family("maxvit", _maxvit, kind="transformer", blocks="MBConv + block and grid attention"),
]}


def check_family(name: str) -> Family:
    """The :class:`Family` named ``name``, or a ``ValueError`` naming the nearest ones."""
    if name in FAMILIES:
        return FAMILIES[name]
    close = difflib.get_close_matches(str(name), list(FAMILIES), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown zoo family '{name}'.{hint} Choose among {', '.join(FAMILIES)}.")


def build(name: str, seed: int = 0) -> nn.Module:
    """A freshly initialised ``name`` network, seeded (the global RNG is restored)."""
    fam = check_family(name)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        return fam.build()
    finally:
        torch.random.set_rng_state(state)
