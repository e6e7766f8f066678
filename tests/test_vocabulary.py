"""One vocabulary: both spellings of a layer name, the paper's layer names, one number
formatter."""

from collections import OrderedDict

import pytest
import torch
from torch import nn

import liecheck
from liecheck.layer_names import layer_label, paper_name
from liecheck.numbers import fmt


def _model():
    return nn.Sequential(OrderedDict(
        features=nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()),
        flat=nn.Flatten(), classifier=nn.Sequential(nn.Linear(4 * 4 * 4, 5)))).eval()


def test_node_and_module_spellings_resolve_to_the_same_node():
    g = liecheck.trace(_model())
    node = g.resolve("features.0")
    assert node == g.resolve("features_0")
    assert g.resolve("features.1") == g.resolve("features_1") != node
    assert g.resolve("classifier.0") == g.resolve("classifier_0") == g.output
    with pytest.raises(KeyError, match="no node or module named"):
        g.resolve("features.7")


def test_csc_accepts_either_spelling():
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    model = _model()
    a = liecheck.csc(model, x, "gradient", start="features.1", n_vectors=2)
    b = liecheck.csc(model, x, "gradient", start="features_1", n_vectors=2)
    assert a["median"].tolist() == b["median"].tolist()


def test_sanity_layers_accept_either_spelling():
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    model = _model()
    a = liecheck.sanity(model, x, "gradient", layers=["features_0"], similarity="l1")
    b = liecheck.sanity(model, x, "gradient", layers=["features.0"], similarity="l1")
    assert a["score"].tolist() == b["score"].tolist() and len(a) == 2


def test_paper_layer_names():
    # VGG-16 (Keras names, a conv includes its ReLU), both spellings
    assert paper_name("vgg16", "features.28") == paper_name("vgg16", "features_29") == "conv5_3"
    assert paper_name("vgg16", "features.0") == "conv1_1"
    assert paper_name("vgg16", "features_21") == "conv4_3"
    assert paper_name("vgg16", "classifier_1") == "fc1"
    assert paper_name("vgg16", "classifier.6") == "fc3"
    assert paper_name("cifar_net", "relu5") == "fc5"
    assert layer_label("cifar_net", "relu5") == "relu5 (fc5)"
    assert layer_label("cifar_net", "fc6", logits="fc6") == "fc6 (logits)"
    assert layer_label("vgg16", "classifier_6", logits="classifier_6") == "classifier_6 (fc3, logits)"
    assert layer_label("mynet", "layer4_2_relu_2") == "layer4_2_relu_2"   # unknown: as is
    # one spelling printed: a module name is shown as its node name
    assert layer_label("vgg16", "features.28") == "features_28 (conv5_3)"
    assert layer_label("mynet", "block.0") == "block_0"


def test_resnet50_names_follow_the_keras_caffe_release():
    """He et al.'s stage s = torchvision layer{s-1}, blocks a, b, c, ...; the block's
    output is the ReLU after the add; the shortcut is branch1."""
    assert paper_name("resnet50", "layer4_2_relu_2") == "res5c"      # last block output
    assert paper_name("resnet50", "layer1.0") == "res2a"
    assert paper_name("resnet50", "layer3_5_relu_2") == "res4f"
    assert paper_name("resnet50", "layer2_1_conv2") == "res3b_branch2b"
    assert paper_name("resnet50", "layer2.0.downsample.0") == "res3a_branch1"
    assert paper_name("resnet50", "fc") == "fc1000"
    assert paper_name("resnet50", "conv1") == "conv1"
    assert paper_name("resnet50", "add_3") is None                   # not a Keras layer
    # every start layer of the protocol has a paper name
    torchvision = pytest.importorskip("torchvision")
    from liecheck.reproduce.paper import paper_starts

    g = liecheck.trace(torchvision.models.resnet50().eval(), check_forward=False)
    assert [paper_name("resnet50", n) for n in paper_starts(g, "resnet50")] == [
        "fc1000", "res5c", "res4f", "res3d", "res2c"]


def test_tables_show_the_paper_name_next_to_the_node():
    import pandas as pd

    from liecheck.layer_names import label_layers

    df = pd.DataFrame({"model": ["vgg16", "cifar_net", "cifar_net"],
                       "start": ["classifier_6", "fc6", "relu5"],
                       "layer": ["features_22", "relu1", "input_1"], "median": [1.0, 0.5, 0.2]})
    got = label_layers(df)
    assert got["layer"].tolist() == ["features_22 (conv4_3)", "relu1 (conv1)", "input_1"]
    assert got["start"].tolist() == ["classifier_6 (fc3)", "fc6", "relu5 (fc5)"]
    assert df["layer"].iloc[0] == "features_22"                       # a copy
    no_model = label_layers(df.drop(columns="model"), model="vgg16")
    assert no_model["layer"].iloc[0] == "features_22 (conv4_3)"


@pytest.mark.parametrize("v,text", [
    (0.9999, "0.9999"), (0.99999, "0.99999"), (0.999914, "0.999914"), (0.99987, "0.99987"),
    (0.995, "0.995"), (0.5063, "0.5063"), (0.123456, "0.1235"), (1.0, "1"), (0.0, "0"),
    (7.3e15, "7.3e+15"), (1234.5678, "1235"), (-0.99995, "-0.99995"), (float("nan"), "-"),
    ("converges", "converges"), (None, "-"), (3, "3")])
def test_one_number_format(v, text):
    assert fmt(v) == text


def test_near_one_values_stay_distinct():
    vals = [1 - 10.0 ** -k for k in range(1, 10)]
    assert len({fmt(v) for v in vals}) == len(vals)


def _subparsers():
    import argparse

    from liecheck.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_every_cli_option_has_help_text():
    missing = [f"{name} {a.option_strings or a.dest}" for name, p in _subparsers().items()
               for a in p._actions if a.dest != "help" and not a.help]
    assert missing == []


def test_shared_options_mean_the_same_everywhere():
    """--images is a folder and --n a count in every subcommand that has them."""
    for name, p in _subparsers().items():
        acts = {s: a for a in p._actions for s in a.option_strings}
        if "--images" in acts:
            assert acts["--images"].type is None and "folder" in acts["--images"].help, name
        if "--n" in acts:
            assert acts["--n"].type is int and "images" in acts["--n"].help, name
        if "--weights" in acts and "--model" in acts:
            helps = acts["--weights"].help + acts["--model"].help
            assert "built-in digits model" in helps, name


def test_cifar_net_without_weights_is_the_built_in_model_everywhere(tmp_path, capsys):
    """`liecheck singular --model cifar_net` used a random initialisation while csc,
    sanity and the help text meant the built-in digits model."""
    from liecheck.cli import main

    assert main(["singular", "--model", "cifar_net", "--out", str(tmp_path)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "checkpoint" in last and "random" not in last


def test_reproduce_methods_without_model():
    from liecheck.cli import build_parser
    from liecheck.cli.reproduce import config_from_args

    args = build_parser().parse_args(["reproduce", "--methods", "gradient,lrp_a1b0"])
    cfg = config_from_args(args)
    assert cfg.profile == "default"
    assert all(p.methods == ("gradient", "lrp_a1b0") for p in cfg.models)
    args = build_parser().parse_args(["reproduce", "--images", "somewhere"])
    with pytest.raises(ValueError, match="need --model"):
        config_from_args(args)
