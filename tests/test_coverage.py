"""``liecheck.coverage.check`` and ``liecheck check``: which methods run on a model."""

from __future__ import annotations

import torch
from torch import nn

from liecheck import method_names
from liecheck.cli import main
from liecheck.coverage import check


class GeluNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.norm, self.fc2 = nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(6, 3)

    def forward(self, x):
        return self.fc2(torch.nn.functional.gelu(self.norm(self.fc1(x))))


def test_check_names_what_runs_and_why_not():
    cov = check(GeluNorm())
    runs = dict(zip(cov.methods.method, cov.methods.runs))
    why = dict(zip(cov.methods.method, cov.methods.why_not))
    assert runs["gradient"] and runs["lrp_epsilon"] and runs["smoothgrad"]
    assert not runs["guided_bp"] and "GELU" in why["guided_bp"] and "'gelu'" in why["guided_bp"]
    assert not runs["deeplift_rescale"] and "LayerNorm" in why["deeplift_rescale"]
    ops = cov.ops.set_index("op")
    assert ops.loc["LayerNorm", "lrp_epsilon"] == "NormIdentity"
    assert ops.loc["GELU", "gradient"] == "GradientPointwise"
    assert ops.loc["GELU", "guided_bp"] == "refused"
    assert ops.loc["DenseOp", "count"] == 2


def test_cli_check_torchvision_name_checkpoint_and_object(tmp_path, capsys):
    import torchvision

    ckpt = tmp_path / "m.pt"
    torch.save(torchvision.models.squeezenet1_1().state_dict(), ckpt)
    assert main(["check", "squeezenet1_1", "--weights", str(ckpt)]) == 0
    out = capsys.readouterr().out
    n = len(method_names())  # other tests may have registered methods in this process
    assert f"{n} of {n} methods run" in out and "MaxPool" in out
    assert main(["check", "tests.test_coverage:GeluNorm"]) == 0
    assert "guided_bp: node 'gelu'" in capsys.readouterr().out
    assert main(["check", "Squeezenet1_1"]) == 2
    assert "Did you mean squeezenet1_1" in capsys.readouterr().err
