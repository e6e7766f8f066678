"""Input validation at the API boundary (issue 15, item 3): every entry point refuses,
with one sentence and before any work, a batch, a model output, a target or a keyword
it does not understand exactly; and there is one target resolver."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import liecheck
from liecheck.methods import Method, lrp_composite, register_method
from liecheck.rules import lrp as rl


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 5)).eval()


def _x(n: int = 2, c: int = 3, size: int = 8) -> torch.Tensor:
    return torch.randn(n, c, size, size, generator=torch.Generator().manual_seed(1))


# every entry point that takes a batch, as f(model, x, method, target)
ENTRIES = {
    "attribute": lambda m, x, meth, t=None: liecheck.attribute(m, x, meth, target=t),
    "Attribution": lambda m, x, meth, t=None: liecheck.Attribution(m, meth).attribute(x, t),
    "Explainer": lambda m, x, meth, t=None: liecheck.Explainer(m).attribute(x, meth, t),
    "csc": lambda m, x, meth, t=None: liecheck.csc(m, x, meth, n_vectors=2),
    "sanity": lambda m, x, meth, t=None: liecheck.sanity(m, x, meth, target=t, layers=1),
    "random_logit": lambda m, x, meth, t=None: liecheck.random_logit(m, x, meth, target=t),
}


# ---------------------------------------------------------------- the input batch
BAD_INPUTS = {
    "channels": (lambda: _x(c=4), ValueError, "takes 3 input channels, the inputs have 4"),
    "rank 3": (lambda: _x()[0], ValueError, r"\(N, C, H, W\).*unsqueeze"),
    "rank 5": (lambda: _x()[None], ValueError, r"\(N, C, H, W\)"),
    "integer": (lambda: _x().long(), TypeError, "floating point, not torch.int64"),
    "float64": (lambda: _x().double(), ValueError, "float64 but .*float32 weights"),
    "float16": (lambda: _x().half(), ValueError, "float16 but .*float32 weights"),
    "empty": (lambda: _x()[:0], ValueError, "batch is empty"),
}


@pytest.mark.parametrize("entry", list(ENTRIES))
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_batch_is_refused_at_every_entry(entry, case):
    make, exc, match = BAD_INPUTS[case]
    with pytest.raises(exc, match=match):
        ENTRIES[entry](net(), make(), "gradient")


@pytest.mark.parametrize("method", ["gradient", "guided_bp", "deconv", "smoothgrad",
                                    "lrp_epsilon", "deeplift_rescale"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_is_refused(method, bad):
    x = _x()
    x[1, 2, 3, 4] = bad
    with pytest.raises(ValueError, match=r"sample 1\); liecheck explains finite inputs only"):
        liecheck.attribute(net(), x, method)


def test_empty_batch_deeplift():
    with pytest.raises(ValueError, match="batch is empty"):
        liecheck.attribute(net(), _x()[:0], "deeplift_rescale")


def test_dense_first_layer_counts_features():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4), nn.ReLU(), nn.Linear(4, 3))
    r = liecheck.attribute(mlp.eval(), _x(), "gradient")
    assert r.shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match="takes 192 features per sample, the inputs have 48"):
        liecheck.attribute(mlp.eval(), _x(size=4), "gradient")
    dense = nn.Sequential(nn.Linear(6, 3)).eval()
    with pytest.raises(ValueError, match=r"\(N, features\)"):
        liecheck.attribute(dense, torch.randn(2, 1, 6), "gradient")


def test_checks_do_not_refuse_what_works():
    """A grouped first conv, a BatchNorm before it, and a ReLU in between are fine."""
    model = nn.Sequential(nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 6, 3, groups=2),
                          nn.Flatten(), nn.Linear(6 * 6 * 6, 3)).eval()
    x = _x(c=4)
    ref = x.clone().requires_grad_(True)
    model(ref)[:, 1].sum().backward()
    torch.testing.assert_close(liecheck.attribute(model, x, "gradient", target=1), ref.grad)


# ---------------------------------------------------------------- the model's output
class Flat(nn.Module):  # 1-D output
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3)

    def forward(self, x):
        return self.conv(x).flatten()


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e != "csc"])  # csc injects
@pytest.mark.parametrize("model", [Flat, lambda: nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU())],
                         ids=["1-D", "4-D"])
def test_output_that_is_not_logits_is_refused(entry, model):
    with pytest.raises(ValueError, match=r"output for a batch of 1 has shape .* \(N, classes\)"):
        ENTRIES[entry](model().eval(), _x(), "gradient")


# ---------------------------------------------------------------- targets
@pytest.mark.parametrize("entry", ["attribute", "Attribution", "Explainer", "sanity",
                                   "random_logit"])
@pytest.mark.parametrize("target", [1.7, 2.0, [0.0, 1.0], np.array([1.5, 0.5]),
                                    torch.tensor([1.0, 2.0]), "cat", ["a", "b"], True])
def test_non_integer_target_is_refused(entry, target):
    with pytest.raises(ValueError, match="target must hold integer class indices"):
        ENTRIES[entry](net(), _x(), "gradient", target)


@pytest.mark.parametrize("entry", ["attribute", "sanity", "random_logit"])
@pytest.mark.parametrize("target", [5, -1, [0, 9]])
def test_out_of_range_target_is_refused(entry, target):
    with pytest.raises(ValueError, match="out of range: the model has 5 classes"):
        ENTRIES[entry](net(), _x(), "gradient", target)


@pytest.mark.parametrize("method", ["smoothgrad", "integrated_gradients", "gradcam",
                                    "contrastive_lrp"])
def test_non_walk_methods_check_targets_too(method):
    with pytest.raises(ValueError, match="out of range"):
        liecheck.attribute(net(), _x(), method, target=7)
    with pytest.raises(ValueError, match="integer class indices"):
        liecheck.attribute(net(), _x(), method, target=1.5)


def test_resolver_broadcasts_and_predicts():
    from liecheck.inputs import resolve_targets

    t = resolve_targets(np.int64(3), 4, 5)
    assert t.dtype == torch.int64 and t.tolist() == [3, 3, 3, 3]
    assert resolve_targets([1, 2], 2, 5).tolist() == [1, 2]
    assert resolve_targets(torch.tensor([4, 0], dtype=torch.int32), 2, 5).dtype == torch.int64
    assert resolve_targets(None, 2, 5, lambda: torch.tensor([2, 1])).tolist() == [2, 1]
    with pytest.raises(ValueError, match="3 entries for a batch of 2"):
        resolve_targets([1, 2, 3], 2, 5)


def test_sanity_and_random_logit_use_the_given_integer_target():
    """An integer target equals its one-element list (no truncation of anything)."""
    model, x = net(), _x()
    a = liecheck.random_logit(model, x, "gradient", target=2)
    assert a["target"].tolist() == [2, 2]
    s = liecheck.sanity(model, x, "gradient", target=[2, 3], layers=1)
    assert sorted(set(s["target"])) == [2, 3]


# ---------------------------------------------------------------- keywords
@pytest.mark.parametrize("call", [
    lambda: liecheck.attribute(net(), _x(), "lrp_epsilon", bogus_param=3),
    lambda: liecheck.Attribution(net(), "lrp_epsilon", bogus_param=3),
    lambda: liecheck.Attribution(net(), "lrp_epsilon").attribute(_x(), bogus_param=3),
    lambda: liecheck.Explainer(net()).attribute(_x(), "lrp_epsilon", bogus_param=3),
    lambda: liecheck.Explainer(net()).walk(_x(), "lrp_epsilon", bogus_param=3),
    lambda: liecheck.get_method("lrp_epsilon").with_params(bogus_param=3),
])
def test_unknown_keyword_is_refused_with_the_valid_ones(call):
    with pytest.raises(TypeError, match="'lrp_epsilon' has no parameter 'bogus_param'; its "
                                        "parameters are: add_eps, epsilon"):
        call()


def test_every_registered_keyword_is_accepted():
    """The declared parameters are the ones the methods read (a default passes through)."""
    model, x = net(), _x()
    for name in ["lrp_z", "lrp_epsilon", "dtd", "excitation_bp", "integrated_gradients",
                 "contrastive_lrp", "deeplift_rescale", "gradcam"]:
        m = liecheck.get_method(name)
        a = liecheck.attribute(model, x, m, target=1)
        b = liecheck.attribute(model, x, m, target=1, **m.params)
        assert torch.equal(a, b), name
    with pytest.raises(TypeError, match="its parameters are: none"):
        liecheck.attribute(model, x, "gradient", epsilon=1.0)


def test_add_eps_reaches_the_contrastive_walk():
    """A declared keyword is used, not silently dropped (CLRP's walk gets it)."""
    torch.manual_seed(0)

    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 3, 3, padding=1)
            self.fc = nn.Linear(3 * 64, 4)

        def forward(self, x):
            return self.fc(torch.flatten(self.b(torch.relu(self.a(x))) + x, 1))

    model, x = Res().eval(), _x()
    a = liecheck.attribute(model, x, "contrastive_lrp", target=1)
    b = liecheck.attribute(model, x, "contrastive_lrp", target=1, add_eps=1.0)
    assert not torch.equal(a, b)


# ---------------------------------------------------------------- the registry
def test_register_method_never_replaces_silently():
    m = Method("test_inputs_zplus", "z+", "test", lrp_composite(lambda n, g, p: rl.ZPlus()))
    register_method(m)
    register_method(m)  # the very same object again: nothing changes
    other = Method("test_inputs_zplus", "z+ 2", "test", lrp_composite(lambda n, g, p: rl.ZPlus()))
    with pytest.raises(ValueError, match="registered already .*overwrite=True"):
        register_method(other)
    assert liecheck.get_method("test_inputs_zplus") is m
    assert register_method(other, overwrite=True) is liecheck.get_method("test_inputs_zplus")
    with pytest.raises(ValueError, match="registered already"):
        register_method(Method("lrp_z", "mine", "a user's method", m.composite))


def test_catalogue_reimport_does_not_clobber_a_user_method():
    """Re-running a catalogue's registration (importlib.reload) must not replace a method
    the user registered under the same name (they used to pass overwrite=True)."""
    code = (
        "import importlib, liecheck\n"
        "from liecheck.methods import Method, register_method\n"
        "mine = Method('smoothgrad', 'mine', 'a user method', None)\n"
        "register_method(mine, overwrite=True)\n"
        "try:\n"
        "    importlib.reload(liecheck.methods.baselines)\n"
        "except ValueError as exc:\n"
        "    print('refused:', exc)\n"
        "print('kept' if liecheck.get_method('smoothgrad') is mine else 'clobbered')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "kept" in out and "refused: a method named 'smoothgrad' is registered" in out


# ---------------------------------------------------------------- CLI
def test_cli_refuses_out_of_range_labels_once(tmp_path, capsys):
    from PIL import Image

    from liecheck.cli import main

    rng = np.random.default_rng(0)
    # 1001 class folders for a 1000-class model (the CLI evaluates cifar_net on the digits
    # only, so the folder goes to a seeded random VGG-16 at 32 px)
    for i in range(1001):
        d = tmp_path / "img" / f"n{i:08d}"
        d.mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(d / "a.png")
    rc = main(["random-logit", "--model", "vgg16", "--size", "32", "--images",
               str(tmp_path / "img"), "--n", "1001", "--methods", "gradient,lrp_z",
               "--out", str(tmp_path / "out")])
    out = capsys.readouterr()
    assert rc == 2
    assert "skipping" not in out.out
    assert "is out of range: the model has 1000 classes" in out.err
