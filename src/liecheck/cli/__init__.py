"""The ``liecheck`` command line.

Each subcommand lives in its own module of this package, which defines
``register(subparsers)``; the module list is :data:`COMMAND_MODULES`.
Bad input gives a one-line error (exit code 2), not a traceback; set
``LIECHECK_DEBUG=1`` to see the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMAND_MODULES = ["explain", "faithfulness", "theory", "reproduce", "audit",
                   "groundtruth", "zoo", "check"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liecheck",
        description="Modified-BP attributions and the tests that show whether they are "
                    "faithful (Sixt et al., ICML 2020).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from ..allocator import keep_freed_memory

    keep_freed_memory()         # no page-fault tax on the walks' large tensors
    plt = sys.modules.get("matplotlib.pyplot")
    before = set(plt.get_fignums()) if plt else set()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; results written so far are kept", file=sys.stderr)
        return 130
    except (ValueError, KeyError, TypeError, FileNotFoundError, RuntimeError, OSError) as exc:
        if os.environ.get("LIECHECK_DEBUG"):
            raise
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"liecheck: error: {msg}", file=sys.stderr)
        return 2
    finally:                    # close the figures this command drew (they are saved)
        plt = sys.modules.get("matplotlib.pyplot")
        for num in (set(plt.get_fignums()) - before) if plt else ():
            plt.close(num)


if __name__ == "__main__":
    sys.exit(main())
