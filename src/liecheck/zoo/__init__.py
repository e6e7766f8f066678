"""The zoo: every torchvision family, trained on two digits side by side, under the
paper's battery (see docs/zoo.md).

* :data:`FAMILIES` (:mod:`.families`): the 18 CNN families and the three vision
  transformers at reduced width and depth;
* :func:`load_family` (:mod:`.train`): a trained family from the cache (trained on
  first use) or its random initialisation;
* :func:`zoo_images` (:mod:`.data`): the two-digit images padded to a family's square;
* :func:`battery` (:mod:`.run`): the paper's battery over the zoo (``liecheck zoo``), one
  row per (model, method) with 99 % bootstrap intervals and the verdict naming the
  mechanism; :func:`table` the same from a run store's tables;
* :func:`plot_zoo` (:mod:`.figures`): the figure of that table.
"""

from .data import pad_square, zoo_images
from .families import FAMILIES, Family, build, check_family
from .figures import plot_zoo
from .run import ZOO_METHODS, battery, table, zoo_config
from .train import checkpoint, load_family, train_family

__all__ = ["FAMILIES", "ZOO_METHODS", "Family", "battery", "build", "check_family",
           "checkpoint", "load_family", "pad_square", "plot_zoo", "table", "train_family",
           "zoo_config", "zoo_images"]
