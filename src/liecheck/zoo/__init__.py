"""The zoo: every torchvision family, trained on two digits side by side, under the
paper's battery (see docs/zoo.md).

* :data:`FAMILIES` (:mod:`.families`): the 18 CNN families and the three vision
  transformers at reduced width and depth;
* :func:`load_family` (:mod:`.train`): a trained family from the cache (trained on
  first use) or its random initialisation;
* :func:`zoo_images` (:mod:`.data`): the two-digit images padded to a family's square.
"""

from .data import pad_square, zoo_images
from .families import FAMILIES, Family, build, check_family
from .train import checkpoint, load_family, train_family

__all__ = ["FAMILIES", "Family", "build", "check_family", "checkpoint", "load_family",
           "pad_square", "train_family", "zoo_images"]
