"""Every code block of README.md and docs/*.md runs as written, on small settings.

Python blocks of one file run in order in one namespace (as a reader would paste
them); every ``liecheck ...`` line of a ``bash`` block runs through the CLI with
small sizes appended (argparse keeps the last value: ``--n 8 ... --n 1``). VGG-16
becomes the paper's CIFAR network at 32 px (``REWRITES``, ``SHELL_REWRITES``; each
rewrite must still match something): a traced VGG-16 with its split weights holds
gigabytes, too much for a test on a shared 2-core machine. A block after

* ``<!-- snippet: needs-weights -->`` needs trained torchvision weights: it must
  fail with liecheck's clear message (downloads are blocked here), then a Python
  block runs again with ``weights=None`` (seeded random) so the blocks after it work;
* ``<!-- snippet: needs-data -->`` needs a data set that is not here: clear error;
* ``<!-- snippet: setup -->`` installs packages or runs this suite: the scripts
  must exist and parse (``bash -n``);
* ``<!-- snippet: launcher -->`` runs liecheck under torchrun / srun (several processes or
  nodes): the arguments after ``-m liecheck`` must parse.

``toml`` blocks (configuration to paste) must parse. Blocks without a language
(diagrams) are not code.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!--\s*snippet:\s*(?P<mark>[\w-]+)\s*-->\s*\n)?"
                   r"^```(?P<lang>\w*)\n(?P<body>.*?)^```", re.S | re.M)
SMALL = {
    "csc": "--n 1 --n-vectors 2",
    "sanity": "--n 1",
    "random-logit": "--n 1",
    "spectrum": "--n 1 --max-steps 4 --tol 1e-2 --layers fc5",
    "simulate": "--repeats 1 --n-vectors 4 --shapes 40x30,30x20,20x3",
    "explain": "--size 32",
    "reproduce": "--n 1",
    "train": "--epochs 1",
    "groundtruth": "--n 4",
    # the zoo's families untrained (training one is a minute), two images, two methods
    "zoo": "--random --n 2 --methods gradient,lrp_a1b0 --no-report",
}
# (pattern, replacement): VGG-16 (138 M parameters, GBs per traced copy) becomes the
# paper's small CIFAR network at 32 px, ImageNet classes become digits classes
REWRITES = [
    (r'load\("vgg16", weights=None\)', 'load("cifar_net", weights=None)'),
    (r"sample_photos\((\[[^\]]*\])\)", r"sample_photos(\1, size=32)"),
    (r"\[281, 285\]", "[1, 2]"),
    (r"torch\.randn\(16, 3, 32, 32", "torch.randn(2, 3, 32, 32"),
    (r'"classifier_1"\)', '"fc5", max_steps=4, tol=1e-2)'),
    (r'"occlusion", "random"\], n=200, seed=0\)', '"occlusion", "random"], n=4, seed=0)'),
    (r'n=4, out="runs/zoo_py"\)', 'n=2, trained=False, out="runs/zoo_py")'),
    (r'simulate_chain\("non-negative"\)', 'simulate_chain("non-negative", repeats=1, '
                                          'shapes=[(40, 30), (30, 3)])'),
]
SHELL_REWRITES = [("--model vgg16", "--model cifar_net"),
                  # the whole zoo is an hour; its command runs on the cheapest family
                  ("liecheck zoo --models all", "liecheck zoo --models regnet_y"),
                  # all 24 methods x every step is minutes on a busy 2-core machine
                  ("--methods all", "--methods gradient,lrp_a1b0,smoothgrad")]
WEIGHTS = (r'weights="IMAGENET1K_V1"', "weights=None")
USED: set[str] = set()


def _blocks(path: Path):
    text = path.read_text()
    for m in BLOCK.finditer(text):
        if m["lang"]:
            line = text[:m.start("body")].count("\n") + 1
            yield m["mark"] or "", m["lang"], m["body"], f"{path.name}:{line}"


def _rewrite(code: str) -> str:
    for pat, rep in REWRITES:
        code, n = re.subn(pat, rep, code)
        if n:
            USED.add(pat)
    return code


def _commands(body: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", body)
    return [ln.split(" #")[0].strip() for ln in joined.splitlines()
            if ln.strip() and not ln.strip().startswith("#")]


def _liecheck(cmd: str, capsys) -> tuple[int, str]:
    from liecheck.cli import main

    for a, b in SHELL_REWRITES:
        cmd = cmd.replace(a, b)
    argv = shlex.split(cmd)[1:]
    small = SMALL.get(argv[0], "")
    rc = main(argv + shlex.split(small))
    return rc, capsys.readouterr().err


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Downloads fail at once (a closed local port as proxy); no cached weights."""
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.chdir(tmp_path)
    from PIL import Image

    from liecheck.data.images import sample_photos

    Image.fromarray(sample_photos(["chelsea"], size=64).raw[0]).save(tmp_path / "my.jpg")


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_snippets_run(path, offline, capsys):
    import importlib

    registry = importlib.import_module("liecheck.methods.registry")   # the module, not the function
    before = dict(registry._REGISTRY)
    from liecheck import battery

    tests_before = dict(battery.TESTS)
    ns: dict = {"__name__": "__snippet__"}
    try:
        for mark, lang, body, where in _blocks(path):
            if lang == "python":
                code = _rewrite(body)
                if mark == "needs-weights":
                    with pytest.raises(RuntimeError, match="could not load torchvision weights"):
                        exec(compile(code, where, "exec"), dict(ns))
                    assert WEIGHTS[0] in body, f"{where}: needs-weights block without weights"
                    code = _rewrite(code.replace(*WEIGHTS))
                exec(compile(code, where, "exec"), ns)
                capsys.readouterr()
            elif lang == "bash":
                for cmd in _commands(body):
                    if mark == "launcher":  # torchrun / srun: both parts must parse
                        if "-m liecheck " in cmd:
                            from torch.distributed.run import get_args_parser

                            from liecheck.cli import build_parser
                            argv = shlex.split(cmd.split("torchrun ", 1)[1])
                            # torchrun's own parser sees every option string (argparse
                            # matches prefixes even after the script: `--n` is ambiguous)
                            get_args_parser().parse_args(argv)
                            build_parser().parse_args(
                                shlex.split(cmd.split("-m liecheck ", 1)[1]))
                        continue
                    if mark == "setup":
                        script = cmd.split()[-1]
                        assert cmd.startswith("bash ") and (ROOT / script).is_file(), where
                        assert subprocess.run(["bash", "-n", str(ROOT / script)]).returncode == 0
                        continue
                    assert cmd.startswith("liecheck "), (
                        f"{where}: '{cmd}' is not a liecheck command; mark the block")
                    rc, err = _liecheck(cmd, capsys)
                    if mark in ("needs-weights", "needs-data"):
                        lines = err.strip().splitlines()
                        assert rc == 2 and lines[-1].startswith("liecheck: error:"), (where, err)
                        assert "Traceback" not in err
                    else:
                        assert rc == 0, f"{where}: `{cmd}` failed: {err}"
            elif lang == "toml":   # configuration to paste: it must parse
                import tomllib

                tomllib.loads(body)
            else:
                pytest.fail(f"{where}: code block in '{lang}': teach this test to run it")
    finally:
        registry._REGISTRY.clear()
        registry._REGISTRY.update(before)
        battery.TESTS.clear()
        battery.TESTS.update(tests_before)


def test_every_rewrite_still_matches():
    text = "\n".join(b for p in FILES for _, lang, b, _ in _blocks(p) if lang == "python")
    text = text.replace(*WEIGHTS)
    unused = [pat for pat, _ in REWRITES if not re.search(pat, text)]
    assert unused == [], f"rewrites that match no snippet any more: {unused}"


def test_methods_table_fits_100_columns(capsys):
    from liecheck.cli import main

    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100, max(out.splitlines(), key=len)
    assert "lrp_a1b0" in out
