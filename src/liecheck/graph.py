"""Trace a model into a canonical graph that the reverse walk can visit.

``trace(model)`` deep-copies the model, runs ``torch.fx.symbolic_trace`` on the
copy and canonicalises it:

* BatchNorm that directly follows a conv / linear layer whose output it alone
  consumes is folded into that layer's weights and bias (on the copy).  Any other
  BatchNorm becomes a per-channel affine ``linear`` node, so the rules treat it as
  a linear layer with a diagonal weight (its own rule, the composite's linear rule).
* in-place operations (``ReLU(inplace=True)``, ``F.relu(x, inplace=True)``,
  ``x.relu_()``, ``x += y``) become out-of-place nodes;
* every tensor operation is one :class:`Node` with a stable name in execution
  order (the torch.fx node name, e.g. ``layer1_0_relu_1``); a module called twice
  is two nodes.

Unsupported operations fail here, at trace time, with :class:`UnsupportedOperation`
naming the node and the operation.
"""

from __future__ import annotations

import copy
import operator
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from .ops import AdaptiveAvgPoolOp, AffineOp, AvgPoolOp, ConvOp, DenseOp, LinearOp

# node kinds -------------------------------------------------------------------
INPUT, LINEAR, RELU, MAXPOOL, ADD, CAT, RESHAPE, IDENTITY, META = (
    "input", "linear", "relu", "maxpool", "add", "cat", "reshape", "identity", "meta")


class UnsupportedOperation(TypeError):
    """Raised at trace time for an operation that has no rule."""


@dataclass(eq=False)
class Node:
    """One tensor operation of the canonical graph.

    Attributes
    ----------
    name : stable name (the torch.fx node name), unique, in execution order.
    kind : one of ``input, linear, relu, maxpool, add, cat, reshape, identity, meta``.
    inputs : names of the tensor-producing nodes this node reads (in argument order).
    op : for ``linear`` nodes a :class:`~liecheck.ops.LinearOp`; for ``maxpool`` the
        pooling parameters; for ``cat`` the dimension.
    layer : ``"conv"``, ``"dense"``, ``"affine"`` (stand-alone BatchNorm) or
        ``"pool"`` for linear nodes; ``None`` otherwise.
    module : qualified name of the module it came from (``"features.0"``), or None.
    index : position in execution order.
    """

    name: str
    kind: str
    inputs: list[str]
    op: Any = None
    layer: str | None = None
    module: str | None = None
    index: int = 0
    nonneg_input: bool = False
    fx_node: fx.Node | None = field(default=None, repr=False)

    @property
    def is_parametrised(self) -> bool:
        return self.kind == LINEAR and self.layer in ("conv", "dense", "affine")


_RELU_FUNCS = {F.relu, torch.relu, torch.relu_, torch.nn.functional.relu_}
_ADD_FUNCS = {operator.add, operator.iadd, torch.add}
_FLATTEN_FUNCS = {torch.flatten, torch.reshape}
_META_FUNCS = {getattr, operator.getitem, operator.mul, operator.floordiv, operator.sub,
               operator.truediv, len}
_META_METHODS = {"size", "dim"}
_IDENTITY_FUNCS = {F.dropout, torch.dropout, torch.nn.functional.dropout2d, torch.clone}
_IDENTITY_METHODS = {"contiguous", "clone", "detach"}
_RESHAPE_METHODS = {"view", "reshape", "flatten"}
_RELU_METHODS = {"relu", "relu_"}
_ADD_METHODS = {"add", "add_", "__add__", "__iadd__"}
_IDENTITY_MODULES = (nn.Dropout, nn.Dropout2d, nn.Identity)

_HOW_TO = ("Register a rule for it with liecheck.register_op(<module type or function>, "
           "kind=...), or rewrite the model with a supported equivalent (see "
           "liecheck.graph.SUPPORTED).")

SUPPORTED = ("Conv2d, Linear, ReLU (module, F.relu, torch.relu, in-place), MaxPool2d, AvgPool2d, "
             "AdaptiveAvgPool2d, BatchNorm1d/2d, Flatten / torch.flatten / view / reshape, "
             "Dropout and Identity (eval), residual + / += / torch.add, torch.cat")

# user registrations: module type or function -> kind ("identity", "relu", "reshape")
_REGISTERED: dict[Any, str] = {}


def register_op(target: Any, kind: str) -> None:
    """Declare how an otherwise unsupported module type or function behaves.

    ``kind`` is one of ``"identity"`` (relevance passes unchanged; the op must not
    change the shape), ``"relu"`` (a ReLU-like gate: rules see it as a ReLU) or
    ``"reshape"`` (a pure reshape of its first argument).
    """
    if kind not in (IDENTITY, RELU, RESHAPE):
        raise ValueError(f"kind must be 'identity', 'relu' or 'reshape', not {kind!r}")
    _REGISTERED[target] = kind


class Graph:
    """A traced, canonicalised copy of a model.

    Parameters
    ----------
    model : the user's ``nn.Module``; it is deep-copied and never modified.
    """

    def __init__(self, model: nn.Module):
        self.was_training = model.training
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        tracer_cls = _LeafTracer
        try:
            graph = tracer_cls().trace(self.module)
        except Exception as exc:  # torch.fx cannot trace data-dependent control flow
            raise UnsupportedOperation(
                f"torch.fx could not trace {type(model).__name__}: {exc}. liecheck needs a "
                "model without data-dependent Python control flow.") from exc
        self.gm = fx.GraphModule(self.module, graph)
        self._make_out_of_place()
        self.nodes: list[Node] = []
        self.by_name: dict[str, Node] = {}
        self._build()
        self._fold_batchnorm()
        self._mark_nonneg()
        self.consumers = self._consumers()
        self._last_use = self._last_uses()

    # ------------------------------------------------------------------ build
    def _make_out_of_place(self) -> None:
        for m in self.module.modules():
            if hasattr(m, "inplace"):
                m.inplace = False
        for n in self.gm.graph.nodes:
            if n.op == "call_function":
                if n.target is operator.iadd:
                    n.target = operator.add
                elif n.target in (torch.relu_, F.relu_):
                    n.target = torch.relu
                if "inplace" in n.kwargs:
                    kw = dict(n.kwargs)
                    kw["inplace"] = False
                    n.kwargs = kw
            elif n.op == "call_method" and n.target in ("relu_", "add_"):
                n.target = n.target[:-1]
        self.gm.recompile()

    def _build(self) -> None:
        modules = dict(self.module.named_modules())
        tensor_nodes: set[str] = set()
        output_node = None
        for fxn in self.gm.graph.nodes:
            if fxn.op == "output":
                output_node = fxn
                continue
            kind, op, layer, module = self._classify(fxn, modules)
            args = [a for a in _flat_nodes(fxn.args) + _flat_nodes(fxn.kwargs)]
            inputs = [a.name for a in args if a.name in tensor_nodes]
            if kind == META:
                if inputs and not _is_shape_query(fxn):
                    # arithmetic / indexing on tensors is not a shape computation
                    name = getattr(fxn.target, "__name__", fxn.target)
                    raise UnsupportedOperation(
                        f"node '{fxn.name}': {fxn.op} '{name}' on the tensor(s) "
                        f"{', '.join(inputs)} has no rule (only shape queries such as "
                        f"x.size(0) are allowed on tensors). {_HOW_TO}")
                continue
            if kind in (RESHAPE, IDENTITY, RELU, MAXPOOL) or (kind == LINEAR):
                inputs = inputs[:1]
            node = Node(name=fxn.name, kind=kind, inputs=inputs, op=op, layer=layer,
                        module=module, index=len(self.nodes), fx_node=fxn)
            self.nodes.append(node)
            self.by_name[node.name] = node
            tensor_nodes.add(fxn.name)
        outs = _flat_nodes(output_node.args)
        if len(outs) != 1 or outs[0].name not in self.by_name:
            raise UnsupportedOperation("the model must return a single tensor (the logits)")
        self.output = outs[0].name
        self.input = self.nodes[0].name

    def _classify(self, fxn: fx.Node, modules: dict[str, nn.Module]):
        """Map an fx node to (kind, op, layer, module name)."""
        if fxn.op == "placeholder":
            if self.nodes:
                raise UnsupportedOperation("models with more than one input are not supported")
            return INPUT, None, None, None
        if fxn.op == "get_attr":
            raise UnsupportedOperation(
                f"node '{fxn.name}' reads the tensor attribute '{fxn.target}' directly; "
                f"only module parameters are supported. {_HOW_TO}")
        if fxn.op == "call_module":
            m = modules[fxn.target]
            if type(m) in _REGISTERED:
                return _REGISTERED[type(m)], None, None, fxn.target
            if isinstance(m, nn.Conv2d):
                if m.padding_mode != "zeros":
                    raise UnsupportedOperation(
                        f"node '{fxn.name}' ({fxn.target}): Conv2d with padding_mode="
                        f"'{m.padding_mode}' is not supported. {_HOW_TO}")
                return LINEAR, ConvOp.from_module(m), "conv", fxn.target
            if isinstance(m, nn.Linear):
                return LINEAR, DenseOp(m.weight, m.bias), "dense", fxn.target
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                return LINEAR, AffineOp.from_batchnorm(m), "affine", fxn.target
            if isinstance(m, nn.ReLU):
                return RELU, None, None, fxn.target
            if isinstance(m, nn.MaxPool2d):
                return MAXPOOL, _maxpool_params(m), None, fxn.target
            if isinstance(m, nn.AvgPool2d):
                return LINEAR, AvgPoolOp.from_module(m), "pool", fxn.target
            if isinstance(m, nn.AdaptiveAvgPool2d):
                return LINEAR, AdaptiveAvgPoolOp(m.output_size), "pool", fxn.target
            if isinstance(m, nn.Flatten):
                return RESHAPE, None, None, fxn.target
            if isinstance(m, _IDENTITY_MODULES):
                return IDENTITY, None, None, fxn.target
            raise UnsupportedOperation(
                f"node '{fxn.name}': module '{fxn.target}' of type {type(m).__name__} has no "
                f"rule. Supported: {SUPPORTED}. {_HOW_TO}")
        if fxn.op == "call_function":
            t = fxn.target
            if t in _REGISTERED:
                return _REGISTERED[t], None, None, None
            if t in _RELU_FUNCS:
                return RELU, None, None, None
            if t in _ADD_FUNCS:
                if "alpha" in fxn.kwargs:
                    raise UnsupportedOperation(
                        f"node '{fxn.name}': torch.add with alpha. {_HOW_TO}")
                return ADD, None, None, None
            if t is torch.cat:
                dim = fxn.kwargs.get("dim", fxn.args[1] if len(fxn.args) > 1 else 0)
                return CAT, dim, None, None
            if t in _FLATTEN_FUNCS:
                return RESHAPE, None, None, None
            if t in _IDENTITY_FUNCS:
                return IDENTITY, None, None, None
            if t is F.max_pool2d:
                raise UnsupportedOperation(
                    f"node '{fxn.name}': functional F.max_pool2d; use nn.MaxPool2d. {_HOW_TO}")
            if t is F.adaptive_avg_pool2d:
                size = fxn.args[1] if len(fxn.args) > 1 else fxn.kwargs["output_size"]
                return LINEAR, AdaptiveAvgPoolOp(size), "pool", None
            if t in _META_FUNCS:
                return META, None, None, None
            raise UnsupportedOperation(
                f"node '{fxn.name}': function {getattr(t, '__name__', t)} has no rule. "
                f"Supported: {SUPPORTED}. {_HOW_TO}")
        if fxn.op == "call_method":
            t = fxn.target
            if t in _RELU_METHODS:
                return RELU, None, None, None
            if t in _ADD_METHODS:
                return ADD, None, None, None
            if t in _RESHAPE_METHODS:
                return RESHAPE, None, None, None
            if t in _IDENTITY_METHODS:
                return IDENTITY, None, None, None
            if t in _META_METHODS:
                return META, None, None, None
            raise UnsupportedOperation(
                f"node '{fxn.name}': tensor method .{t}() has no rule. Supported: {SUPPORTED}. "
                f"{_HOW_TO}")
        raise UnsupportedOperation(f"node '{fxn.name}': fx op {fxn.op} is not supported")

    def _fold_batchnorm(self) -> None:
        users: dict[str, list[Node]] = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                users[i].append(n)
        drop = set()
        for n in self.nodes:
            if n.kind == LINEAR and n.layer == "affine" and n.inputs:
                prev = self.by_name[n.inputs[0]]
                if (prev.kind == LINEAR and prev.layer in ("conv", "dense")
                        and len(users[prev.name]) == 1 and prev.name != self.output):
                    prev.op = prev.op.fold(n.op)
                    drop.add(n.name)
        if drop:  # remove folded BN nodes; rewire their users to the folded layer
            alias = {n.name: n.inputs[0] for n in self.nodes if n.name in drop}
            for n in self.nodes:
                n.inputs = [alias.get(i, i) for i in n.inputs]
            self.nodes = [n for n in self.nodes if n.name not in drop]
            self.output = alias.get(self.output, self.output)
            self.aliases = alias
        else:
            self.aliases = {}
        for i, n in enumerate(self.nodes):
            n.index = i
        self.by_name = {n.name: n for n in self.nodes}

    def _mark_nonneg(self) -> None:
        """Record which nodes have a provably non-negative input (after a ReLU)."""
        nonneg: dict[str, bool] = {}
        for n in self.nodes:
            ins = [nonneg.get(i, False) for i in n.inputs]
            n.nonneg_input = bool(ins) and all(ins)
            if n.kind == RELU:
                # a module / function registered as "relu" (e.g. LeakyReLU) may go negative
                nonneg[n.name] = not _is_registered(n.fx_node, self.module)
            elif n.kind == ADD:
                # `x + c` with a negative constant c can go negative
                consts = [a for a in n.fx_node.args if not isinstance(a, fx.Node)]
                nonneg[n.name] = n.nonneg_input and all(
                    isinstance(c, (int, float)) and c >= 0 for c in consts)
            elif (n.kind in (MAXPOOL, RESHAPE, IDENTITY, CAT)
                  or (n.kind == LINEAR and n.layer == "pool")):
                nonneg[n.name] = n.nonneg_input
            else:
                nonneg[n.name] = False

    def _last_uses(self) -> dict[str, list[str]]:
        """fx node name -> fx values that can be dropped after it ran (forward memory)."""
        last: dict[str, str] = {}
        for fxn in self.gm.graph.nodes:
            for a in _flat_nodes(fxn.args) + _flat_nodes(fxn.kwargs):
                # a folded BatchNorm's value is its conv's tensor: release both names
                last[a.name] = fxn.name
                last[self.aliases.get(a.name, a.name)] = fxn.name
        out: dict[str, list[str]] = {}
        for value, user in last.items():
            out.setdefault(user, []).append(value)
        return out

    def _consumers(self) -> dict[str, list[str]]:
        c: dict[str, list[str]] = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                c[i].append(n.name)
        return c

    # ------------------------------------------------------------- queries
    def resolve(self, name: str) -> str:
        """Map a node name, a folded BatchNorm's name or a module name to a node name;
        a name in the other spelling (``features.0`` / ``features_0``) resolves too."""
        if name in ("output", "logits"):
            return self.output
        if name == "input":
            return self.input
        if name in self.by_name:
            return name
        if name in self.aliases:
            return self.aliases[name]
        matches = [n.name for n in self.nodes if n.module == name]
        if not matches:              # the other spelling: "features_0" <-> "features.0"
            alt = name.replace(".", "_")
            if alt in self.by_name:
                return alt
            matches = [n.name for n in self.nodes
                       if n.module is not None and n.module.replace(".", "_") == alt]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise KeyError(f"module '{name}' is called {len(matches)} times: use one of the "
                           f"node names {matches}")
        raise KeyError(f"no node or module named '{name}'. Nodes: "
                       + ", ".join(n.name for n in self.nodes))

    def linear_nodes(self, layers: tuple[str, ...] = ("conv", "dense")) -> list[Node]:
        return [n for n in self.nodes if n.kind == LINEAR and n.layer in layers]

    def first(self, layer: str) -> Node | None:
        ls = self.linear_nodes((layer,))
        return ls[0] if ls else None

    def last(self, layer: str) -> Node | None:
        ls = self.linear_nodes((layer,))
        return ls[-1] if ls else None

    def to(self, device: torch.device | str) -> Graph:
        for n in self.nodes:
            if isinstance(n.op, LinearOp):
                n.op = n.op.to(device)
        self.module.to(device)
        return self

    def summary(self) -> str:
        rows = [f"{n.index:4d} {n.name:32s} {n.kind:9s} {n.layer or '':7s} "
                f"<- {', '.join(n.inputs)}" for n in self.nodes]
        return "\n".join(rows)

    # ------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor, keep: Callable[[Node], bool] | None = None,
                shapes: dict | None = None, indices: dict | None = None
                ) -> dict[str, torch.Tensor]:
        """Run the canonical graph on ``x`` and return the kept node outputs.

        ``keep(node)`` decides which outputs are stored (default: all). The output
        node is always kept. ``shapes`` (if given) receives every node's output shape,
        ``indices`` (if given) every max-pool node's arg-max indices.
        """
        env: dict[str, Any] = {}
        acts: dict[str, torch.Tensor] = {}
        for fxn in self.gm.graph.nodes:
            if fxn.op == "output":
                break
            node = self.by_name.get(fxn.name)
            if fxn.op == "placeholder":
                val = x
            elif node is not None and node.kind == LINEAR:
                val = node.op(env[node.inputs[0]])
            elif node is None and fxn.name in self.aliases:
                val = env[self.aliases[fxn.name]]
            elif node is not None and node.kind == MAXPOOL:
                if indices is not None:  # the switches, so the walk need not recompute them
                    val, indices[node.name] = F.max_pool2d(env[node.inputs[0]],
                                                           return_indices=True, **node.op)
                else:
                    val = F.max_pool2d(env[node.inputs[0]], **node.op)
            else:
                args = fx.node.map_arg(fxn.args, lambda a: env[a.name])
                kwargs = fx.node.map_arg(fxn.kwargs, lambda a: env[a.name])
                if fxn.op == "call_module":
                    val = self.gm.get_submodule(fxn.target)(*args, **kwargs)
                elif fxn.op == "call_function":
                    val = fxn.target(*args, **kwargs)
                else:
                    self_obj, *rest = args
                    val = getattr(self_obj, fxn.target)(*rest, **kwargs)
            if node is not None and not isinstance(val, torch.Tensor):  # meta nodes: no Node
                raise UnsupportedOperation(
                    f"node '{fxn.name}' returned {type(val).__name__}, not a tensor")
            if node is None and isinstance(val, torch.Tensor) and fxn.name not in self.aliases:
                raise UnsupportedOperation(
                    f"node '{fxn.name}' ({fxn.op} {getattr(fxn.target, '__name__', fxn.target)}) "
                    f"computes a tensor but has no rule. {_HOW_TO}")
            env[fxn.name] = val
            if node is not None:
                if shapes is not None:
                    shapes[node.name] = tuple(val.shape)
                if keep is None or keep(node) or node.name == self.output:
                    acts[node.name] = val
            for dead in self._last_use.get(fxn.name, ()):
                env.pop(dead, None)
        return acts


class _LeafTracer(fx.Tracer):
    """Tracer that keeps torchvision's and users' registered modules as leaves."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if type(m) in _REGISTERED:
            return True
        return super().is_leaf_module(m, qualname)


def _is_registered(fxn: fx.Node, root: nn.Module) -> bool:
    """True if the fx node's module type or function was declared with :func:`register_op`."""
    if fxn.op == "call_module":
        return type(root.get_submodule(fxn.target)) in _REGISTERED
    return fxn.op == "call_function" and fxn.target in _REGISTERED


_SHAPE_ATTRS = {"shape", "dtype", "device", "ndim", "is_cuda"}


def _is_shape_query(fxn: fx.Node) -> bool:
    """True for meta nodes that read only a tensor's shape (``x.size(0)``, ``x.shape``)."""
    if fxn.op == "call_method":
        return fxn.target in _META_METHODS
    if fxn.target is getattr:
        return len(fxn.args) > 1 and fxn.args[1] in _SHAPE_ATTRS
    return fxn.target is len


def _flat_nodes(a: Any) -> list[fx.Node]:
    out: list[fx.Node] = []
    fx.node.map_arg(a, lambda n: out.append(n) or n)
    return out


def _maxpool_params(m: nn.MaxPool2d) -> dict:
    if m.return_indices:
        raise UnsupportedOperation("MaxPool2d(return_indices=True) is not supported")
    return {"kernel_size": m.kernel_size, "stride": m.stride, "padding": m.padding,
                "dilation": m.dilation, "ceil_mode": m.ceil_mode}


def trace(model: nn.Module) -> Graph:
    """Trace ``model`` (never modified) into a canonical :class:`Graph`."""
    if model.training:
        warnings.warn("the model is in train mode; liecheck explains it in eval semantics "
                      "(on a copy; your model is left in train mode)", stacklevel=2)
    return Graph(model)
