"""The engine: a model traced into a canonical graph, run forward, walked backward.

* :mod:`.graph`: ``trace(model) -> Graph`` (deep copy, torch.fx, canonical nodes,
  queries); :mod:`.kinds` (node kinds, :class:`~.kinds.Node`); :mod:`.classify` (the
  type -> handler tables that say what each fx node is; ``register_op``);
  :mod:`.rewrite` (in-place -> out-of-place, subtraction -> scaled addition);
  :mod:`.canonical` (BatchNorm folding, sign analysis, consumers, liveness);
  :mod:`.execute` (the forward pass); :mod:`.equivalence` (the forward check);
* :mod:`.ops`: the linear operations (conv, dense, affine, pooling) and their transposes;
* :mod:`.walk`: the reverse walk, rule per node;
* :mod:`.run`: :class:`~.run.MethodRun`, one batch under one method's protocol;
* :mod:`.reforward`: recompute a forward pass above a changed layer (the cascade).

The engine knows nothing of particular methods: a method is its rules and its
protocol (:mod:`liecheck.methods`).
"""
