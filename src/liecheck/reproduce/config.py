"""What a ``liecheck reproduce`` run computes: models, images, methods, sizes.

Two profiles:

* the **default** (no arguments): the built-in digits model (the paper's CIFAR
  network trained on scikit-learn's digits) with every experiment, plus VGG-16 with
  a seeded *random* initialisation for CSC only, at a reduced input size (a few
  minutes on 2 CPU cores; the README gives the times). The untrained VGG-16 tests
  the rules, not a trained model;
* the **paper** profile (``--model vgg16|resnet50|all`` or ``--n``...): 200 images,
  the paper's start layers, 224x224 inputs, every applicable method.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..battery import tests
from .paper import mid_start, paper_starts

# the paper's methods in the order of its figures (those registered are used)
PAPER_METHODS = (
    "gradient", "lrp_z", "lrp_a1b0", "lrp_a2b1", "lrp_a5b4", "lrp_cmp_a1b0", "lrp_cmp_a2b1",
    "dtd", "excitation_bp", "contrastive_ebp", "contrastive_lrp", "patternnet",
    "patternattribution", "deeplift_rescale", "deeplift_revealcancel", "deeplift_ablation",
    "deconv", "guided_bp", "rectgrad", "smoothgrad",
)
# the default run's methods: the converging z+ family, the non-converging controls,
# one CMP and one gradient-type modified BP (a few minutes on 2 CPU cores)
DEFAULT_METHODS = ("gradient", "lrp_z", "lrp_a1b0", "lrp_a5b4", "lrp_cmp_a1b0",
                   "excitation_bp", "patternattribution", "deeplift_rescale", "guided_bp")
DEFAULT_VGG_METHODS = ("gradient", "lrp_z", "lrp_a1b0", "guided_bp")
# a plan's experiments: by default every registered test of the battery (the paper's
# csc, random_logit, sanity and insensitivity, and any test of yours: liecheck.battery)
def all_experiments() -> tuple[str, ...]:
    """Every test of the battery that runs everywhere, in registration order."""
    return tuple(t.name for t in tests() if t.everywhere)
# the ground-truth benchmark in the default run (liecheck.groundtruth): a few seconds
# once its model is cached; the references are model-agnostic, occlusion is the faithful one
DEFAULT_GROUNDTRUTH = {"n": 20, "methods": ["gradient", "lrp_z", "lrp_a1b0", "excitation_bp",
                                            "deeplift_rescale", "guided_bp", "occlusion",
                                            "random"]}


@dataclass
class ModelPlan:
    """One model of a run."""

    name: str                       # cifar_net | vgg16 | resnet50
    weights: str | None = None      # None: built-in (cifar_net) / seeded random (others)
    n: int = 200
    size: int = 224                 # input side for ImageNet models
    methods: tuple[str, ...] = PAPER_METHODS
    starts: str = "paper"           # "paper" (reproduce.paper), "logits", "logits+mid"
    #                                 (the logits and reproduce.paper.mid_start), "node,..."
    experiments: tuple[str, ...] = field(default_factory=all_experiments)
    note: str = ""
    similarity: str = "ssim"        # random logit and sanity: ssim | spearman | l1
    mode: str = "cascading"         # sanity: cascading | independent
    cascade: str = "all"            # sanity's reported steps: "all" | "ends" (last, all)

    def start_nodes(self, graph) -> list[str]:
        """CSC's start layers on ``graph``: the paper's, the logits, or the listed nodes
        or modules (either spelling, ``features_0`` or ``features.0``)."""
        if self.starts == "paper":
            return paper_starts(graph, self.name)
        if self.starts == "logits+mid":
            return [graph.output, mid_start(graph)]
        if self.starts in ("logits", "output"):
            return [graph.output]
        return [s.strip() for s in self.starts.split(",") if s.strip()]

    @property
    def n_starts(self) -> int:
        """How many start layers :meth:`start_nodes` gives (for the cost estimate)."""
        if self.starts == "paper":
            return 5
        if self.starts == "logits+mid":
            return 2
        return 1 if self.starts in ("logits", "output") else len(self.starts.split(","))


@dataclass
class RunConfig:
    """Everything that determines a run's results (stored as its settings)."""

    models: list[ModelPlan]
    images: str | None = None       # image folder for the ImageNet models
    device: str = "cpu"
    seed: int = 0
    n_vectors: int = 5
    simulation_repeats: int = 20
    theory: bool = True
    profile: str = "paper"
    chunk_size: int = 16            # images per unit of work (resume / sharing granularity)
    extra: dict = field(default_factory=dict)

    def settings(self) -> dict:
        d = asdict(self)
        d.pop("device")             # the device does not change what is computed
        return d


def default_config(device: str = "cpu") -> RunConfig:
    """The no-argument run (sizes chosen for a few minutes on 2 CPU cores)."""
    digits = ModelPlan("cifar_net", None, n=8, size=32, methods=DEFAULT_METHODS,
                       starts="paper", note="trained on scikit-learn digits (built-in)")
    vgg = ModelPlan("vgg16", None, n=2, size=64, methods=DEFAULT_VGG_METHODS, starts="logits",
                    experiments=("csc",),
                    note="seeded RANDOM initialisation, 64x64 inputs: these CSC results test "
                         "the rules on VGG-16's architecture, not a trained model")
    return RunConfig([digits, vgg], device=device, simulation_repeats=5, profile="default",
                     extra={"groundtruth": dict(DEFAULT_GROUNDTRUTH)})


def paper_config(models: list[str], weights: dict[str, str | None], n: int,
                 methods: list[str] | None, images: str | None, device: str,
                 seed: int = 0) -> RunConfig:
    """The paper's protocol for the named models (``cifar_net``, ``vgg16``, ``resnet50``)."""
    plans = []
    for name in models:
        w = weights.get(name)
        size = 32 if name == "cifar_net" else 224
        exps = all_experiments()
        note = ""
        if name != "cifar_net" and w is None:
            exps = ("csc",)
            note = ("seeded RANDOM initialisation (no --weights): CSC only; these results test "
                    "the rules, not a trained model")
        elif name == "cifar_net" and w is None:
            note = "trained on scikit-learn digits (built-in)"
        plans.append(ModelPlan(name, w, n=n, size=size,
                               methods=tuple(methods) if methods else PAPER_METHODS,
                               experiments=exps, note=note))
    return RunConfig(plans, images=images, device=device, seed=seed)
