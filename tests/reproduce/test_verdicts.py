"""The reproduction's verdicts name the mechanism each test shows (issue 24), on the
built-in digits model (trained, cached), as the default run computes them."""

import pytest

from liecheck.report.summary import summary_table
from liecheck.reproduce import run
from liecheck.reproduce.config import ModelPlan, RunConfig, all_experiments, default_config
from liecheck.store import RunStore


@pytest.mark.slow
def test_guided_bp_and_lrp_cmp_get_the_mechanisms_their_tests_show(tmp_path):
    plan = ModelPlan("cifar_net", None, n=8, size=32,
                     methods=("gradient", "guided_bp", "lrp_cmp_a1b0"), starts="paper",
                     experiments=("csc", "random_logit", "sanity"))
    run(RunConfig([plan], theory=False, profile="default"), tmp_path / "run", progress=False,
        report=False)
    store = RunStore(tmp_path / "run")
    s = summary_table({t: store.read(t) for t in store.tables()}).set_index("method")
    # Guided BP keeps its map when the last layer is randomised (the paper's Figure 4b:
    # SSIM about 0.9, far above the gradient's): "ignores later layers", named by the cascade
    gbp = s.loc["guided_bp", "mechanism"]
    assert "ignores later layers (cascade SSIM, last layer random" in gbp
    # LRP-CMP a1b0: z+ below the dense layers converges (Figure 6c), epsilon on the dense
    # layers keeps the class: rank-1 convergence by CSC, yet it passes the random logit
    cmp_ = s.loc["lrp_cmp_a1b0", "mechanism"]
    assert cmp_.startswith("rank-1 convergence (CSC at the first layer")
    assert "class-insensitive" not in cmp_ and "passes random logit" in cmp_
    assert s.loc["gradient", "mechanism"].startswith("reference")


def test_the_ground_truth_test_runs_only_where_named():
    assert "two_digits" not in all_experiments()
    assert all("two_digits" not in p.experiments for p in default_config().models)
