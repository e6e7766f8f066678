"""Cost of the per-image medians CSC's pooling keeps since issue 24 (the bootstrap interval
over images): ``pool_values`` of an older commit against the current one, on the same
relevance of VGG-16's conv1 record at 224 px (2 images x 5 vectors, 64 channels) and of
a deep record (512 x 14 x 14). Checks that the pooled values are identical.

    python benchmarks/csc_pool_overhead.py --old 2ed81d0
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from liecheck.metrics import csc_setup as new


def load_old(commit: str):
    src = subprocess.run(["git", "show", f"{commit}:src/liecheck/metrics/csc_setup.py"],
                         check=True, capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    path = Path(tempfile.mkdtemp()) / "old_csc_setup.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("liecheck.metrics.old_csc_setup", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", default="2ed81d0")
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    old = load_old(a.old)
    torch.manual_seed(0)
    for shape in [(10, 64, 224, 224), (10, 512, 14, 14)]:
        out = {"r": torch.randn(*shape)}
        best, values = {}, {}
        for name, mod in (("old", old), ("new", new)):
            ts = []
            for _ in range(a.repeats):
                pooled: dict = {}
                t = time.perf_counter()
                mod.pool_values(pooled, "s", ["r"], out, 5)
                ts.append(time.perf_counter() - t)
            best[name], values[name] = min(ts), pooled[("s", "r")][0]
        print(f"record {shape}: old {best['old'] * 1e3:.1f} ms, new {best['new'] * 1e3:.1f} ms "
              f"(new / old {best['new'] / best['old']:.2f}); values identical: "
              f"{np.array_equal(values['old'], values['new'])}")


if __name__ == "__main__":
    main()
