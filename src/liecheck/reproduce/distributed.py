"""Sharing a run among the processes of a ``torchrun`` launch (``torch.distributed``).

``torchrun --nproc_per_node=N -m liecheck reproduce --out DIR ...`` starts N copies
of the command with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set. Each rank
takes its share of the run's units (:func:`share`, a function of the units alone,
so the same on every rank), runs on its own GPU (``cuda:LOCAL_RANK``) when the run's
device is CUDA, and writes its finished units into the run store. Rank 0 holds the
run directory's lock, waits at a barrier for the others, then merges and writes
the summary and the report. The control messages (the barrier, rank 0's go-ahead)
use a ``gloo`` group, also next to ``nccl`` on GPUs: gloo notices at once when a
peer's connection drops, so a rank that dies stops the others instead of hanging.

Each rank records its state in ``RUN_DIR/ranks/<rank>.json`` (running, done or
failed, with its error, timings and skipped parts); rank 0 reads them to name a
rank that failed and to merge the timings into the manifest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from ..store import read_json, write_json


@dataclass
class Ranks:
    """This process's place in the launch (``world == 1``: not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    group: object = None            # the gloo process group for control messages

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def from_env(device: str) -> tuple[Ranks, str]:
    """Join the process group that torchrun describes in the environment, if any.

    Returns the ranks and the device this rank computes on (``cuda:LOCAL_RANK``
    for a CUDA run). The timeout of control messages is ``LIECHECK_DIST_TIMEOUT``
    seconds (default one week: a rank may wait long for the others' shares).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks(), device
    import torch
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "gloo"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda: no CUDA device is available; use --device cpu")
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} "
                               "GPUs on this node; launch at most one process per GPU")
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
        backend = "nccl"
    timeout = timedelta(seconds=float(os.environ.get("LIECHECK_DIST_TIMEOUT", 7 * 24 * 3600)))
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timeout)
    group = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None
    return Ranks(rank, world, local, group), device


def close(ranks: Ranks) -> None:
    """Leave the process group (if this run joined one)."""
    if ranks.active:
        import torch.distributed as dist
        if dist.is_initialized():
            dist.destroy_process_group()


def share(costs: list[float], world: int) -> list[list[int]]:
    """Unit indices per rank: the largest units first, each to the least loaded rank
    (ties to the lowest rank). Depends only on ``costs`` and ``world``."""
    load = [0.0] * world
    out: list[list[int]] = [[] for _ in range(world)]
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        r = min(range(world), key=lambda r: (load[r], r))
        out[r].append(i)
        load[r] += costs[i]
    return [sorted(o) for o in out]


def broadcast(ranks: Ranks, obj):
    """Rank 0's ``obj`` on every rank."""
    if not ranks.active:
        return obj
    import torch.distributed as dist
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=ranks.group)
    return box[0]


def rank_file(root: Path, rank: int) -> Path:
    return Path(root) / "ranks" / f"{rank}.json"


def record(root: Path, ranks: Ranks, **state) -> None:
    """Write this rank's state file (atomically)."""
    write_json(rank_file(root, ranks.rank), {"rank": ranks.rank, "pid": os.getpid(), **state})


def states(root: Path, world: int) -> dict[int, dict]:
    """The state files of ranks ``0 ... world-1`` (missing ones omitted)."""
    out = {}
    for r in range(world):
        p = rank_file(root, r)
        if p.exists():
            try:
                out[r] = read_json(p)
            except ValueError:
                out[r] = {"state": "unreadable state file"}
    return out


def not_done(root: Path, world: int, me: int | None = None) -> str:
    """One sentence naming the ranks (other than ``me``) that did not finish, with
    their errors."""
    st = states(root, world)
    parts = []
    for r in range(world):
        s = st.get(r, {})
        if s.get("state") == "done" or r == me:
            continue
        what = s.get("error") or ("killed or crashed without a message" if s else "never started")
        parts.append(f"rank {r} (pid {s.get('pid', '?')}): {s.get('state', 'missing')}, {what}")
    return "; ".join(parts) if parts else "every rank finished"


def barrier(ranks: Ranks, root: Path, what: str) -> None:
    """Wait for every rank; if a peer is gone, raise naming the ranks that did not
    finish (from their state files)."""
    if not ranks.active:
        return
    import torch.distributed as dist
    try:
        dist.barrier(group=ranks.group)
    except Exception as exc:  # noqa: BLE001 - gloo raises RuntimeError/DistBackendError
        raise RuntimeError(f"rank {ranks.rank} stopped waiting {what}: another rank is gone "
                           f"({not_done(root, ranks.world, ranks.rank)}); gloo: "
                           f"{str(exc).splitlines()[0]}") from None


def summary(root: Path, world: int) -> dict:
    """Timings and skipped parts of every rank, merged (for the manifest)."""
    timings, skipped = {}, []
    for _, s in sorted(states(root, world).items()):
        timings.update(s.get("timings", {}))
        skipped += s.get("skipped", [])
    return {"timings": timings, "skipped": skipped}


def clear(root: Path) -> None:
    """Remove the state files of an earlier launch."""
    d = Path(root) / "ranks"
    if d.exists():
        for p in d.glob("*.json"):
            p.unlink(missing_ok=True)


__all__ = ["Ranks", "barrier", "broadcast", "clear", "close", "from_env", "not_done", "record",
           "share", "states", "summary"]
