"""Ground-truth class-sensitivity benchmark: two digits side by side, explain each.

* :func:`two_digits`: the benchmark (relevance mass accuracy, pointing, L1 between the
  two classes' maps up to their sign, with bootstrap intervals), one row per method;
* :mod:`.data`: the two-digit images; :mod:`.model`: the multi-label network
  (trained on first use, cached); :mod:`.references`: ``occlusion`` and ``random``;
* :func:`plot_two_digits`: the figure.
"""

from .benchmark import MEASURES, measure_maps, resolve_methods, two_digits, walkable_methods
from .data import TwoDigits, half_masks, two_digit_images
from .figures import plot_two_digits
from .model import load_two_digits_net, two_digits_net
from .references import REFERENCES, occlusion, random_maps

__all__ = [
    "MEASURES",
    "REFERENCES",
    "TwoDigits",
    "half_masks",
    "load_two_digits_net",
    "measure_maps",
    "occlusion",
    "plot_two_digits",
    "random_maps",
    "resolve_methods",
    "two_digit_images",
    "two_digits",
    "two_digits_net",
    "walkable_methods",
]
