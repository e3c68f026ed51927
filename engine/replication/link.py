"""The replication link between two places: bandwidth and state. Pure arithmetic."""

LINK_STATES = ("up", "down", "lossy")
# A lossy link retransmits: about half its bandwidth carries new data.
LOSSY_GOODPUT = 0.5


def bytes_per_second(mbps: float, state: str) -> float:
    if state == "down":
        return 0.0
    rate = mbps * 1_000_000 / 8
    return rate * LOSSY_GOODPUT if state == "lossy" else rate


def transfer_seconds(wire_bytes: int, mbps: float, state: str = "up") -> float | None:
    rate = bytes_per_second(mbps, state)
    return wire_bytes / rate if rate else None
