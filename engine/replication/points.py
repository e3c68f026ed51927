"""Recovery-point retention (seed 004): pure.

The latest point is always kept. Within the last hour every point is kept (60 / copy frequency of
them; with continuous replication, one every 5 minutes). Older points are thinned to one per clock hour — the app-consistent one of that hour if
there is one, else the latest — and kept up to the retention. Retention 0 keeps only the latest.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PointInfo:
    id: int
    time: int
    app: bool


def points_to_keep(points: list[PointInfo], now: int, retention_h: int, every: int = 0) -> set[int]:
    """`every` (continuous replication): within the last hour keep only the first point of each
    `every` seconds (a crash-consistent point every 5 minutes) and the app-consistent ones; the
    batches between are folded into the next kept point."""
    if not points:
        return set()
    ordered = sorted(points, key=lambda p: (p.time, p.id))
    keep = {ordered[-1].id}
    if retention_h == 0:
        return keep
    horizon = now - retention_h * 3600
    recent = now - 3600
    hourly: dict[int, PointInfo] = {}
    buckets: set[int] = set()
    for p in ordered:
        if p.time > recent:
            if not every or p.app or p.time // every not in buckets:
                keep.add(p.id)
            buckets.add(p.time // every if every else 0)
        elif p.time >= horizon:
            best = hourly.get(p.time // 3600)
            # Later points replace earlier ones, but never an app-consistent one by a crash one.
            if best is None or p.app or not best.app:
                hourly[p.time // 3600] = p
    keep |= {p.id for p in hourly.values()}
    return keep
