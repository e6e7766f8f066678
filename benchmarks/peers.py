"""Speed and memory of liecheck against plain autograd, Zennit and Captum, in one run.

GitHub issue 2, item 10. Every method runs on the same random-init torchvision model,
the same seeded random input batch (224x224) and the same explicit target class (the
model's arg-max), on one device. Timing is round-robin: in each repeat every
(method, peer) case runs once, in an order rotated by one per repeat, so that load
from other processes on a shared machine hits every case alike; the table reports the
median of the repeats and their spread.

Memory is measured in a fresh subprocess per case, as the *increase* over the state
before a call: ``peak`` is the steady working memory of one more batch (the second
call), ``1st-call`` the first call's peak including caches built on first use
(liecheck's W+ / W- splits), ``held`` what the first call leaves allocated until the
next (caches, or state a peer keeps on the model), ``setup`` what building the
explainer holds (liecheck's traced copy of the model). The probe:

* CUDA: ``torch.cuda.max_memory_allocated()`` minus ``memory_allocated()`` before;
* CPU: the kernel's resident-set high-water mark (``VmHWM``), reset before each call
  through ``/proc/self/clear_refs`` (Linux), minus the resident set before. The child
  runs with a fixed 64 KiB glibc mmap threshold, so freed tensors leave the resident
  set at once and the second call cannot hide in memory kept from the first.

The ``functional`` peer calls ``liecheck.attribute(model, x, method)`` each time instead
of reusing one explainer; ``fn/reused`` is its throughput relative to the reused
explainer's (``Attribution`` is a thin wrapper of the same explainer), the cost of the
functional form's cache lookup.

Usage::

    python benchmarks/peers.py --device cpu --batch 2 --models vgg16,resnet50 \
        --repeats 5 --warmup 1 --out results.csv

See ``benchmarks/README.md`` for what each row compares and ``RESULTS.md`` for numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torchvision

import liecheck

CLOCK = time.perf_counter  # --clock cpu: time.process_time

# families compared (liecheck registry names); the gradient is the baseline
FAMILIES = ["gradient", "lrp_a1b0", "lrp_a2b1", "lrp_epsilon", "excitation_bp", "guided_bp",
            "deeplift_rescale", "integrated_gradients", "cp_lrp_gamma"]
PEERS = ["autograd", "liecheck", "functional", "zennit", "captum", "lxt"]
EPSILON = liecheck.DEFAULTS["epsilon"]
# liecheck's settings per method where a peer's configuration needs them: cp_lrp_gamma
# as LXT's default torchvision-ViT map (Zennit's Gamma 0.25 on Conv2d and Linear modules,
# which never see nn.MultiheadAttention's projections: the z-rule there)
PARAMS = {"cp_lrp_gamma": {"gamma_conv": 0.25, "gamma_linear": 0.25, "gamma_attention": False}}


# ---------------------------------------------------------------------- set-up
@dataclass
class Setup:
    """What every case of one model shares."""

    name: str
    model: torch.nn.Module
    x: torch.Tensor
    target: torch.Tensor
    device: torch.device
    explainer: liecheck.Explainer | None = None  # traced once, shared by liecheck cases

    def liecheck(self) -> liecheck.Explainer:
        if self.explainer is None:
            self.explainer = liecheck.Explainer(self.model, device=self.device)
        return self.explainer


def make_setup(name: str, batch: int, device: torch.device, seed: int) -> Setup:
    """Random-init torchvision model (no download), seeded input, arg-max targets."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None).eval().to(device)
    if name.startswith("vit_"):  # torchvision zero-initialises ViT's head: all maps 0
        torch.nn.init.normal_(model.heads.head.weight, std=0.02)
    for p in model.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, 3, 224, 224, generator=gen).to(device)
    with torch.no_grad():
        target = model(x).argmax(1)
    return Setup(name, model, x, target, device)


@dataclass
class Runner:
    """One attribution call; ``enter`` / ``exit`` (untimed) register and remove hooks."""

    call: Callable[[], torch.Tensor]
    enter: Callable[[], None] = lambda: None
    exit: Callable[[], None] = lambda: None

    @contextlib.contextmanager
    def active(self):
        self.enter()
        try:
            yield self
        finally:
            self.exit()


# ---------------------------------------------------------------- the peers
def autograd_gradient(s: Setup, family: str) -> Runner:
    """Plain gradient of the target logit w.r.t. the input (frozen weights)."""

    def call():
        x = s.x.detach().requires_grad_(True)
        y = s.model(x)
        (g,) = torch.autograd.grad(y.gather(1, s.target[:, None]).sum(), x)
        return g

    return Runner(call)


def liecheck_runner(s: Setup, family: str) -> Runner:
    if family not in liecheck.method_names():
        raise NotAvailable(f"'{family}' is not registered in liecheck (yet)")
    ex = s.liecheck()
    p = PARAMS.get(family, {})
    return Runner(lambda: ex.attribute(s.x, family, target=s.target, **p))


def functional_runner(s: Setup, family: str) -> Runner:
    """``liecheck.attribute(model, x, method)`` called afresh each time (the README's
    first example, as Captum / Zennit users call it in loops): it reuses the trace it
    keeps per model object, so it should run at the reused explainer's speed."""
    if family not in liecheck.method_names():
        raise NotAvailable(f"'{family}' is not registered in liecheck (yet)")
    p = PARAMS.get(family, {})
    return Runner(lambda: liecheck.attribute(s.model, s.x, family, target=s.target, **p))


def _zennit_composite(s: Setup, family: str):
    from zennit import composites as zc
    from zennit import rules as zr
    from zennit import types as zt
    from zennit.layer import Sum
    from zennit.torchvision import ResNetCanonizer, VGGCanonizer

    canon = [ResNetCanonizer()] if s.name.startswith("resnet") else [VGGCanonizer()]
    base = [(zt.Activation, zr.Pass()), (Sum, zr.Norm()), (zt.AvgPool, zr.Norm()),
            (zt.BatchNorm, zr.Pass())]
    linear = {"lrp_a1b0": lambda: zr.AlphaBeta(alpha=1.0, beta=0.0),
              "lrp_a2b1": lambda: zr.AlphaBeta(alpha=2.0, beta=1.0),
              "lrp_epsilon": lambda: zr.Epsilon(epsilon=EPSILON)}
    if family in linear:
        return zc.LayerMapComposite(base + [(zt.Convolution, linear[family]()),
                                            (torch.nn.Linear, linear[family]())],
                                    canonizers=canon)
    if family == "excitation_bp":
        return zc.ExcitationBackprop(canonizers=canon)
    if family == "guided_bp":
        return zc.GuidedBackprop(canonizers=canon)
    raise NotAvailable(f"Zennit has no '{family}' composite")


def zennit_runner(s: Setup, family: str) -> Runner:
    from zennit.attribution import Gradient

    attributor = Gradient(model=s.model, composite=_zennit_composite(s, family))
    onehot = torch.zeros(s.x.shape[0], 1000, device=s.device)
    onehot.scatter_(1, s.target[:, None], 1.0)

    def call():
        _, rel = attributor(s.x, onehot)
        return rel

    return Runner(call, enter=lambda: attributor.__enter__(),
                  exit=lambda: attributor.__exit__(None, None, None))


def captum_runner(s: Setup, family: str) -> Runner:
    from captum import attr as ca

    if family in ("lrp_a1b0", "lrp_epsilon"):
        from captum.attr._utils.lrp_rules import Alpha1_Beta0_Rule, EpsilonRule

        layers = [m for m in s.model.modules()
                  if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        make = (Alpha1_Beta0_Rule if family == "lrp_a1b0"
                else lambda: EpsilonRule(epsilon=EPSILON))

        def enter():
            for m in layers:
                m.rule = make()

        def exit():
            for m in layers:
                m.__dict__.pop("rule", None)

        lrp = ca.LRP(s.model)
        return Runner(lambda: lrp.attribute(s.x, target=s.target), enter, exit)
    if family == "guided_bp":
        gbp = ca.GuidedBackprop(s.model)
        return Runner(lambda: gbp.attribute(s.x, target=s.target))
    if family == "deeplift_rescale":
        dl = ca.DeepLift(s.model)
        return Runner(lambda: dl.attribute(s.x, baselines=torch.zeros_like(s.x),
                                           target=s.target))
    if family == "integrated_gradients":
        ig = ca.IntegratedGradients(s.model)
        steps = _liecheck_steps()
        return Runner(lambda: ig.attribute(s.x, baselines=torch.zeros_like(s.x),
                                           target=s.target, n_steps=steps))
    raise NotAvailable(f"Captum has no '{family}' equivalent (no alpha-beta(2,1) or "
                       f"Excitation BP rule)")


def _lxt_patch() -> list:
    """LXT's default map for torchvision ViT (it patches torch.nn classes and Zennit's
    hooks globally); returns what :func:`_lxt_restore` puts back."""
    from lxt.efficient import monkey_patch, monkey_patch_zennit
    from torchvision.models import vision_transformer
    from zennit.core import BasicHook

    nn = torch.nn
    saved = [(cls, name, cls.__dict__.get(name)) for cls, name in (
        (nn.GELU, "forward"), (nn.GELU, "original_forward"), (nn.LayerNorm, "forward"),
        (nn.MultiheadAttention, "forward"), (nn.MultiheadAttention, "original_forward"),
        (BasicHook, "forward"), (BasicHook, "backward"))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monkey_patch(vision_transformer)
        monkey_patch_zennit()
    return saved


def _lxt_restore(saved: list) -> None:
    for cls, name, value in saved:
        if value is None:
            if name in cls.__dict__:
                delattr(cls, name)
        else:
            setattr(cls, name, value)


def lxt_runner(s: Setup, family: str) -> Runner:
    """LXT 2.1 (``lxt.efficient``): gradient x input with its patches and Zennit's Gamma
    on Conv2d and Linear (LXT's ViT example); patched only while its case runs."""
    if family != "cp_lrp_gamma" or not s.name.startswith("vit_"):
        raise NotAvailable("LXT's default map covers torchvision ViT (cp_lrp_gamma) only")
    from zennit.composites import LayerMapComposite
    from zennit.rules import Gamma

    p = PARAMS[family]
    comp = LayerMapComposite([(torch.nn.Conv2d, Gamma(p["gamma_conv"])),
                              (torch.nn.Linear, Gamma(p["gamma_linear"]))])
    state: dict = {}

    def enter():
        state["saved"] = _lxt_patch()
        comp.register(s.model)

    def exit():
        comp.remove()
        _lxt_restore(state.pop("saved"))

    def call():
        x = s.x.detach().requires_grad_(True)
        y = s.model(x)
        (g,) = torch.autograd.grad(y.gather(1, s.target[:, None]).sum(), x)
        return x.detach() * g

    return Runner(call, enter, exit)


def _liecheck_steps(default: int = 50) -> int:
    """Match Captum's IG steps to liecheck's default (if it is registered)."""
    if "integrated_gradients" not in liecheck.method_names():
        return default
    params = liecheck.get_method("integrated_gradients").params
    for k in ("steps", "n_steps", "ig_steps"):
        if k in params:
            return int(params[k])
    return default


class NotAvailable(Exception):
    """The peer has no equivalent of this method: a skip, not a failure."""


BUILDERS = {"autograd": autograd_gradient, "liecheck": liecheck_runner,
            "functional": functional_runner, "zennit": zennit_runner, "captum": captum_runner,
            "lxt": lxt_runner}


def cases(families: list[str], peers: list[str]) -> list[tuple[str, str]]:
    """(family, peer) pairs to run; the gradient is always autograd's."""
    out = []
    for fam in families:
        if fam == "gradient":
            if "autograd" in peers:
                out.append((fam, "autograd"))
            continue
        out += [(fam, p) for p in peers if p != "autograd"]
    return out


# ------------------------------------------------------------------ measuring
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_kib(field_name: str = "VmRSS") -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field_name}:\s+(\d+)", f.read()).group(1))


def measure_memory(s: Setup, family: str, peer: str) -> dict:
    """Memory of one case in MiB; meant to run in a fresh process (see the module doc).

    ``setup``: held after building the runner (liecheck: the traced copy of the
    model); ``first``: peak of the first call above the state before it (includes
    caches built on first use, e.g. liecheck's W+ / W- splits); ``cache``: what the
    first call left behind; ``peak``: peak of a second call above the state before
    it (the steady working memory of explaining one more batch).
    """
    cuda = s.device.type == "cuda"

    def now() -> int:
        return torch.cuda.memory_allocated(s.device) if cuda else _rss_kib() * 1024

    def reset() -> int:
        _sync(s.device)
        if cuda:
            torch.cuda.reset_peak_memory_stats(s.device)
        else:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current resident set
        return now()

    def high_water() -> int:
        _sync(s.device)
        return torch.cuda.max_memory_allocated(s.device) if cuda else _rss_kib("VmHWM") * 1024

    before = now()
    runner = BUILDERS[peer](s, family)
    setup = now() - before
    with runner.active():
        base = reset()
        runner.call()
        first = high_water() - base
        base2 = reset()
        runner.call()
        peak = high_water() - base2
    mib = 2.0 ** 20
    return {"setup_mib": setup / mib, "first_mib": first / mib,
            "cache_mib": (base2 - base) / mib, "peak_mib": peak / mib}


# glibc returns every allocation above 64 KiB to the kernel when it is freed (a fixed
# mmap threshold switches off its dynamic growth), so the resident set follows the
# live tensors instead of what malloc keeps around from earlier calls
_CHILD_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def memory_in_subprocess(args, model: str, family: str, peer: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_memory-child", model, family, peer,
           "--device", args.device, "--batch", str(args.batch), "--seed", str(args.seed),
           "--threads", str(torch.get_num_threads())]
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=args.child_timeout,
                       env={**os.environ, **_CHILD_ENV})
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return {"mem_error": tail[:200]}
    return json.loads(lines[-1])


@dataclass
class Row:
    model: str
    family: str
    peer: str
    times: list[float] = field(default_factory=list)
    error: str = ""
    corr: float | None = None
    setup_mib: float | None = None
    first_mib: float | None = None
    held_mib: float | None = None
    peak_mib: float | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    @property
    def spread(self) -> float | None:
        if len(self.times) < 2:
            return None
        return (max(self.times) - min(self.times)) / self.median


def per_sample_corr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Median over samples of the Pearson correlation of two attribution maps."""
    a = a.detach().double().flatten(1).cpu()
    b = b.detach().double().flatten(1).cpu()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    c = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-300)
    return float(c.median())


def run_model(args, name: str) -> list[Row]:
    device = torch.device(args.device)
    s = make_setup(name, args.batch, device, args.seed)
    rows, runners, outputs = [], {}, {}
    for fam, peer in cases(args.methods, args.peers):
        row = Row(name, fam, peer)
        rows.append(row)
        try:
            runners[(fam, peer)] = BUILDERS[peer](s, fam)
        except NotAvailable as exc:
            row.error = f"n/a: {exc}"
        except Exception as exc:  # noqa: BLE001  (a peer failing is a result)
            row.error = _short(exc)
    for key, runner in list(runners.items()):  # warm-up (also checks the case works)
        row = next(r for r in rows if (r.family, r.peer) == key)
        try:
            with runner.active():
                for _ in range(max(args.warmup, 1)):
                    out = runner.call()
                    _sync(device)
            outputs[key] = out.detach()
        except Exception as exc:  # noqa: BLE001
            row.error = _short(exc)
            if args.verbose:
                traceback.print_exc()
            del runners[key]
    for (fam, peer), out in outputs.items():
        ref = outputs.get((fam, "liecheck"))
        if peer != "liecheck" and ref is not None:
            next(r for r in rows if (r.family, r.peer) == (fam, peer)).corr = \
                per_sample_corr(out, ref)
    outputs.clear()
    order = list(runners)
    for rep in range(args.repeats):
        k = rep % max(len(order), 1)
        for key in order[k:] + order[:k]:
            row = next(r for r in rows if (r.family, r.peer) == key)
            with runners[key].active():
                _sync(device)
                t0 = CLOCK()
                out = runners[key].call()
                _sync(device)
                row.times.append(CLOCK() - t0)
            del out
        if args.verbose:
            print(f"  {name}: repeat {rep + 1}/{args.repeats} done", file=sys.stderr)
    del runners, s
    if args.memory:
        for row in rows:
            if row.error:
                continue
            m = memory_in_subprocess(args, name, row.family, row.peer)
            row.setup_mib, row.first_mib = m.get("setup_mib"), m.get("first_mib")
            row.peak_mib, row.held_mib = m.get("peak_mib"), m.get("cache_mib")
            if "mem_error" in m:
                row.error = "memory run failed: " + m["mem_error"]
    return rows


def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0][:160] if msg else ''}"


# ------------------------------------------------------------------- report
def table(rows: list[Row], batch: int) -> list[dict]:
    """Rows with throughput and the ratios to the gradient and to the peers."""
    out = []
    by = {(r.model, r.family, r.peer): r for r in rows}
    for r in rows:
        grad = by.get((r.model, "gradient", "autograd"))
        t = r.median
        d = {"model": r.model, "method": r.family, "peer": r.peer,
             "ms_per_batch": _fmt(t and 1e3 * t, 1), "img_per_s": _fmt(t and batch / t, 2),
             "spread_pct": _fmt(r.spread is not None and 100 * r.spread, 0),
             "x_grad_speed": "", "peak_mib": _fmt(r.peak_mib, 0), "x_grad_mem": "",
             "first_mib": _fmt(r.first_mib, 0), "held_mib": _fmt(r.held_mib, 0),
             "setup_mib": _fmt(r.setup_mib, 0),
             "lc_vs_zennit": "", "lc_vs_captum": "", "lc_vs_lxt": "", "fn_vs_reused": "",
             "corr_vs_lc": _fmt(r.corr, 3), "error": r.error}
        if grad is not None and grad.median and t:
            d["x_grad_speed"] = _fmt(grad.median / t, 2)
        if grad is not None and grad.peak_mib and r.peak_mib is not None:
            d["x_grad_mem"] = _fmt(r.peak_mib / grad.peak_mib, 2)
        reused = by.get((r.model, r.family, "liecheck"))
        if r.peer == "functional" and t and reused is not None and reused.median:
            d["fn_vs_reused"] = _fmt(reused.median / t, 2)  # throughput ratio
        if r.peer == "liecheck" and t:
            for peer in ("zennit", "captum", "lxt"):
                p = by.get((r.model, r.family, peer))
                if p is not None and p.median:
                    d[f"lc_vs_{peer}"] = _fmt(p.median / t, 2)
        out.append(d)
    return out


def _fmt(v, digits: int) -> str:
    if v is None or v is False:
        return ""
    return f"{v:.{digits}f}"


COLUMNS = [("model", "model"), ("method", "method"), ("peer", "peer"),
           ("ms_per_batch", "ms/batch"), ("img_per_s", "img/s"), ("spread_pct", "spread%"),
           ("x_grad_speed", "speed/grad"), ("peak_mib", "peak MiB"), ("x_grad_mem", "mem/grad"),
           ("first_mib", "1st-call MiB"), ("held_mib", "held MiB"), ("setup_mib", "setup MiB"),
           ("lc_vs_zennit", "lc/zennit"),
           ("lc_vs_captum", "lc/captum"), ("lc_vs_lxt", "lc/lxt"), ("fn_vs_reused", "fn/reused"),
           ("corr_vs_lc", "corr(lc)"), ("error", "note")]


def print_table(recs: list[dict]) -> None:
    heads = [h for _, h in COLUMNS]
    body = [[rec[k] for k, _ in COLUMNS] for rec in recs]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
              for i, h in enumerate(heads)]
    widths[-1] = len(heads[-1])
    print("| " + " | ".join(h.ljust(w) for h, w in zip(heads, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for b in body:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(b, widths)) + " |")


# ---------------------------------------------------------------------- main
def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (one device per run)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--models", default="vgg16,resnet50",
                   help="comma-separated torchvision model names (random init)")
    p.add_argument("--methods", default=",".join(FAMILIES),
                   help=f"comma-separated subset of {','.join(FAMILIES)}")
    p.add_argument("--peers", default=",".join(PEERS), help=f"subset of {','.join(PEERS)}")
    p.add_argument("--repeats", type=int, default=5, help="timed calls per case (median)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls per case first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-memory", dest="memory", action="store_false",
                   help="skip the per-case memory subprocesses")
    p.add_argument("--child-timeout", type=int, default=600)
    p.add_argument("--out", default=None, help="write the table as CSV here")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: wall-clock time; cpu: this process's CPU time with one torch "
                        "thread (ratios robust to other jobs on a shared machine)")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--_memory-child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.methods = [m for m in args.methods.split(",") if m]
    args.peers = [m for m in args.peers.split(",") if m]
    for m in args.methods:
        if m not in FAMILIES:
            p.error(f"unknown method '{m}'; choose from {', '.join(FAMILIES)}")
    for m in args.peers:
        if m not in PEERS:
            p.error(f"unknown peer '{m}'; choose from {', '.join(PEERS)}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda but torch.cuda.is_available() is False")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    warnings.filterwarnings("ignore", module="captum")  # 'input did not require grad' etc.
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        global CLOCK
        CLOCK = time.process_time
        torch.set_num_threads(1)
    if args._memory_child:
        model, fam, peer = args._memory_child
        s = make_setup(model, args.batch, torch.device(args.device), args.seed)
        print(json.dumps(measure_memory(s, fam, peer)))
        return 0
    for fam in ("deeplift_rescale", "integrated_gradients"):
        if fam in args.methods and fam not in liecheck.method_names():
            print(f"note: liecheck has no '{fam}' registered; its liecheck row is skipped",
                  file=sys.stderr)
    print(f"# torch {torch.__version__}, device {args.device}, threads "
          f"{torch.get_num_threads()}, batch {args.batch}, repeats {args.repeats} "
          f"(median), warmup {args.warmup}")
    rows: list[Row] = []
    for name in [m for m in args.models.split(",") if m]:
        rows += run_model(args, name)
    recs = table(rows, args.batch)
    print_table(recs)
    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=[k for k, _ in COLUMNS])
            w.writeheader()
            w.writerows(recs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
