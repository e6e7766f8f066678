"""The paper's experiment settings that depend on the network: CSC's start layers
(Sixt et al. 2020, section 5 and Figure 9) for VGG-16, ResNet-50 and the CIFAR network."""

from __future__ import annotations

from ..engine.graph import Graph
from ..engine.ops import ReLU


def paper_starts(graph: Graph, model_name: str) -> list[str]:
    """The start nodes of the paper's CSC experiments for its networks (node names).

    The paper's Keras layers include their ReLU, so "the output of conv4_3" is the
    ReLU after it. VGG-16 (torchvision): fc3 (logits), fc1, conv4_3, conv3_3, conv2_2;
    CIFAR net: fc6, fc5, conv4, conv3, conv2; ResNet-50: the logits and the outputs of
    the residual stages layer4 ... layer1.
    """
    def after(module: str) -> str:
        node = graph.by_name[graph.resolve(module)]
        nxt = graph.consumers[node.name]
        relu = [c for c in nxt if isinstance(graph.by_name[c].op, ReLU)]
        return relu[0] if relu else node.name

    if model_name == "vgg16":
        return [graph.output] + [after(m) for m in ("classifier.0", "features.21",
                                                    "features.14", "features.7")]
    if model_name == "cifar_net":
        return [graph.output] + [after(m) for m in ("fc5", "conv4", "conv3", "conv2")]
    if model_name == "resnet50":
        out = [graph.output]
        for stage in ("layer4", "layer3", "layer2", "layer1"):
            names = [n.name for n in graph.nodes if (n.module or "").startswith(stage + ".")
                     or n.name.startswith(stage + "_")]
            if names:
                out.append(names[-1])
        return out
    raise ValueError(f"no paper start layers for '{model_name}'; pass start=[...] yourself")


def mid_start(graph: Graph) -> str:
    """A mid-level start for CSC on any network: the middle one of the record points
    (the input and every conv and dense layer's output, or a transformer's residual
    stream; :func:`liecheck.metrics.csc_setup.default_record`), so that half the
    recorded layers lie below it."""
    from ..metrics.csc_setup import default_record

    record = default_record(graph)
    return record[len(record) // 2]
