"""Models: the paper's CIFAR network and loaders for VGG-16 / ResNet-50."""

from .cifar_net import cifar_net
from .zoo import MODEL_NAMES, ModelSource, check_model_name, load

__all__ = ["cifar_net", "check_model_name", "load", "MODEL_NAMES", "ModelSource"]
