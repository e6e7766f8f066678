"""The battery is a registry (issue 20, item 6): a faithfulness test defined in one place
and registered runs through ``liecheck reproduce``, the report, the CLI and the audit,
with no other file edited, and is gone again once unregistered."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from liecheck import battery
from liecheck.adapters.audit import audit, markdown
from liecheck.battery import FaithfulnessTest, register_test, unregister_test
from liecheck.cli import build_parser, main
from liecheck.models import cifar_net
from liecheck.store import unit_id
from liecheck.units import Unit, chunks


def map_norms(model, x, method, target=None):
    """Per image: the map's L1 norm (a toy test; its value is checked below)."""
    import liecheck

    maps = liecheck.attribute(model, x, method, target=target)
    return pd.DataFrame({"image": range(len(x)), "score": maps.abs().flatten(1).sum(1).tolist()})


class MapNorm(FaithfulnessTest):
    name, keys = "map_norm", ("model", "method", "image")
    heading = "Map norm per image (a test of the registry)"
    command, help = "map-norm", "L1 norm of each map"
    summary_names = {"map_norm": "L1 of the map"}
    audit_columns = {"map_norm": "L1", "verdict_map_norm": "zero map?"}
    verdict_column, failing = "verdict_map_norm", "zero"

    def units(self, s, m, cfg, order):
        def compute(a, b):
            x, t, ids = s.part(a, b)
            return s.tag(map_norms(s.model, x, m, t).assign(image=ids, method=m.name)), {}
        return [Unit(self.name, unit_id(order, "norm", s.plan.name, m.name, c),
                     f"norm {m.name}", lambda a=a, b=b: compute(a, b))
                for c, (a, b) in enumerate(chunks(len(s.images), cfg.chunk_size))]

    def summary(self, df):
        return df.groupby(["model", "method"], sort=False)["score"].median().rename(
            "map_norm").to_frame()

    def aggregates(self, df):
        return [("Map norm: largest per method", df.groupby("method")["score"].max()
                 .reset_index())]

    def audit(self, ex, model, x, m, target, seed, n_vectors):
        v = float(map_norms(model, x, m, target)["score"].median())
        return {"map_norm": v, "verdict_map_norm": "zero" if v == 0 else "nonzero"}


@pytest.fixture
def registered():
    test = register_test(MapNorm())
    yield test
    unregister_test(test.name)
    assert "map_norm" not in [t.name for t in battery.tests()]


def _ckpt(tmp_path):
    path = tmp_path / "net.pt"
    torch.save(cifar_net(seed=5).state_dict(), path)
    return str(path)


def test_reproduce_report_and_cli_run_a_registered_test(registered, tmp_path, capsys):
    from liecheck.reproduce import run
    from liecheck.reproduce.config import ModelPlan, RunConfig, paper_config

    # every plan runs every registered test by default, the paper's profile included
    assert "map_norm" in ModelPlan("cifar_net").experiments
    assert "map_norm" in paper_config(["cifar_net"], {}, 2, None, None, "cpu").models[0].experiments
    out = tmp_path / "run"
    plan = ModelPlan("cifar_net", _ckpt(tmp_path), n=2, size=32,
                     methods=("gradient", "lrp_z"), experiments=("map_norm", "random_logit"))
    store = run(RunConfig([plan], theory=False), out)
    assert set(store.tables()) == {"map_norm", "random_logit"}
    df = store.read("map_norm")
    assert len(df) == 4 and (df["score"] > 0).all()
    html = (out / "report.html").read_text()
    assert "Map norm per image (a test of the registry)" in html      # its table
    assert "L1 of the map" in html                                     # its summary column
    assert "Map norm: largest per method" in html                      # its aggregate
    # the CLI: a subcommand with a plan line, the summary and the CSV
    cli_out = tmp_path / "cli"
    assert "map-norm" in build_parser().format_help()
    capsys.readouterr()
    assert main(["map-norm", "--model", "cifar_net", "--n", "1", "--methods", "gradient",
                 "--out", str(cli_out)]) == 0
    printed = capsys.readouterr().out
    assert "map_norm 1 methods x 1 images" in printed and "L1 of the map" in printed
    assert len(pd.read_csv(cli_out / "map_norm.csv")) == 1


def test_audit_runs_a_registered_test_and_counts_its_failing_verdict(registered):
    model = cifar_net(seed=3).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    df = audit(model, x, ["gradient"], n_vectors=2).set_index("method")
    assert df.loc["gradient", "verdict_map_norm"] == "nonzero"
    assert df.loc["gradient", "map_norm"] == pytest.approx(
        float(map_norms(model, x, "gradient")["score"].median()))
    assert "zero map?" in markdown(df.reset_index())
    # a failing verdict of the registered test makes the paper's verdict "fails"
    registered.failing = "nonzero"
    assert audit(model, x, ["gradient"], n_vectors=2)["paper_verdict"].item() == "fails"


def test_registering_twice_or_a_taken_command_is_refused(registered):
    with pytest.raises(ValueError, match="registered already"):
        register_test(MapNorm())
    other = MapNorm()
    other.name = "other_norm"
    with pytest.raises(ValueError, match="command 'map-norm'"):
        register_test(other)
    with pytest.raises(TypeError, match="FaithfulnessTest"):
        register_test(object())
