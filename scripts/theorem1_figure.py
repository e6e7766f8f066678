"""Figure for docs/theory.md: 1 - s_n against n, Theorem 1's counterexample J against a
strictly positive chain.

    python scripts/theorem1_figure.py [--out docs/img/theorem1_convergence.png]

Left (log y): J = [[1, 1], [0, 1]] repeated (every condition of Theorem 1 holds, paper
lambda = 1/4) with the paper's eq.-36 claim (3/4)^n, and P = [[1, 1], [0.1, 1]]
repeated (strictly positive) with the Birkhoff-Hopf bound. Right (log-log): J up to
n = 1000 against 1 / (2 n^2). All values from liecheck.theory.theorem1 (float64).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from liecheck.theory import theorem1  # noqa: E402
from liecheck.theory.theorem import J_COUNTEREXAMPLE  # noqa: E402

FLOOR = 1e-16


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/img/theorem1_convergence.png")
    args = ap.parse_args()
    p = np.array([[1.0, 1.0], [0.1, 1.0]])
    n_short, n_long = 60, 1000
    dj = theorem1([J_COUNTEREXAMPLE] * n_long)
    dp = theorem1([p] * n_short)
    n = np.arange(1, n_short + 1)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.semilogy(n, dj["one_minus_s"][1:n_short + 1], "C0-", label="J: measured 1 - s_n")
    a.semilogy(n, 1 - dj["bound_paper"][1:n_short + 1], "C0--",
               label="J: eq. 36 claims <= (3/4)^n (false for n >= 25)")
    a.semilogy(n, np.maximum(dp["one_minus_s"][1:], FLOOR), "C1-",
               label="P = [[1, 1], [0.1, 1]]: measured")
    a.semilogy(n, np.maximum(1 - dp["bound_global"][1:], FLOOR), "C1:",
               label="P: Birkhoff-Hopf bound (valid)")
    a.axvline(25, color="0.6", lw=0.8)
    a.set_xlabel("n (matrices multiplied)")
    a.set_ylabel("1 - s_n")
    a.set_ylim(FLOOR / 2, 2)
    a.set_title("polynomial (J) vs exponential (P)", fontsize=10)
    a.legend(fontsize=7, loc="lower left")
    nl = np.arange(1, n_long + 1)
    b.loglog(nl, dj["one_minus_s"][1:], "C0-", label="J: measured 1 - s_n")
    b.loglog(nl, 1 / (2 * nl ** 2.0), "k:", label="1 / (2 n^2)")
    b.loglog(nl, 1 - dj["bound_exact"][1:], "C2--",
             label="1 - bound_exact (valid, column norms)")
    b.set_xlabel("n")
    b.set_title("J: 1 - s_n ~ 1 / (2 n^2)", fontsize=10)
    b.legend(fontsize=7)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"written {out}")
    print(f"J: 1 - s_25 = {dj['one_minus_s'][25]:.3e} > (3/4)^25 = {0.75 ** 25:.3e}; "
          f"2 n^2 (1 - s_n) at n = 1000: {2e6 * dj['one_minus_s'][n_long]:.5f}")
    k = int(np.argmax(dp["one_minus_s"].to_numpy() < 1e-12))
    print(f"P: 1 - s_n < 1e-12 from n = {k}; fitted rate per step "
          f"{-np.polyfit(np.arange(1, 11), np.log(dp['one_minus_s'][1:11]), 1)[0]:.3f}")


if __name__ == "__main__":
    main()
