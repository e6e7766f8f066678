"""What a new user hits at the command line: ``--methods all`` on every command that
takes ``--methods``, suggestions for misspelt model / method / image names, the line
on stderr for seeded random weights, ``models.load`` keeping stdout free, and a run
directory reused by a subset of its methods (issue 25).

The ``--methods all`` checks stop each command where its method list is final
(a stub raises :class:`Captured`), so they cost no attribution."""

from __future__ import annotations

import pandas as pd
import pytest

import liecheck.reproduce as reproduce_pkg
import liecheck.reproduce.setup as setup_mod
from liecheck.cli import explain as explain_cli
from liecheck.cli import faithfulness as faith_cli
from liecheck.cli import main
from liecheck.cli import theory as theory_cli
from liecheck.methods import get_method, method_names

COMMON = ["--model", "cifar_net", "--n", "2", "--seed", "0"]


class Captured(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a stub with what the command was about to run."""


def _capture(monkeypatch, module, name, pick):
    """Replace ``module.name`` by a stub that raises :class:`Captured` with ``pick(args)``."""
    def stub(*args, **kwargs):
        raise Captured(pick(*args, **kwargs))
    monkeypatch.setattr(module, name, stub)


def _run_captured(argv):
    with pytest.raises(Captured) as e:
        main(argv)
    return e.value.args[0]


@pytest.mark.parametrize("command", ["csc", "sanity", "random-logit"])
def test_methods_all_for_the_faithfulness_tests(command, monkeypatch, tmp_path):
    monkeypatch.setattr(faith_cli, "plan_line", lambda cfg, cmd: "plan")
    _capture(monkeypatch, reproduce_pkg, "run", lambda cfg, *a, **k: cfg.models[0].methods)
    got = _run_captured([command, *COMMON, "--methods", "all", "--out", str(tmp_path)])
    assert list(got) == method_names()


def test_methods_all_for_reproduce(monkeypatch, tmp_path):
    monkeypatch.setattr(faith_cli, "plan_line", lambda cfg, cmd: "plan")
    _capture(monkeypatch, reproduce_pkg, "run",
             lambda cfg, *a, **k: [p.methods for p in cfg.models])
    got = _run_captured(["reproduce", "--model", "cifar_net", "--n", "2", "--methods", "all",
                         "--out", str(tmp_path)])
    assert [list(m) for m in got] == [method_names()]


def test_methods_all_for_explain(monkeypatch, tmp_path):
    _capture(monkeypatch, explain_cli, "_with_patterns",
             lambda methods, *a, **k: [m.name for m in methods])
    got = _run_captured(["explain", "--model", "cifar_net", "--methods", "all", "astronaut",
                         "-o", str(tmp_path / "x.png")])
    assert got == method_names()


def test_methods_all_for_audit(monkeypatch, tmp_path):
    _capture(monkeypatch, setup_mod, "applicable_methods", lambda plan, *a: plan.methods)
    got = _run_captured(["audit", "--model", "cifar_net", "--n", "2", "--methods", "all",
                         "--out", str(tmp_path)])
    assert list(got) == method_names()


def test_methods_all_for_spectrum(monkeypatch, tmp_path, capsys):
    """spectrum: 'all' = the registered methods that have a derivation matrix."""
    from liecheck.theory.spectrum import NotLinearInRelevance, check_method

    def linear(name):
        try:
            check_method(get_method(name))
            return True
        except NotLinearInRelevance:
            return False
    _capture(monkeypatch, theory_cli, "_with_patterns", lambda names, *a: names)
    got = _run_captured(["spectrum", *COMMON[:2], "--n", "1", "--methods", "all",
                         "--out", str(tmp_path)])
    want = [m for m in method_names() if linear(m)]
    assert got == want and "gradient" in got and "guided_bp" not in got
    assert "the others have no derivation matrix" in capsys.readouterr().out


def test_methods_all_for_groundtruth(monkeypatch, tmp_path):
    import liecheck.groundtruth as gt
    from liecheck.groundtruth.benchmark import REFERENCES, resolve_methods, walkable_methods

    _capture(monkeypatch, gt, "two_digits", lambda methods, **k: resolve_methods(methods))
    got = _run_captured(["groundtruth", "--methods", "all", "--out", str(tmp_path)])
    assert got == walkable_methods() + list(REFERENCES)


@pytest.mark.parametrize("argv, needle", [
    (["explain", "--model", "VGG16"], "unknown model 'VGG16'. Did you mean vgg16?"),
    (["explain", "--model", "resnet_50"], "Did you mean resnet50?"),
    (["csc", "--model", "cifarnet", "--out", "{out}"], "Did you mean cifar_net?"),
    (["reproduce", "--model", "Vgg16", "--out", "{out}"], "Did you mean vgg16?"),
    (["audit", "--model", "vgg-16", "--methods", "gradient", "--out", "{out}"],
     "Did you mean vgg16?"),
    (["spectrum", "--model", "VGG16", "--out", "{out}"], "Did you mean vgg16?"),
    (["explain", "--model", "cifar_net", "--methods", "lrp_a1bo"], "Did you mean lrp_a1b0"),
    (["csc", *COMMON, "--methods", "gradiant", "--out", "{out}"], "Did you mean gradient"),
    (["groundtruth", "--methods", "gradiant", "--out", "{out}"], "Did you mean gradient"),
    (["explain", "--model", "cifar_net", "coffe"], "no such file 'coffe'"),
    (["explain", "--model", "cifar_net", "coffe"], "Did you mean coffee?"),
    (["explain", "--model", "cifar_net", "coffe"], "Sample photos: astronaut, chelsea"),
    (["explain", "--model", "cifar_net", "missing.jpg"], "missing.jpg (no such file)"),
])
def test_misspelt_names_get_a_suggestion(argv, needle, tmp_path, capsys):
    argv = [a.replace("{out}", str(tmp_path / "o")) for a in argv]
    if argv[0] == "explain":
        argv += ["-o", str(tmp_path / "x.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()        # refused before anything was written


def test_random_weights_said_on_stderr_and_load_keeps_stdout_free(capsys, monkeypatch,
                                                                   tmp_path):
    from liecheck.models import load

    load("cifar_net", None)                      # verbose: the source goes to stderr
    out, err = capsys.readouterr()
    assert out == "" and "model cifar_net: random weights random(seed=0)" in err
    monkeypatch.setattr(faith_cli, "plan_line", lambda cfg, cmd: "plan")
    _capture(monkeypatch, reproduce_pkg, "run", lambda cfg, *a, **k: None)
    _run_captured(["csc", "--model", "vgg16", "--n", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert "vgg16 has seeded RANDOM weights (seed 0), not trained ones" in err
    # the built-in digits model is trained, not random: no such line
    _run_captured(["csc", *COMMON, "--out", str(tmp_path / "c")])
    assert "RANDOM" not in capsys.readouterr().err


def test_audit_help_has_a_description(capsys):
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "through the paper's three tests" in out


def _units(root):
    return {p.name: p.stat().st_mtime_ns for p in (root / "tables").glob("*/*.parquet")}


def test_subset_of_methods_reuses_the_run_directory(tmp_path, capsys, monkeypatch):
    """random-logit on a run directory: a subset of its methods reuses it (nothing
    recomputed, the outputs show only the subset), a unit missing from the subset is
    computed while one missing from the other methods is left alone, and a method the
    run does not hold is refused at once, saying a subset would be reused."""
    monkeypatch.setattr(faith_cli, "plan_line", lambda cfg, cmd: "plan")  # no timed walk
    out = tmp_path / "rl"
    base = ["random-logit", *COMMON, "--out", str(out)]
    assert main([*base, "--methods", "gradient,lrp_a1b0,lrp_z"]) == 0
    err = capsys.readouterr().err
    assert "random-logit:" in err and "reproduce:" not in err     # the progress bar's label
    before = _units(out)
    assert len(before) == 3

    assert main([*base, "--methods", "lrp_z,gradient"]) == 0
    text = capsys.readouterr().out
    assert "reusing" in text and "2 of 2 units already done; nothing left to compute" in text
    assert _units(out) == before                                   # nothing recomputed
    assert set(pd.read_csv(out / "random_logit.csv")["method"]) == {"lrp_z", "gradient"}

    files = sorted((out / "tables" / "random_logit").glob("*.parquet"))
    by_method = {pd.read_parquet(f)["method"].iloc[0]: f for f in files}
    by_method["lrp_z"].unlink()
    by_method["lrp_a1b0"].unlink()
    assert main([*base, "--methods", "lrp_z"]) == 0
    assert "reusing" in capsys.readouterr().out
    assert by_method["lrp_z"].exists() and not by_method["lrp_a1b0"].exists()

    assert main([*base, "--methods", "gradient,dtd"]) == 2
    err = capsys.readouterr().err
    assert "methods dtd are not in it" in err and "A subset of its methods" in err
    assert main(["random-logit", *COMMON[:2], "--n", "3", "--methods", "gradient",
                 "--out", str(out)]) == 2                          # other settings: refused
    assert "models[0].n: 2 in the run directory, 3 now" in capsys.readouterr().err


def test_explain_fits_patterns_itself_or_takes_a_file(tmp_path, capsys, monkeypatch):
    """PatternAttribution from the command line: patterns fitted now (said on stderr),
    or read from --patterns FILE (then not fitted). The fit itself (512 digits, tens of
    seconds on a busy 2-core machine) is replaced by one on the given image."""
    from liecheck.methods.patterns import fit

    calls = []

    def quick_fit(plan, model, images):
        calls.append(plan.name)
        return fit(model, images.images, kind="relu")
    monkeypatch.setattr(setup_mod, "fit_patterns", quick_fit)
    argv = ["explain", "--model", "cifar_net", "--methods", "gradient,patternattribution",
            "astronaut"]
    assert main([*argv, "-o", str(tmp_path / "a.png")]) == 0
    err = capsys.readouterr().err
    assert "fitting the patterns of patternattribution on the digits training" in err
    assert calls == ["cifar_net"] and (tmp_path / "a.png").stat().st_size > 1000

    from liecheck.cli.faithfulness import load_cli_model
    from liecheck.data import sample_photos

    model, _ = load_cli_model("cifar_net", None)
    fit(model, sample_photos(["chelsea"], size=32).images, kind="relu").save(tmp_path / "p.pt")
    assert main([*argv, "--patterns", str(tmp_path / "p.pt"), "-o", str(tmp_path / "b.png")]) == 0
    assert "fitting" not in capsys.readouterr().err and calls == ["cifar_net"]
    assert (tmp_path / "b.png").stat().st_size > 1000
