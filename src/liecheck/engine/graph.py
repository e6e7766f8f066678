"""Trace a model into a canonical graph that the reverse walk can visit.

``trace(model)`` deep-copies the model, runs ``torch.fx.symbolic_trace`` on the
copy and canonicalises it:

* BatchNorm that directly follows a conv / linear layer whose output it alone
  consumes is folded into that layer's weights and bias (on the copy).  Any other
  BatchNorm becomes a per-channel affine ``linear`` node, so the rules treat it as
  a linear layer with a diagonal weight (its own rule, the composite's linear rule).
* in-place operations (``ReLU(inplace=True)``, ``F.relu(x, inplace=True)``,
  ``x.relu_()``, ``x += y``) become out-of-place nodes; later readers of the
  mutated tensor read the new node (see :mod:`liecheck.engine.rewrite`);
* ``a - b`` and ``torch.add / sub(a, b, alpha=k)`` become ``a + (-k) * b``;
  multiplication or division by a constant number (``3 * x``, ``x / 2``, ``-x``) is
  a linear node (a diagonal ``affine`` layer with one shared scale);
* models with forward hooks or pre-hooks, and ``F.dropout`` with ``training=True``,
  are refused;
* every tensor operation is one :class:`Node` with a stable name in execution
  order (the torch.fx node name, e.g. ``layer1_0_relu_1``); a module called twice
  is two nodes.

Unsupported operations fail here, at trace time, with :class:`UnsupportedOperation`
naming the node and the operation (what each node is: :mod:`.classify`). On the
first batch it runs, the graph checks its output against the model's own forward
(:mod:`.equivalence`). The passes are :mod:`.rewrite` (out-of-place, subtraction),
:mod:`.canonical` (BatchNorm folding, sign analysis, liveness); running the graph is
:mod:`.execute`.
"""

from __future__ import annotations

import copy
import operator
import warnings
from collections.abc import Callable

import torch
from torch import fx, nn

from . import attention, canonical, equivalence, execute, ops, rewrite
from .classify import CLAIMS, HOW_TO, classify, register_op, view_claims  # noqa: F401  (register_op: public name of this module)
from .fxutil import UnsupportedOperation, flat_nodes
from .node import Node


class Graph:
    """A traced, canonicalised copy of a model.

    Parameters
    ----------
    model : the user's ``nn.Module``; it is deep-copied and never modified.
    check_forward : compare the first batch's output with the model's own eval-mode
        forward and raise :class:`~liecheck.engine.equivalence.ForwardMismatch` on a
        difference (see :mod:`liecheck.engine.equivalence`). Opt out only if you must.

    Attributes
    ----------
    module : the deep copy (eval mode, parameters without gradients).
    gm : its torch.fx graph module (in-place operations made out-of-place).
    nodes, by_name : the canonical nodes in execution order, and by name.
    input, output : the input and output node names.
    aliases : folded BatchNorm name -> the node of the layer it was folded into.
    consumers : node name -> the nodes that read it.
    inplace_modules : modules whose ``inplace`` flag the rewrite cleared.
    last_use : fx node name -> fx values that can be freed after it ran.
    """

    def __init__(self, model: nn.Module, check_forward: bool = True):
        rewrite.refuse_hooks(model)
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.check_forward = check_forward
        self.checked = False  # set once a batch passed the forward check
        self.dtype = next((t.dtype for t in [*self.module.parameters(), *self.module.buffers()]
                           if t.is_floating_point()), torch.get_default_dtype())
        try:
            graph = LeafTracer().trace(self.module)
        except Exception as exc:  # torch.fx cannot trace data-dependent control flow
            raise UnsupportedOperation(
                f"torch.fx could not trace {type(model).__name__}: {exc}. liecheck needs a "
                "model without data-dependent Python control flow.") from exc
        self.gm = fx.GraphModule(self.module, graph)
        attention.decompose(self.gm)  # nn.MultiheadAttention into its parts
        # module names whose `inplace` flag was cleared: the forward check restores them
        fxg = self.gm.graph
        self.inplace_modules = rewrite.remove_inplace(fxg, self.module, view_claims())
        rewrite.expand_subtraction(fxg, rewrite.tensor_nodes(fxg).__contains__)
        self.gm.recompile()
        nodes, output = self._build()
        self.nodes, self.output, self.aliases = canonical.fold_batchnorm(nodes, output)
        self.input = self.nodes[0].name
        self.by_name = {n.name: n for n in self.nodes}
        canonical.mark_nonneg(self.nodes)
        self.consumers = canonical.consumers(self.nodes)
        self.last_use = canonical.last_uses(self.gm.graph, self.aliases, self.nodes)

    def _build(self) -> tuple[list[Node], str]:
        """One :class:`Node` per tensor operation of the fx graph, and the output's name."""
        info = ops.TraceInfo(self.dtype, set(), {}, dict(self.module.named_modules()), set())
        nodes: list[Node] = []
        output_node = None
        for fxn in self.gm.graph.nodes:
            if fxn.op == "output":
                output_node = fxn
                continue
            if fxn.op == "get_attr":
                nodes.append(self._constant(fxn, info, len(nodes)))
                continue
            derived = self._derived(fxn, info)
            if derived is not None:
                nodes.append(Node(name=fxn.name, op=derived, inputs=[], index=len(nodes),
                                  fx_node=fxn))
                continue
            op = classify(fxn, info, not nodes)
            if op is None:  # a shape computation, or chunk / split's tuple
                continue
            tensor_ins = [a.name for a in flat_nodes(fxn.args) + flat_nodes(fxn.kwargs)
                          if a.name in info.tensors]
            if isinstance(op, ops.Select) and op.how in ("chunk", "split"):
                tensor_ins = [fxn.args[0].args[0].name]  # the tensor that was split
            if op.routes is not None:  # the first `routes` activations (not constants)
                tensor_ins = [i for i in tensor_ins if i not in info.constants][:op.routes]
            inputs = tensor_ins
            if all(i in info.constants for i in inputs) and inputs:
                raise UnsupportedOperation(
                    f"node '{fxn.name}' computes on constants only ({', '.join(inputs)}); "
                    f"fold it into a parameter. {HOW_TO}")
            masks = [i for k, i in enumerate(inputs) if i in info.masks
                     and not (isinstance(op, ops.Where) and k == 0)]
            if masks:
                raise UnsupportedOperation(
                    f"node '{fxn.name}' ({op.describe()}) reads the comparison "
                    f"'{masks[0]}'; a comparison is supported only as the condition of "
                    "torch.where (write x * (x > 0) as torch.where(x > 0, x, 0))")
            if isinstance(op, ops.Mask):
                info.masks.add(fxn.name)
            module = fxn.target if fxn.op == "call_module" else None
            nodes.append(Node(name=fxn.name, op=op, inputs=inputs, module=module,
                              index=len(nodes), fx_node=fxn,
                              constant_inputs=tuple(i in info.constants for i in inputs)))
            info.tensors.add(fxn.name)
        outs = flat_nodes(output_node.args)
        if len(outs) != 1 or outs[0].name not in info.tensors:
            raise UnsupportedOperation("the model must return a single tensor (the logits)")
        return nodes, outs[0].name

    @staticmethod
    def _derived(fxn: fx.Node, info: ops.TraceInfo) -> ops.DerivedConstant | None:
        """A :class:`~liecheck.engine.ops.DerivedConstant` for a call whose tensor
        arguments are all constants (its value at trace time where every argument is
        known then), else None."""
        if fxn.op not in ("call_function", "call_method") or rewrite.is_shape_query(fxn):
            return None
        ins = [a for a in fxn.all_input_nodes if a.name in info.tensors]
        if not ins or any(a.name not in info.constants for a in ins):
            return None
        if fxn.target in ops.SPLITTERS:
            raise UnsupportedOperation(f"node '{fxn.name}' splits a constant; index the "
                                       "parameter instead (p[:k]). " + HOW_TO)
        value = None
        if all(a.name in info.constants for a in fxn.all_input_nodes):
            args, kwargs = fx.node.map_arg((fxn.args, fxn.kwargs),
                                           lambda a: info.constants[a.name])
            with torch.no_grad():
                value = (fxn.target(*args, **kwargs) if fxn.op == "call_function"
                         else getattr(args[0], fxn.target)(*args[1:], **kwargs))
        if value is not None and not isinstance(value, torch.Tensor):
            return None
        info.tensors.add(fxn.name)
        info.constants[fxn.name] = value
        return ops.DerivedConstant(value)

    def _constant(self, fxn: fx.Node, info: ops.TraceInfo, index: int) -> Node:
        """A ``get_attr`` node: a parameter or buffer read directly, a constant."""
        value = self.gm
        for part in fxn.target.split("."):
            value = getattr(value, part)
        if not isinstance(value, torch.Tensor):
            raise UnsupportedOperation(f"node '{fxn.name}' reads '{fxn.target}', which is "
                                       f"a {type(value).__name__}, not a tensor")
        info.tensors.add(fxn.name)
        info.constants[fxn.name] = value
        return Node(name=fxn.name, op=ops.Constant(value), inputs=[], index=index,
                    fx_node=fxn)

    @property
    def _last_use(self) -> dict[str, list[str]]:  # the name the tests read
        return self.last_use

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
        return [n for n in self.nodes if n.is_linear and n.layer in layers]

    def first(self, layer: str) -> Node | None:
        ls = self.linear_nodes((layer,))
        return ls[0] if ls else None

    def last(self, layer: str) -> Node | None:
        ls = self.linear_nodes((layer,))
        return ls[-1] if ls else None

    def to(self, device: torch.device | str) -> Graph:
        for n in self.nodes:
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
        (:func:`liecheck.engine.equivalence.check_forward`).

        ``start``: compute only the nodes with index ``>= start``; the earlier nodes'
        outputs that later nodes read are taken from ``given`` (node name -> tensor,
        see :meth:`cut`); ``shapes``, ``indices`` and the result then cover only the
        computed nodes.
        """
        acts = execute.run(self, x, keep, shapes, indices, start, given)
        if self.check_forward and not self.checked and not start:
            equivalence.check_forward(self, x, acts[self.output])
            self.checked = True
        return acts

    def run(self, x: torch.Tensor, keep: Callable[[Node], bool] | None = None,
            shapes: dict | None = None, indices: dict | None = None, start: int = 0,
            given: dict | None = None) -> dict[str, torch.Tensor]:
        """:meth:`forward` without the forward check."""
        return execute.run(self, x, keep, shapes, indices, start, given)

    def cut(self, start: int) -> set[str]:
        """Node outputs below index ``start`` that ``forward(start=start)`` reads."""
        return execute.cut(self, start)


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


class LeafTracer(fx.Tracer):
    """Tracer that keeps torchvision's and users' registered modules as leaves and
    records in-place operators."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if type(m) in CLAIMS or any(isinstance(m, c.modules) for c in ops.USER_OPS
                                    if c.modules):
            return True
        return super().is_leaf_module(m, qualname)

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _InplaceProxy(node, self)


def trace(model: nn.Module, check_forward: bool = True) -> Graph:
    """Trace ``model`` (never modified) into a canonical :class:`Graph`.

    ``check_forward=False`` skips the comparison of the graph's first batch with the
    model's own forward (see :class:`Graph`).
    """
    if model.training:
        warnings.warn("the model is in train mode; liecheck explains it in eval semantics "
                      "(on a copy; your model is left in train mode)", stacklevel=2)
    return Graph(model, check_forward=check_forward)
