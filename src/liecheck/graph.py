"""Trace a model into a canonical graph that the reverse walk can visit.

``trace(model)`` deep-copies the model, runs ``torch.fx.symbolic_trace`` on the
copy and canonicalises it:

* BatchNorm that directly follows a conv / linear layer whose output it alone
  consumes is folded into that layer's weights and bias (on the copy).  Any other
  BatchNorm becomes a per-channel affine ``linear`` node, so the rules treat it as
  a linear layer with a diagonal weight (its own rule, the composite's linear rule).
* in-place operations (``ReLU(inplace=True)``, ``F.relu(x, inplace=True)``,
  ``x.relu_()``, ``x += y``) become out-of-place nodes; later readers of the
  mutated tensor read the new node (see :mod:`liecheck.rewrite`);
* ``a - b`` and ``torch.add / sub(a, b, alpha=k)`` become ``a + (-k) * b``;
  multiplication or division by a constant number (``3 * x``, ``x / 2``, ``-x``) is
  a linear node (a diagonal ``affine`` layer with one shared scale);
* models with forward hooks or pre-hooks, and ``F.dropout`` with ``training=True``,
  are refused;
* every tensor operation is one :class:`Node` with a stable name in execution
  order (the torch.fx node name, e.g. ``layer1_0_relu_1``); a module called twice
  is two nodes.

Unsupported operations fail here, at trace time, with :class:`UnsupportedOperation`
naming the node and the operation. On the first batch it runs, the graph checks its
output against the model's own forward (:mod:`liecheck.equivalence`).
"""

from __future__ import annotations

import copy
import math
import operator
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from . import equivalence, rewrite
from .ops import AdaptiveAvgPoolOp, AffineOp, AvgPoolOp, ConvOp, DenseOp, LinearOp
from .rewrite import UnsupportedOperation
from .rewrite import is_shape_query as _is_shape_query

# node kinds -------------------------------------------------------------------
INPUT, LINEAR, RELU, MAXPOOL, ADD, CAT, RESHAPE, IDENTITY, META = (
    "input", "linear", "relu", "maxpool", "add", "cat", "reshape", "identity", "meta")


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
_META_METHODS = rewrite.SHAPE_METHODS
_DROPOUT_FUNCS = {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, torch.dropout}
_IDENTITY_FUNCS = _DROPOUT_FUNCS | {torch.clone}
_IDENTITY_METHODS = {"contiguous", "clone", "detach"}
_RESHAPE_METHODS = {"view", "reshape", "flatten"}
_RELU_METHODS = {"relu", "relu_"}
_ADD_METHODS = {"add", "add_", "__add__", "__iadd__"}
_IDENTITY_MODULES = (nn.Dropout, nn.Dropout2d, nn.Identity)
# multiplication / division by a constant number: a linear node
_MUL_FUNCS = {operator.mul, torch.mul, torch.multiply}
_DIV_FUNCS = {operator.truediv, torch.div, torch.divide, torch.true_divide}
_NEG_FUNCS = {operator.neg, torch.neg, torch.negative}
_MUL_METHODS = {"mul", "multiply", "__mul__", "__rmul__"}
_DIV_METHODS = {"div", "divide", "true_divide", "__truediv__"}
_NEG_METHODS = {"neg", "negative", "__neg__"}

_HOW_TO = ("If it computes exactly an identity, a ReLU (max(0, x)) or a reshape, declare it "
           "with liecheck.register_op(<module type or function>, kind=...) (checked on a "
           "probe input); anything else has no exact rule: rewrite the model with supported "
           "operations (see liecheck.graph.SUPPORTED).")

SUPPORTED = ("Conv2d, Linear, ReLU (module, F.relu, torch.relu, in-place), MaxPool2d, AvgPool2d, "
             "AdaptiveAvgPool2d, BatchNorm1d/2d, Flatten / torch.flatten / view / reshape, "
             "Dropout and Identity (eval), residual + / += / torch.add, - / torch.sub (alpha "
             "allowed), multiplication or division by a constant number, torch.cat")

# user registrations: module type or function -> kind ("identity", "relu", "reshape")
_REGISTERED: dict[Any, str] = {}

_PROBE_SHAPES = ((2, 3, 8, 8), (2, 16))


def register_op(target: Any, kind: str) -> None:
    """Declare how an otherwise unsupported module type or function behaves.

    ``kind`` is one of ``"identity"`` (relevance passes unchanged; the op returns
    its input), ``"relu"`` (the op is ``max(0, x)``; rules see it as a ReLU) or
    ``"reshape"`` (a pure reshape of its first argument).

    The claim is checked: the op runs on a seeded random probe input (``(2, 3, 8, 8)``,
    or ``(2, 16)`` if that fails, values up to about +-30) and must match the claimed
    kind, else ``ValueError`` (e.g. ``nn.ReLU6`` or ``nn.LeakyReLU`` are not ``"relu"``).
    ``target`` is a module type (constructed without arguments for the probe), a
    module instance (its type is registered) or a function.
    """
    if kind not in (IDENTITY, RELU, RESHAPE):
        raise ValueError(f"kind must be 'identity', 'relu' or 'reshape', not {kind!r}")
    if isinstance(target, nn.Module):  # probe a copy: the user's instance keeps its state
        fn, key = copy.deepcopy(target).eval(), type(target)
    elif isinstance(target, type) and issubclass(target, nn.Module):
        try:
            fn = target()
        except Exception as exc:
            raise TypeError(
                f"register_op: cannot construct {target.__name__}() without arguments to "
                f"check it on a probe input ({exc}); pass an instance instead: "
                f"register_op({target.__name__}(...), {kind!r})") from exc
        key = target
    elif callable(target):
        fn, key = target, target
    else:
        raise TypeError(f"register_op: target must be a module type, a module instance or a "
                        f"function, not {type(target).__name__}")
    _check_claim(fn, kind, getattr(key, "__name__", repr(key)))
    _REGISTERED[key] = kind


def _check_claim(fn: Callable, kind: str, name: str) -> None:
    """Raise ValueError unless ``fn`` computes ``kind`` on a probe input."""
    gen = torch.Generator().manual_seed(0)
    errors = []
    for shape in _PROBE_SHAPES:
        x = 10 * torch.randn(shape, generator=gen)
        try:
            with torch.no_grad():
                y = fn(x.clone())
        except Exception as exc:  # wrong rank for this op: try the next probe
            errors.append(f"{tuple(shape)}: {exc}")
            continue
        if not isinstance(y, torch.Tensor):
            raise ValueError(f"register_op: {name} returned {type(y).__name__}, not a tensor")
        if kind == RESHAPE:
            ok = y.numel() == x.numel() and torch.equal(y.reshape(-1), x.reshape(-1))
        else:
            expected = torch.relu(x) if kind == RELU else x
            ok = y.shape == x.shape and torch.allclose(y, expected, rtol=1e-6, atol=1e-6)
        if not ok:
            what = {RELU: "max(0, x)", IDENTITY: "its input unchanged",
                    RESHAPE: "its input's values in the same order (a pure reshape)"}[kind]
            raise ValueError(
                f"register_op: {name} is not kind {kind!r}: on a random probe input of shape "
                f"{tuple(shape)} it does not return {what}. Registering it would give wrong "
                f"explanations; liecheck has no rule for it (see liecheck.graph.SUPPORTED).")
        return
    raise ValueError(f"register_op: could not run {name} on a probe input to check it ("
                     + "; ".join(errors) + ")")


class Graph:
    """A traced, canonicalised copy of a model.

    Parameters
    ----------
    model : the user's ``nn.Module``; it is deep-copied and never modified.
    check_forward : compare the first batch's output with the model's own eval-mode
        forward and raise :class:`~liecheck.equivalence.ForwardMismatch` on a
        difference (see :mod:`liecheck.equivalence`). Opt out only if you must.
    """

    def __init__(self, model: nn.Module, check_forward: bool = True):
        rewrite.refuse_hooks(model)
        self.was_training = model.training
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.check_forward = check_forward
        self.checked = False  # set once a batch passed the forward check
        self.dtype = next((t.dtype for t in [*self.module.parameters(), *self.module.buffers()]
                           if t.is_floating_point()), torch.get_default_dtype())
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
        """In-place ops out-of-place (aliasing kept), subtraction / alpha as scaled adds."""
        graph = self.gm.graph
        # module names whose `inplace` flag was cleared: the forward check restores them
        self.inplace_modules = rewrite.remove_inplace(graph, self.module, _REGISTERED)
        rewrite.expand_subtraction(graph, rewrite.tensor_nodes(graph).__contains__)
        self.gm.recompile()

    def _build(self) -> None:
        modules = dict(self.module.named_modules())
        tensor_nodes: set[str] = set()
        output_node = None
        for fxn in self.gm.graph.nodes:
            if fxn.op == "output":
                output_node = fxn
                continue
            kind, op, layer, module = self._classify(fxn, modules, tensor_nodes)
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

    def _classify(self, fxn: fx.Node, modules: dict[str, nn.Module], tensor_nodes: set[str]):
        """Map an fx node to (kind, op, layer, module name)."""
        if (fxn.op == "call_function" and getattr(fxn.target, "__module__", "") == "_operator"
                and not any(a.name in tensor_nodes for a in fxn.all_input_nodes)):
            return META, None, None, None  # arithmetic on shape values: x.size(0) + 1
        scale = _scale_factor(fxn, tensor_nodes)
        if scale is not None:  # c * x: a diagonal linear layer with one shared scale
            c = torch.tensor([scale], dtype=self.dtype)
            return LINEAR, AffineOp(c, torch.zeros_like(c)), "affine", None
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
            if t in _DROPOUT_FUNCS:
                _refuse_training_dropout(fxn)
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
                if "alpha" in fxn.kwargs:
                    raise UnsupportedOperation(
                        f"node '{fxn.name}': .{t}() with alpha. {_HOW_TO}")
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
            if (n.kind == LINEAR and n.layer == "affine" and n.inputs
                    and n.fx_node.op == "call_module"):  # a BatchNorm, not c * x
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
                shapes: dict | None = None, indices: dict | None = None, start: int = 0,
                given: dict | None = None) -> dict[str, torch.Tensor]:
        """Run the canonical graph on ``x`` and return the kept node outputs.

        ``keep(node)`` decides which outputs are stored (default: all). The output
        node is always kept. ``shapes`` (if given) receives every node's output shape,
        ``indices`` (if given) every max-pool node's arg-max indices.

        The first batch (while ``check_forward`` and not yet ``checked``) is also run
        through the model's own forward and compared
        (:func:`liecheck.equivalence.check_forward`).

        ``start``: compute only the nodes with index ``>= start``; the earlier nodes'
        outputs that later nodes read are taken from ``given`` (node name -> tensor,
        see :meth:`cut`); ``shapes``, ``indices`` and the result then cover only the
        computed nodes.
        """
        acts = self.run(x, keep, shapes, indices, start, given)
        if self.check_forward and not self.checked and not start:
            equivalence.check_forward(self, x, acts[self.output])
            self.checked = True
        return acts

    def run(self, x: torch.Tensor, keep: Callable[[Node], bool] | None = None,
            shapes: dict | None = None, indices: dict | None = None, start: int = 0,
            given: dict | None = None) -> dict[str, torch.Tensor]:
        """:meth:`forward` without the forward check."""
        env: dict[str, Any] = {}
        acts: dict[str, torch.Tensor] = {}
        for fxn in self.gm.graph.nodes:
            if fxn.op == "output":
                break
            node = self.by_name.get(fxn.name)
            if start and self._below(fxn, start):
                src = self.aliases.get(fxn.name, fxn.name)
                if given is not None and src in given:
                    env[fxn.name] = given[src]
                continue
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


    def cut(self, start: int) -> set[str]:
        """Node outputs below index ``start`` that ``forward(start=start)`` reads."""
        out: set[str] = set()
        for fxn in self.gm.graph.nodes:
            if fxn.op == "output" or self._below(fxn, start):
                continue
            for a in _flat_nodes(fxn.args) + _flat_nodes(fxn.kwargs):
                src = self.by_name.get(self.aliases.get(a.name, a.name))
                if src is not None and src.index < start:
                    out.add(src.name)
        return out

    def _below(self, fxn: fx.Node, start: int) -> bool:
        """Whether an fx node's value comes from a graph node below index ``start``
        (a folded BatchNorm counts as its layer; shape queries are never below)."""
        src = self.by_name.get(self.aliases.get(fxn.name, fxn.name))
        return src is not None and src.index < start


class _InplaceProxy(fx.Proxy):
    """A proxy that records ``x += y`` (and ``-=``, ``*=``, ``/=``) as the in-place
    operator: plain torch.fx records ``operator.add``, and a later reader of ``x``'s
    tensor would then see the value before the write."""

    def _inplace(self, target, name, other):
        return self.tracer.create_proxy("call_function", target, (self, other), {}, name=name)

    def __iadd__(self, other):
        return self._inplace(operator.iadd, "add", other)

    def __isub__(self, other):
        return self._inplace(operator.isub, "sub", other)

    def __imul__(self, other):
        return self._inplace(operator.imul, "mul", other)

    def __itruediv__(self, other):
        return self._inplace(operator.itruediv, "truediv", other)


class _LeafTracer(fx.Tracer):
    """Tracer that keeps torchvision's and users' registered modules as leaves and
    records in-place operators."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if type(m) in _REGISTERED:
            return True
        return super().is_leaf_module(m, qualname)

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _InplaceProxy(node, self)


def _is_registered(fxn: fx.Node, root: nn.Module) -> bool:
    """True if the fx node's module type or function was declared with :func:`register_op`."""
    if fxn.op == "call_module":
        return type(root.get_submodule(fxn.target)) in _REGISTERED
    return fxn.op == "call_function" and fxn.target in _REGISTERED


def _scale_factor(fxn: fx.Node, tensor_nodes: set[str]) -> float | None:
    """``c`` if ``fxn`` computes ``c * x`` (``x * c``, ``c * x``, ``x / d``, ``-x``) for a
    tensor ``x`` and a constant number; None for other nodes and shape arithmetic.
    Raises for products / quotients that are not linear (two tensors, a run-time value)."""
    t, op = fxn.target, fxn.op
    if op == "call_function":
        kind = ("mul" if t in _MUL_FUNCS else "div" if t in _DIV_FUNCS
                else "neg" if t in _NEG_FUNCS else None)
    elif op == "call_method":
        kind = ("mul" if t in _MUL_METHODS else "div" if t in _DIV_METHODS
                else "neg" if t in _NEG_METHODS else None)
    else:
        kind = None
    tensors = [a.name for a in _flat_nodes(fxn.args) + _flat_nodes(fxn.kwargs)
               if a.name in tensor_nodes]
    if kind is None or not tensors:
        return None
    args, kwargs = fxn.args, dict(fxn.kwargs)
    first_is_tensor = isinstance(args[0], fx.Node) and args[0].name in tensor_nodes
    c = None
    if kind == "neg" and len(args) == 1 and not kwargs:
        c = -1.0
    elif kind == "mul" and len(args) == 2 and not kwargs and len(tensors) == 1:
        const = args[1] if first_is_tensor else args[0]
        c = float(const) if rewrite.is_number(const) else None
    elif (kind == "div" and len(args) == 2 and first_is_tensor and len(tensors) == 1
          and kwargs.get("rounding_mode") is None and set(kwargs) <= {"rounding_mode"}
          and rewrite.is_number(args[1]) and args[1] != 0):
        c = 1.0 / args[1]
    if c is None or not math.isfinite(c):
        name = getattr(t, "__name__", t)
        raise UnsupportedOperation(
            f"node '{fxn.name}': {op} '{name}' on the tensor(s) {', '.join(tensors)} has no "
            "rule: only multiplication or true division of one tensor by a finite, nonzero "
            f"constant number is linear. {_HOW_TO}")
    return c


def _refuse_training_dropout(fxn: fx.Node) -> None:
    """Raise for a functional dropout that is active in eval mode (``training=True``)."""
    bound = rewrite.bind(fxn)
    if bound is not None:
        training = bound.arguments.get("training", True)
        p = bound.arguments.get("p", 0.5)
    else:  # torch.dropout(input, p, train)
        training = fxn.args[2] if len(fxn.args) > 2 else fxn.kwargs.get("train", True)
        p = fxn.args[1] if len(fxn.args) > 1 else fxn.kwargs.get("p", 0.5)
    if training is False or p == 0:
        return
    name = getattr(fxn.target, "__name__", fxn.target)
    raise UnsupportedOperation(
        f"node '{fxn.name}': {name}(..., training={training!r}) drops units at random even "
        "when the model is in eval mode (training=True is F.dropout's default), so the model "
        "is random and cannot be explained. Pass training=self.training (then liecheck "
        "explains the eval model, where dropout is the identity), or use nn.Dropout.")


def _flat_nodes(a: Any) -> list[fx.Node]:
    out: list[fx.Node] = []
    fx.node.map_arg(a, lambda n: out.append(n) or n)
    return out


def _maxpool_params(m: nn.MaxPool2d) -> dict:
    if m.return_indices:
        raise UnsupportedOperation("MaxPool2d(return_indices=True) is not supported")
    return {"kernel_size": m.kernel_size, "stride": m.stride, "padding": m.padding,
                "dilation": m.dilation, "ceil_mode": m.ceil_mode}


def trace(model: nn.Module, check_forward: bool = True) -> Graph:
    """Trace ``model`` (never modified) into a canonical :class:`Graph`.

    ``check_forward=False`` skips the comparison of the graph's first batch with the
    model's own forward (see :class:`Graph`).
    """
    if model.training:
        warnings.warn("the model is in train mode; liecheck explains it in eval semantics "
                      "(on a copy; your model is left in train mode)", stacklevel=2)
    return Graph(model, check_forward=check_forward)
