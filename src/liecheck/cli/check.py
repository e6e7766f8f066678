"""``liecheck check MODEL``: which methods run on a model and the rule per op type."""

from __future__ import annotations

import argparse
import importlib
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="which methods run on a model, and the rule per op type",
                       description="Trace MODEL and report, for every registered method, "
                       "whether it runs (each op of the model has a rule) or why not, and "
                       "the rule each op type gets under the main methods. MODEL is a "
                       "torchvision model name (resnet18, convnext_tiny, ...) or "
                       "package.module:object (an nn.Module, or a function returning one).")
    p.add_argument("model", help="torchvision name or package.module:object")
    p.add_argument("--weights", default=None, help="for a torchvision name: a checkpoint "
                   "path (a state dict, loaded with weights_only=True); default: random init")
    p.set_defaults(func=run)


def _model(spec: str, weights: str | None):
    import torch
    import torchvision
    from torch import nn

    if ":" in spec:
        mod, _, obj = spec.partition(":")
        target = getattr(importlib.import_module(mod), obj)
        model = target if isinstance(target, nn.Module) else target()
        if not isinstance(model, nn.Module):
            raise TypeError(f"{spec} is not an nn.Module nor a function returning one")
        return model
    names = torchvision.models.list_models(module=torchvision.models)
    if spec not in names:
        import difflib
        close = difflib.get_close_matches(spec.lower(), names, n=2)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise ValueError(f"unknown model '{spec}': not a torchvision classification model "
                         f"nor package.module:object.{hint}")
    model = torchvision.models.get_model(spec, weights=None)
    if weights is not None:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    else:
        print(f"liecheck: note: {spec} has seeded RANDOM weights (the rules do not depend on "
              "them)", file=sys.stderr)
    return model.eval()


def run(args: argparse.Namespace) -> int:
    from ..coverage import check

    print(check(_model(args.model, args.weights)))
    return 0
