"""``liecheck csc | sanity | random-logit``: the paper's faithfulness tests, one
subcommand per test of the battery that has a command (:mod:`liecheck.battery`, a test
you register included).

Each runs through ``liecheck reproduce``'s runner with one experiment on one model,
so the results go into a resumable run store in ``--out`` (the same command again
resumes; ``--fresh`` starts over; Ctrl-C keeps every finished method), with a
progress bar and ETA. Before starting it prints the planned work and an estimate
from each method timed on this machine (:mod:`liecheck.battery.estimate`); at the end
a summary table, the table as CSV and the figures (PNG + SVG).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def add_model_options(p: argparse.ArgumentParser, default_n: int = 200) -> None:
    """``--model --weights --images --n --size --seed --device``: what every subcommand
    that evaluates a model on images means by them."""
    p.add_argument("--model", default="vgg16",
                   help="cifar_net (the built-in digits model unless --weights) | vgg16 | "
                        "resnet50")
    p.add_argument("--weights", default=None,
                   help="torchvision weights name (IMAGENET1K_V1), a checkpoint path, or omit "
                        "(cifar_net: the built-in digits model; others: a seeded random "
                        "initialisation)")
    p.add_argument("--images", default=None, metavar="DIR",
                   help="image folder (ImageNet-style class sub-folders give labels); default: "
                        "scikit-image's sample photos (cifar_net: the digits test images)")
    p.add_argument("--n", "--num-images", dest="n", type=int, default=default_n,
                   help=f"number of images (default {default_n}; the paper: 200)")
    p.add_argument("--size", type=int, default=None,
                   help="input side in pixels (default 32 for cifar_net, 224 otherwise)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument("--device", default="cpu", help="cpu | cuda")


def say_random_weights(model: str, seed: int = 0) -> None:
    """One line on stderr: ``model`` has seeded random weights, not trained ones (every
    command that runs such a model says so before it starts)."""
    print(f"liecheck: note: {model} has seeded RANDOM weights (seed {seed}), not trained "
          "ones: the results test the rules on its architecture, not a trained model "
          "(pass --weights for trained weights)", file=sys.stderr, flush=True)


def note_random_plans(cfg) -> None:
    """:func:`say_random_weights` for each model of ``cfg`` that runs with random weights."""
    for plan in cfg.models:
        if plan.weights is None and plan.name != "cifar_net":
            say_random_weights(plan.name, cfg.seed)


def load_cli_model(name: str, weights: str | None):
    """``(model, ModelSource)`` as every subcommand means ``--model`` / ``--weights``:
    ``cifar_net`` without weights is the built-in digits model (cached, or trained
    once), other models without weights a seeded random initialisation (said on
    stderr)."""
    from ..models import check_model_name, load

    check_model_name(name)
    if name == "cifar_net" and weights is None:
        from ..train import default_model

        model, src, _ = default_model()
        return model, src
    model, src = load(name, weights, verbose=False)
    if src.kind == "random":
        say_random_weights(name)
    else:
        print(f"model {src}", file=sys.stderr, flush=True)
    return model, src


def _common(p: argparse.ArgumentParser) -> None:
    add_model_options(p)
    p.add_argument("--methods", default="gradient,lrp_z,lrp_a1b0",
                   help="comma-separated method names (or package.module:attr), or 'all'")
    p.add_argument("--out", required=True,
                   help="run directory (resumable run store, CSV and figures)")
    p.add_argument("--fresh", action="store_true",
                   help="delete earlier results in --out instead of resuming")


def register(sub: argparse._SubParsersAction) -> None:
    """One subcommand per test of the battery that has a command."""
    from ..battery import tests

    for test in tests():
        if test.command is None:
            continue
        p = sub.add_parser(test.command, help=test.help)
        _common(p)
        test.add_arguments(p)
        p.set_defaults(func=lambda args, test=test: run_test(args, test))


def method_list(spec: str) -> list[str]:
    """``'all'`` or a comma list -> method names; unknown names fail here, before any
    model is loaded."""
    from ..methods import get_method, method_names

    names = method_names() if spec == "all" else [s.strip() for s in spec.split(",")
                                                  if s.strip()]
    for n in names:
        get_method(n)
    return names


def _config(args, test):
    from ..models import check_model_name
    from ..reproduce.config import ModelPlan, RunConfig

    check_model_name(args.model)
    if args.model == "cifar_net" and args.images:
        raise ValueError("--images is not used with cifar_net: it is evaluated on the digits "
                         "test images (use the Python API for other images)")
    if args.n < 1:
        raise ValueError(f"--n must be at least 1, not {args.n}")
    size = args.size or (32 if args.model == "cifar_net" else 224)
    note = ""
    if args.weights is None:
        note = ("trained on scikit-learn digits (built-in)" if args.model == "cifar_net" else
                "seeded RANDOM initialisation (no --weights): these results test the rules, "
                "not a trained model")
    settings = test.plan_settings(args)
    n_vectors = settings.pop("n_vectors", 5)
    plan = ModelPlan(args.model, args.weights, n=args.n, size=size,
                     methods=tuple(method_list(args.methods)), experiments=(test.name,),
                     note=note, **settings)
    return RunConfig([plan], images=args.images, device=args.device, seed=args.seed,
                     n_vectors=n_vectors, theory=False, profile=f"liecheck {args.command}")


def plan_line(cfg, command: str) -> str:
    """One line: the planned work and its estimated time on this machine, from every
    (test, method) of the run timed now on a few images (:mod:`liecheck.battery.estimate`;
    the setup, the theory part and the figures are not included)."""
    from ..battery.estimate import estimate_plan
    from ..numbers import fmt
    from ..reproduce.setup import load_model

    parts, secs, total = [], 0.0, 0
    t0 = time.perf_counter()
    for plan in cfg.models:
        model, _ = load_model(plan, cfg.seed)
        est = estimate_plan(plan, cfg, model)
        parts += est.parts
        secs += est.seconds
        total += est.walks
    probe = time.perf_counter() - t0
    est = f"{fmt(round(secs / 60, 1))} min" if secs >= 90 else f"{fmt(round(secs))} s"
    return (f"liecheck {command}: {'; '.join(parts)} = {total} walks; estimated {est} from "
            f"each test and method timed now ({fmt(round(probe, 1))} s; setup, theory and "
            "figures extra; resumable, Ctrl-C keeps finished units)")


def stored_methods(cfg, out: str | Path) -> list[str] | None:
    """The methods of the run in ``out`` when the requested ones are a proper subset of
    them and every other setting is the same (the run is then reused: only what those
    methods lack is computed); ``None`` when there is no run, the settings are the same
    (a plain resume), or the store will refuse. Other settings, or methods the run does
    not hold, raise :class:`~liecheck.store.SettingsMismatch` naming the difference here,
    before the estimate is timed."""
    from dataclasses import replace

    from ..store import SettingsMismatch, diff_settings, read_json

    path = Path(out) / "manifest.json"
    stored = read_json(path).get("settings") if path.exists() else None
    if not stored or len(cfg.models) != 1 or len(stored.get("models") or []) != 1:
        return None
    now = json.loads(json.dumps(cfg.settings(), default=str))
    if not diff_settings(stored, now):
        return None
    have = list(stored["models"][0].get("methods") or [])
    want = list(cfg.models[0].methods)
    trial = replace(cfg, models=[replace(cfg.models[0], methods=tuple(have))])
    other = diff_settings(stored, json.loads(json.dumps(trial.settings(), default=str)))
    new = [m for m in want if m not in have]
    if other or new:
        why = "; ".join(other + ([f"methods {', '.join(new)} are not in it"] if new else []))
        hint = (f" A subset of its methods ({', '.join(have)}) reuses it." if not other
                else "")
        raise SettingsMismatch(f"{out} holds a run with other settings: {why}.{hint} Use "
                               "--fresh to start over or choose another --out.")
    return have


def run_experiment(args, test):
    """Run ``test`` (of the battery) into the run store ``args.out``; returns
    ``(store, table)``.

    Run again on the same ``--out`` it resumes; with a subset of the run's methods it
    reuses the run (computing only what those methods lack) and reports only them;
    other settings, or methods the run does not hold, are refused (``--fresh``)."""
    from ..report.summary import format_summary, images_by_model, layers_note, summary_table
    from ..reproduce import run

    t0 = time.perf_counter()
    experiment = test.name
    cfg = _config(args, test)
    main_rank = int(os.environ.get("RANK", "0")) == 0  # torchrun: rank 0 summarises
    have = None if args.fresh else stored_methods(cfg, args.out)
    want = list(cfg.models[0].methods)
    if main_rank:
        note_random_plans(cfg)
        print(plan_line(cfg, args.command), flush=True)
        if have:
            print(f"reusing {args.out}: it holds {len(have)} methods; the {len(want)} asked "
                  f"for ({', '.join(want)}) are a subset, so only what they lack is computed",
                  flush=True)
    if have:
        cfg.models[0].methods = tuple(have)   # the run's settings, so its units are found
    store = run(cfg, args.out, fresh=args.fresh, report=False, label=args.command,
                methods=want if have else None, started=t0)
    if not main_rank:
        return store, None
    df = store.read(experiment)
    if not df.empty:
        df = df[df["method"].isin(want)].reset_index(drop=True)
    for s in store.manifest().get("skipped", []):
        print(f"skipped: {s}")
    if df.empty:
        raise ValueError("no method could be run (see the messages above)")
    print()
    print(format_summary(summary_table({experiment: df}, images_by_model(store.manifest()))))
    print(layers_note({experiment: df}))
    out = Path(args.out)
    path = out / f"{experiment}.csv"
    src = store.manifest()["models"][cfg.models[0].name]["source"]
    df.assign(weights=src.get("weights")).to_csv(path, index=False)
    print(f"wrote {path}; run store in {out} (`liecheck report {out}` for the HTML report)")
    return store, df


def run_test(args, test) -> int:
    """``liecheck <command>``: the run, the summary, the CSV and the test's figures."""
    store, df = run_experiment(args, test)
    if df is None:  # another rank of a torchrun launch: rank 0 writes the outputs
        return 0
    test.write_outputs(store, df, args)
    return 0
