"""The resumable, rank- and worker-sharded stream that every clip dataset builds on.

A subclass names its work units (``_units``) and turns one unit into samples (``_process``,
yielding :class:`Outcome`); this base deals units to ranks and DataLoader workers, shuffles them
per epoch, counts skips and keeps the resume position.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..errors import UserError


class SkippedVideoWarning(UserWarning):
    """Emitted once per unreadable / too-short video that a dataset skips (per process)."""


@dataclass
class Outcome:
    member: int  # index inside the unit (0 for single-video units)
    source: str
    sample: dict[str, Any] | None  # None = skipped
    reason: str = ""


class ResumableStream(IterableDataset):
    """Shared machinery: per-epoch shuffle, rank/worker split, resume position, skip counting.

    Work *units* (a video, a tar shard, a cached video) are permuted each epoch with
    ``rng([seed, epoch])`` (identical on every rank), dealt round-robin to ranks, then to DataLoader
    workers. If there are fewer units than ranks or workers the list is repeated so nobody idles.
    Each sample's randomness comes from ``rng([seed, epoch, unit_position, member])``, so the clips
    do not depend on the number of workers, only their order does.

    Position ``(epoch, index, member)``: ``index`` counts this rank's units in epoch order; worker
    ``w`` of ``n`` handles the indices ``w, w + n, ...`` and keeps its own position (its epochs roll
    over on their own). Resume is exact with or without DataLoader workers (see :meth:`observe`).

    Skips: every sample carries ``skipped`` (skip events since this worker's previous sample) and
    ``skipped_sources`` (the sources this worker skipped for the first time since then, joined by
    newlines), so a consumer can count distinct bad videos across workers, epochs and ranks.
    """

    def __init__(self, seed: int, rank: int, world_size: int, loop: bool, shuffle: bool = True):
        super().__init__()
        if not (0 <= rank < world_size):
            raise ValueError(f"need 0 <= rank < world_size, got {rank=}, {world_size=}")
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.loop, self.shuffle = bool(loop), bool(shuffle)
        self._positions: list[tuple[int, int, int]] = [(0, 0, 0)]  # per logical worker
        self._next_worker = 0  # the logical worker whose batch comes next
        self.skipped_total = 0  # skip events, in this process only (a bad video is skipped every epoch)
        self.skipped_sources: set[str] = set()  # distinct skipped sources, in this process only

    # -- subclass hooks
    def _units(self) -> list[Any]:
        raise NotImplementedError

    def _process(self, unit: Any, epoch: int, gpos: int, first_member: int) -> Iterator[Outcome]:
        raise NotImplementedError

    def _describe(self) -> str:
        return f"{len(self._units())} sources"

    # -- plan
    def _rank_plan(self, epoch: int, num_workers: int = 1) -> list[int]:
        """Global positions handled by this rank, in order (position ``p`` -> unit ``p mod n``).

        With fewer units than ranks x workers the list is repeated with shifted positions, so each
        copy draws a different clip from the same unit.
        """
        n = len(self._units())
        ws = self.world_size
        total = -(-max(n, ws) // ws) * ws  # rounded up to a multiple of world_size
        plan = list(range(self.rank, max(n, ws), ws))
        reps = -(-num_workers // len(plan))
        return [g + r * total for r in range(reps) for g in plan]

    def _epoch_order(self, epoch: int) -> np.ndarray:
        """Permutation of the unit list for ``epoch`` (cached: one per epoch)."""
        cached = getattr(self, "_order_cache", None)
        if cached is not None and cached[0] == epoch:
            return cached[1]
        n = len(self._units())
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(n)
        else:
            order = np.arange(n)
        self._order_cache = (epoch, order)
        return order

    def _unit_at(self, epoch: int, gpos: int) -> Any:
        order = self._epoch_order(epoch)
        return self._units()[int(order[gpos % len(order)])]

    # -- resume
    def state_dict(self) -> dict[str, Any]:
        """Data position: each logical worker's ``workers`` position and the ``next_worker`` due.

        ``epoch/index/member`` is the furthest of them (what older versions saved).
        """
        epoch, index, member = max(self._positions)
        return {"epoch": epoch, "index": index, "member": member, "seed": self.seed,
                "workers": [list(p) for p in self._positions], "next_worker": self._next_worker}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a position saved by :meth:`state_dict` (before creating the DataLoader)."""
        if int(state.get("seed", self.seed)) != self.seed:
            warnings.warn(f"data seed changed ({state['seed']} -> {self.seed}); order will differ")
        furthest = [state["epoch"], state["index"], state.get("member", 0)]
        self._positions = [tuple(int(v) for v in p) for p in state.get("workers", [furthest])]
        self._next_worker = int(state.get("next_worker", 0))

    def observe(self, batch: dict[str, Any]) -> None:
        """Record a consumed (collated) batch; call it on every batch taken from a DataLoader.

        Each sample's ``data_pos`` is its worker's position after it, then that (logical) worker
        and the number of workers. A DataLoader takes whole batches from its workers in turn
        (0, 1, ..., n-1, 0, ...), so the batch's last sample tells where its worker goes on and
        that the next worker is due. On resume each worker starts from its own position and the
        due one makes the first batch: the clips that workers had prefetched are not lost.
        """
        *pos, worker, num_workers = torch.as_tensor(batch["data_pos"]).reshape(-1, 5)[-1].tolist()
        self._adopt(num_workers, warn=True)
        self._positions[worker] = tuple(pos)
        self._next_worker = (worker + 1) % num_workers

    def _adopt(self, num_workers: int, warn: bool) -> None:
        """Fit the saved positions to ``num_workers``.

        Positions saved for another number of workers (or by a version without per-worker
        positions) cannot be split: every worker then starts after the furthest consumed sample.
        """
        if len(self._positions) == num_workers:
            return
        furthest = max(self._positions)
        if warn and furthest > (0, 0, 0):
            warnings.warn("the data position was saved for another number of DataLoader workers: "
                          "resuming after the furthest consumed clip (clips prefetched by others are skipped)")
        self._positions, self._next_worker = [furthest] * num_workers, 0

    # -- iteration
    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        num_workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        self._adopt(num_workers, warn=info is None)  # in a worker process, observe() warns instead
        worker = (worker + self._next_worker) % num_workers  # logical: the due one makes the first batch
        epoch, index, member = self._positions[worker]
        pending_skips, pending_sources = 0, []
        while True:
            plan = self._rank_plan(epoch, num_workers)  # rank-local index -> global position
            mine = range(worker, len(plan), num_workers)
            whole_epoch = index == 0 and member == 0
            attempted = yielded = 0
            for local in mine:
                if local < index:
                    continue
                gpos = plan[local]
                unit = self._unit_at(epoch, gpos)
                first = member if local == index else 0
                for out in self._process(unit, epoch, gpos, first):
                    attempted += 1
                    self._positions[worker] = (epoch, local, out.member + 1)
                    if out.sample is None:
                        pending_skips += 1
                        self.skipped_total += 1
                        if out.source not in self.skipped_sources:
                            self.skipped_sources.add(out.source)
                            pending_sources.append(out.source)
                            warnings.warn(f"skipping {out.source}: {out.reason}", SkippedVideoWarning)
                        continue
                    yielded += 1
                    sample = out.sample
                    sample["skipped"] = pending_skips
                    sample["skipped_sources"] = "\n".join(pending_sources)
                    sample["data_pos"] = torch.tensor([epoch, local, out.member + 1, worker, num_workers])
                    pending_skips, pending_sources = 0, []
                    yield sample
                self._positions[worker] = (epoch, local + 1, 0)
            if yielded == 0 and whole_epoch:
                if attempted > 0:
                    self._no_usable_units(epoch, num_workers, worker)
                    return  # this worker's share is all bad; the others continue
                raise UserError(f"no videos found in {self._describe()}; check the sources")
            epoch, index, member = epoch + 1, 0, 0
            self._positions[worker] = (epoch, 0, 0)
            if not self.loop:
                return

    def _no_usable_units(self, epoch: int, num_workers: int, worker: int) -> None:
        """Raise if no unit of the whole epoch is usable; else warn that this worker stops."""
        message = (
            f"no usable video in {self._describe()}: every file was skipped (corrupt, audio-only, "
            f"or too short for the clip); check the data, or lower num_frames / dt_min"
        )
        if num_workers * self.world_size == 1:
            raise UserError(message)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for gpos in range(len(self._units())):
                unit = self._unit_at(epoch, gpos)
                if any(o.sample is not None for o in self._process(unit, epoch, gpos, 0)):
                    warnings.warn(
                        f"rank {self.rank} worker {worker}: all its videos this epoch are "
                        f"unusable; it stops and the other workers continue",
                        SkippedVideoWarning,
                    )
                    return
        raise UserError(message)


# ----------------------------------------------------------------------------- video clips


