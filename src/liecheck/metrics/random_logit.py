"""Random-logit test (Sixt et al. 2020, section 5, Figure 4a).

For each image, the map explaining the target class (ground truth or predicted)
is compared with the map explaining a uniformly drawn *other* class, on the same
trained model. A method whose maps barely depend on the explained logit scores
close to 1 (class-insensitive); faithful methods score clearly lower.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..attribution import Explainer, explainer_for
from ..inputs import resolve_targets
from ..methods import Method, get_method
from .similarity import prepare
from .similarity import similarity as compare


def other_classes(target: torch.Tensor, n_classes: int, seed: int = 0,
                  image_ids: Sequence[int] | None = None) -> torch.Tensor:
    """One class per image drawn uniformly from the ``n_classes - 1`` others (seeded;
    image ``i``'s draw depends only on ``seed`` and its number ``image_ids[i]``
    (default ``i``), not on the method, the batch or the other images)."""
    ids = range(len(target)) if image_ids is None else image_ids
    draw = torch.as_tensor([int(np.random.default_rng([seed, int(i)]).integers(0, n_classes - 1))
                            for i in ids], dtype=torch.long)
    return draw + (draw >= target).long()


def random_logit(model: nn.Module | Explainer, inputs, method: str | Method, target=None,
                 seed: int = 0, similarity: str = "ssim", batch_size: int | None = None,
                 image_ids: Sequence[int] | None = None,
                 device: str | torch.device | None = None) -> pd.DataFrame:
    """SSIM between the target-class map and a random other class's map.

    Parameters
    ----------
    model : the network (deep-copied, never modified) or an :class:`~liecheck.Explainer`.
    inputs : ``(N, C, H, W)`` tensor or an :class:`~liecheck.data.ImageSet`.
    method : registry name or :class:`~liecheck.Method`.
    target : class per image or an int; ``None``: the predicted class.
    seed : seed of the other-class draw.
    similarity : ``"ssim"`` (default; max over the sign flip, as in the sanity
        check), ``"spearman"`` or ``"l1"`` (see :mod:`liecheck.metrics.similarity`).
    batch_size : images per attribution call (default 16).
    image_ids : ``(N,)`` the images' numbers (default ``0 ... N-1``): they key the
        other-class draw and fill the ``image`` column, so a part of an image set
        gives the rows of the whole set's run.
    device : where to run (default: the model's device; ignored for an Explainer).

    Returns
    -------
    ``DataFrame`` with one row per image: ``method, image, target, other, measure, score``.
    """
    m = get_method(method)
    ex = model if isinstance(model, Explainer) else explainer_for(model, device)
    x = getattr(inputs, "images", inputs)
    x = x.detach() if isinstance(x, torch.Tensor) else x  # maps never need its graph
    bs = batch_size or 16
    n_classes = ex.check_inputs(x)
    tgt = resolve_targets(target, len(x), n_classes, lambda: ex.predict(x, bs), "cpu")
    if n_classes < 2:
        raise ValueError("the random-logit test needs a model with at least 2 classes")
    ids = np.arange(len(x)) if image_ids is None else np.asarray(image_ids, dtype=np.int64)
    if len(ids) != len(x):
        raise ValueError(f"image_ids has {len(ids)} entries for {len(x)} images")
    other = other_classes(tgt, n_classes, seed, ids)
    scores = []
    for i in range(0, len(x), bs):
        xb = x[i:i + bs]
        a = prepare(ex.attribute(xb, m, target=tgt[i:i + bs]).cpu(), m)
        b = prepare(ex.attribute(xb, m, target=other[i:i + bs]).cpu(), m)
        scores.append(compare(a, b, similarity))
    s = torch.cat(scores)
    return pd.DataFrame({"method": m.name, "image": ids, "target": tgt.numpy(),
                         "other": other.numpy(), "measure": similarity, "score": s.numpy()})
