"""The HTML report: built from a tiny store, every figure present, images decode."""

import base64
import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liecheck.metrics.csc import HIST_COLUMNS
from liecheck.reproduce.experiments import KEYS
from liecheck.store import RunStore, unit_id

ROOT = Path(__file__).resolve().parents[2]
METHODS = ("gradient", "lrp_a1b0", "lrp_cmp_a1b0")
LAYERS = [("input", "input", "input", 3), ("conv1", "conv1", "conv", 32),
          ("conv2", "conv2", "conv", 64), ("fc5", "fc5", "dense", 1024)]
# every figure the report draws from a store that has every table
EXPECTED_FIGURES = ("1b-e", "1a, 10", "3", "4a", "4b", "5a-d", "5e-g", "6a-b", "6c", "7", "9",
                    "GT")


def _tiny_store(root: Path) -> RunStore:
    """A store with the tables and arrays a cifar_net run writes (synthetic values
    in the columns the metric functions return)."""
    rng = np.random.default_rng(0)
    s = RunStore(root, settings={"n": 2})
    s.update(models={"cifar_net": {"source": {"kind": "checkpoint", "weights": "x.pt",
                                              "sha256": "ab" * 32, "test_accuracy": 0.97},
                                   "n_images": 2, "input_size": 32, "target": "ground truth",
                                   "methods": list(METHODS), "note": ""}},
             provenance={"packages": {"torch": "x"}, "machine": {"device": "cpu"}},
             timings={"CSC": 1.0}, skipped=["a skipped part, for the note"])
    s.save_arrays("images-cifar_net", raw=rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8),
                  names=np.array(["a", "b"]), target=np.array([1, 2]))
    for m in METHODS:
        conv = m != "gradient"
        rows = []
        for start, n_below in (("fc6", 4), ("relu4", 3)):
            for depth, (layer, module, kind, c) in enumerate(LAYERS[:n_below]):
                med = 1 - 10.0 ** -(depth + 3) if conv else 0.3
                rows.append(dict(method=m, start=start, start_node=start, layer=layer,
                                 module=module, kind=kind, depth=depth, channels=c,
                                 n_values=100, median=med, p5=med - 0.01, p95=min(med + .01, 1),
                                 median_images=med, median_low=med - 10.0 ** -(depth + 4),
                                 median_high=min(med + 10.0 ** -(depth + 4), 1),
                                 baseline=0.5 / np.sqrt(c),
                                 **{h: int(v) for h, v in zip(HIST_COLUMNS,
                                                              rng.integers(0, 50, 5))}))
        s.write("csc", unit_id("csc", m), pd.DataFrame(rows).assign(model="cifar_net"),
                KEYS["csc"])
        s.write("random_logit", unit_id("rl", m), pd.DataFrame({
            "model": "cifar_net", "method": m, "image": [0, 1], "target": [1, 2], "other": [3, 4],
            "measure": "ssim", "score": [0.99, 0.98] if conv else [0.3, 0.4]}), KEYS["random_logit"])
        rows = [{"model": "cifar_net", "method": m, "mode": "cascading", "image": i, "target": 1, "step": k,
                     "layer": lay, "measure": "ssim", "score": float(rng.random())}
                for i in range(2) for k, lay in enumerate(["fc6", "fc5", "conv2"], 1)]
        s.write("sanity", unit_id("sanity", m), pd.DataFrame(rows), KEYS["sanity"])
        s.save_arrays(unit_id("sanity_maps", "cifar_net", m),
                      maps=rng.uniform(-1, 1, (4, 32, 32)).astype(np.float32),
                      layers=np.array(["trained", "fc6", "fc6+fc5", "fc6+fc5+conv2"]))
        s.write("insensitivity", unit_id("ins", m), pd.DataFrame([{
            "model": "cifar_net", "method": m, "image": "a", "class_a": 1, "class_b": 7, "l1": 0.01, "ssim": 0.9}]),
            KEYS["insensitivity"])
        s.save_arrays(unit_id("insensitivity", "cifar_net", m),
                      maps=rng.random((2, 32, 32)).astype(np.float32),
                      raw=rng.random((2, 32, 32)).astype(np.float32), classes=np.array([1, 7]))
    sim = pd.DataFrame([{"chain": "vgg16 shapes", "family": f, "step": k, "median": 1 - 0.5 ** k,
                             "p25": 1 - 0.6 ** k, "p75": 1 - 0.4 ** k}
                        for f in ("vanilla", "positive", "alpha2-beta1") for k in range(5)])
    s.write("simulation", unit_id("sim"), sim, KEYS["simulation"])
    sv = pd.DataFrame([{"model": "cifar_net", "layer": f"l{i}", "module": f"l{i}", "index": i, "kind": "W",
                            "part": p, "shape": "(4, 4)", "sigma1": 2.0, "sigma2": 1.0, "ratio": 2.0}
                       for i in range(3) for p in ("layer", "inter")])
    s.write("singular", unit_id("sv"), sv, KEYS["singular"])
    gt = pd.DataFrame([{"method": m, "model_accuracy": 0.75, "n_drawn": 6, "n_negative_logit": 1,
                        "n_images": 4, "n_no_positive": 0,
                        **{f"{c}{k}": v + d for c, v in (("mass_accuracy", 0.6), ("pointing", 0.7),
                                                          ("l1_class_diff", 0.1))
                           for k, d in (("", 0.0), ("_low", -0.05), ("_high", 0.05))}}
                       for m in ("gradient", "lrp_a1b0", "occlusion", "random")])
    s.write("groundtruth", unit_id("gt"), gt, KEYS["groundtruth"])
    return s


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from liecheck.report import build_report

    root = tmp_path_factory.mktemp("store")
    _tiny_store(root)
    return build_report(root)


def test_report_tables_name_layers_with_the_papers_names(report):
    page = report.read_text()
    tables = page.split('id="tables"')[1]
    assert "<td class=\"text\">relu4 (conv4)</td>" in tables          # CSC start column
    layers = re.search(r'<p class="layers">(.*?)</p>', page).group(1)
    assert "first conv conv1" in layers and "last layer fc6" in layers


def test_report_figures_keep_their_pixel_size(report):
    """Each figure box is as wide as its PNG (plus padding), so the 9 pt labels are
    not scaled down on a wide page."""
    from liecheck.report import FIGURE_PAD

    page = report.read_text()
    figs = re.findall(r'<figure style="width: (\d+)px"><img[^>]*base64,([^"]+)"', page)
    assert figs
    for width, b in figs:
        png = base64.b64decode(b)
        assert int(width) == int.from_bytes(png[16:20], "big") + 2 * FIGURE_PAD + 2


def test_report_has_every_figure_table_verdict_and_provenance(report):
    page = report.read_text()
    numbers = re.findall(r"<b>Figure (.*?) &middot;", page)
    for num in EXPECTED_FIGURES:
        assert num in numbers, f"Figure {num} missing from the report"
    assert "failed" not in page.split('id="verdict"')[0]          # no figure raised
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(imgs) == len(numbers)
    for b in imgs:
        assert base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'class="converges"' in page and 'class="doesnot"' in page
    assert "ab" * 32 in page and "a skipped part" in page
    assert "<link" not in page and "http://" not in page          # self-contained


def test_groundtruth_figure_among_the_figures_its_table_among_the_tables(report):
    """The ground-truth benchmark's figure is in the figures section (Figure GT, with
    the model's accuracy in its caption); its numbers stay available as a table."""
    page = report.read_text()
    figures = page.split('id="figures"')[1].split('id="tables"')[0]
    tables = page.split('id="tables"')[1]
    assert "<b>Figure GT &middot; Ground-truth class sensitivity" in figures
    assert "test accuracy 0.750" in figures
    assert "Figure GT" not in page.split('id="figures"')[0]
    assert "Ground-truth class sensitivity (Figure GT" in tables
    assert "l1_class_diff" in tables and "<figure" not in tables


def test_verdict_states_its_images_and_the_wall_time_its_scope(report):
    """The verdict table says how many images (and of which size) each row rests on;
    the run's wall time says what it includes and excludes."""
    page = report.read_text()
    verdict = page.split('id="verdict"')[1].split('id="figures"')[0]
    assert "<th class=\"text\">images</th>" in verdict
    assert verdict.count('<td class="text">2 at 32 px</td>') == len(METHODS)
    prov = page.split('id="provenance"')[1]
    assert "Wall time of the last run" in prov and "not included" in prov


def _checker():
    spec = importlib.util.spec_from_file_location("check_report_browser",
                                                  ROOT / "scripts" / "check_report_browser.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report, tmp_path):
    chk = _checker()
    if chk.find_chromium() is None:
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    res = chk.check_report(report, tmp_path / "shot.png")
    assert res["images"] >= len(EXPECTED_FIGURES)
    assert res["failed"] == [] and res["loaded"] == res["images"]
    assert res["screenshot"] and Path(res["screenshot"]).stat().st_size > 10_000


def test_no_verdict_that_names_a_failure_is_coloured_as_a_pass(report):
    """Issue 24: the verdict names the mechanism, red wherever any test flags the method;
    green only for a method that shows none (or the gradient, the reference)."""
    page = report.read_text()
    verdict = page.split('id="verdict"')[1].split('id="figures"')[0]
    cells = re.findall(r'<td class="(converges|doesnot)">([^<]*)</td>', verdict)
    assert len(cells) == len(METHODS)
    for cls, text in cells:
        named = any(w in text for w in ("rank-1 convergence", "ignores later layers",
                                        "class-insensitive"))
        assert (cls == "converges") == named, (cls, text)
    texts = dict((t.split(" (")[0], c) for c, t in cells)
    assert any("rank-1 convergence" in t for _, t in cells)     # lrp_a1b0 on any weights
    assert texts.get("reference") == "doesnot"
