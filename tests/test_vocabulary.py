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
    assert layer_label("resnet50", "layer4_2_relu_2") == "layer4_2_relu_2"   # unknown: as is


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
