"""Theory toolkit: why modified-BP attributions converge (Sixt et al. 2020, sections
2.1-2.2 and appendices A-B), and matrix-free spectra that go beyond the paper.

* :func:`simulate_chain`: the appendix-B matrix-chain simulation (Figure 7);
* :func:`theorem1`, :func:`convergence_rate`: Theorem 1's bounds (the paper's eq. 36,
  which fails in general, and two valid ones), measured;
* :func:`singular_ratios`: Figure 3 (sigma1/sigma2 of W, A, W (*) A, inter-layer);
* :func:`spectrum`, :func:`spectrum_table`: top singular values of a method's
  derivation matrix per image, without forming it;
* :mod:`.figures`: the plots.
"""

from .chain import FAMILIES, VGG16_SHAPES, alpha_beta_family, mean_abs_cosine, simulate_chain
from .singular import inter_layer, singular_ratios, sv_ratio
from .spectrum import DerivationOperator, NotLinearInRelevance, spectrum, spectrum_table
from .taps import backward_chain, centre_tap, dense_centre, layer_matrices
from .theorem import (
    BOUNDS,
    conditions,
    convergence_rate,
    paper_lambda,
    projective_diameter,
    random_nonneg_chain,
    theorem1,
)

__all__ = [
    "BOUNDS",
    "FAMILIES",
    "VGG16_SHAPES",
    "DerivationOperator",
    "NotLinearInRelevance",
    "alpha_beta_family",
    "backward_chain",
    "centre_tap",
    "conditions",
    "convergence_rate",
    "dense_centre",
    "inter_layer",
    "layer_matrices",
    "mean_abs_cosine",
    "paper_lambda",
    "projective_diameter",
    "random_nonneg_chain",
    "simulate_chain",
    "singular_ratios",
    "spectrum",
    "spectrum_table",
    "sv_ratio",
    "theorem1",
]
