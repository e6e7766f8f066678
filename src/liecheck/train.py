"""Training the paper's CIFAR network: the built-in digits model and CIFAR-10.

The built-in default model is :func:`liecheck.models.cifar_net` trained on
scikit-learn's handwritten digits (see :mod:`liecheck.data.digits`) with Adam,
batch 32 (appendix D of Sixt et al. 2020 uses Adam and batch 32 for CIFAR-10).
It is cached in ``$LIECHECK_CACHE`` (default ``~/.cache/liecheck``) as a state dict
plus a JSON file with the test accuracy and the training settings, and loaded
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
from torch import nn

from .data.cifar10 import cifar10_dataset
from .data.digits import load_digits_split
from .models import cifar_net, load

DIGITS_EPOCHS = 2          # >= 95% test accuracy on the digits (tests/models/test_train.py)
CIFAR10_EPOCHS = 100       # the paper's setting


def cache_dir() -> Path:
    """``$LIECHECK_CACHE`` or ``~/.cache/liecheck`` (created on demand)."""
    d = Path(os.environ.get("LIECHECK_CACHE") or Path.home() / ".cache" / "liecheck")
    return d.expanduser()


def _batches(n: int, batch_size: int, gen: torch.Generator):
    perm = torch.randperm(n, generator=gen)
    for i in range(0, n, batch_size):
        yield perm[i:i + batch_size]


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on ``x`` ``(N, C, H, W)``, ``y`` ``(N,)``."""
    was = model.training
    model.eval()
    correct = 0
    for i in range(0, len(y), batch_size):
        correct += int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    model.train(was)
    return correct / max(len(y), 1)


def fit(model: nn.Module, data, epochs: int, seed: int = 0, lr: float = 1e-3,
        batch_size: int = 32, progress: bool = True, desc: str = "train",
        loss_fn: nn.Module | None = None) -> nn.Module:
    """Adam + ``loss_fn`` (default cross-entropy) for ``epochs`` epochs; ``data`` is
    ``(x, y)`` tensors or a torch ``Dataset``. Seeded: the same seed gives the same
    weights on the same machine."""
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout masks
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
    if isinstance(data, tuple):
        x, y = data
        n = len(y)
        loader = None
    else:
        loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True,
                                             generator=gen, num_workers=0)
        n = len(data)
    model.train()
    bar = tqdm(total=epochs * n, desc=desc, unit="img", disable=not progress, leave=False)
    for _ in range(epochs):
        it = loader if loader is not None else (
            (x[b], y[b]) for b in _batches(n, batch_size, gen))
        for xb, yb in it:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            bar.update(len(yb))
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    bar.close()
    return model.eval()


def train_cifar_net(data: str = "digits", data_dir: str | Path | None = None,
                    epochs: int | None = None, seed: int = 0, lr: float = 1e-3,
                    batch_size: int = 32, out: str | Path | None = None,
                    progress: bool = True) -> tuple[nn.Module, dict]:
    """Train :func:`~liecheck.models.cifar_net` on ``"digits"`` or ``"cifar10"``.

    Parameters
    ----------
    data : ``"digits"`` (scikit-learn, offline) or ``"cifar10"`` (torchvision's
        CIFAR10 from ``data_dir``; never downloaded).
    epochs : default 3 for digits, 100 for CIFAR-10 (the paper's).
    out : where to save the state dict; a JSON file with the settings and the
        test accuracy is written next to it (``.json``).

    Returns
    -------
    ``(model, info)``, info holding ``test_accuracy``, ``train_seconds`` and settings.
    """

    t0 = time.perf_counter()
    model = cifar_net(10, seed=seed)
    settings = {"data": data, "epochs": epochs, "seed": seed, "lr": lr, "batch_size": batch_size,
                    "optimizer": "Adam", "torch": torch.__version__}
    if data == "digits":
        s = load_digits_split(seed)
        settings["epochs"] = epochs = epochs or DIGITS_EPOCHS
        settings.update(augment="none", split="stratified 80/20, sklearn random_state=seed",
                        input="8x8 -> 32x32 bilinear, 3 channels, (x - mean) / std",
                        mean=s.mean, std=s.std, n_train=len(s.y_train), n_test=len(s.y_test))
        fit(model, (s.x_train, s.y_train), epochs, seed, lr, batch_size, progress,
            desc="train cifar_net on digits")
        acc = accuracy(model, s.x_test, s.y_test)
    elif data == "cifar10":
        if data_dir is None:
            raise ValueError("--data cifar10 needs --data-dir (the folder that holds "
                             "cifar-10-batches-py)")
        train_set = cifar10_dataset(data_dir, train=True, augment=True)
        test_set = cifar10_dataset(data_dir, train=False)
        settings["epochs"] = epochs = epochs or CIFAR10_EPOCHS
        settings.update(augment="random crop (pad 4) + horizontal flip", data_dir=str(data_dir))
        fit(model, train_set, epochs, seed, lr, batch_size, progress,
            desc="train cifar_net on CIFAR-10")
        xs, ys = zip(*[test_set[i] for i in range(len(test_set))])
        acc = accuracy(model, torch.stack(xs), torch.as_tensor(ys))
    else:
        raise ValueError(f"unknown training data '{data}'; use 'digits' or 'cifar10'")
    info = {"model": "cifar_net", "test_accuracy": acc,
                "train_seconds": round(time.perf_counter() - t0, 2),
                "threads": torch.get_num_threads(), "settings": settings}
    if out is not None:
        save(model, info, out)
    return model, info


def save(model: nn.Module, info: dict, path: str | Path) -> Path:
    """State dict to ``path`` and ``info`` to ``path.with_suffix('.json')``, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    meta = path.with_suffix(".json")
    tmpj = meta.with_name(f".{meta.name}.{os.getpid()}.tmp")
    tmpj.write_text(json.dumps(info, indent=2))
    os.replace(tmpj, meta)
    return path


def default_checkpoint(seed: int = 0, epochs: int = DIGITS_EPOCHS) -> Path:
    return cache_dir() / f"cifar_net-digits-e{epochs}-seed{seed}.pt"


def default_model(seed: int = 0, epochs: int = DIGITS_EPOCHS, retrain: bool = False,
                  progress: bool = True):
    """The built-in model: cifar_net trained on the digits, from the cache or trained now.

    Returns ``(model, source, info)``: ``source`` is a
    :class:`~liecheck.models.ModelSource` (checkpoint path and sha256) whose ``extra``
    holds the training info (test accuracy, settings, training time).
    """

    path = default_checkpoint(seed, epochs)
    meta = path.with_suffix(".json")
    if retrain or not (path.exists() and meta.exists()):
        print(f"training the built-in model (cifar_net on scikit-learn digits, {epochs} epochs, "
              f"seed {seed}); cached at {path}")
        train_cifar_net("digits", epochs=epochs, seed=seed, out=path, progress=progress)
    info = json.loads(meta.read_text())
    model, src = load("cifar_net", weights=path, verbose=False)
    src.extra.update(info)
    return model, src, info
