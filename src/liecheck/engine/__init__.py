"""The engine: a model traced into a canonical graph, run forward, walked backward.

* :mod:`.graph`: ``trace(model) -> Graph`` (deep copy, torch.fx, canonical nodes,
  queries); :mod:`.node` (:class:`~.node.Node`); :mod:`.classify` (the op class of each
  fx node; ``register_op``); :mod:`.fxutil` (``UnsupportedOperation``, fx helpers);
  :mod:`.rewrite` (in-place -> out-of-place, subtraction -> scaled addition);
  :mod:`.canonical` (BatchNorm folding, sign analysis, consumers, liveness);
  :mod:`.execute` (the forward pass); :mod:`.equivalence` (the forward check);
* :mod:`.ops`: the open op model, one class per node type (see its docstring);
* :mod:`.walk`: the reverse walk, rule per node.

The engine knows nothing of methods: no module here imports :mod:`liecheck.methods`
(the method driver, :mod:`liecheck.methods.run` and :mod:`liecheck.methods.reforward`,
lives above it; ``tests/test_import_cycles.py`` checks the layering).
"""
