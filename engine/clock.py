"""Lab time: integer seconds since the Unix epoch, stored in the lab, moved only on demand."""

import re
from datetime import datetime, timezone

from .errors import InvalidInput

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+)([smhd])")

# The range of lab time srlab supports: a lab starts between these (site file, lab.start) and
# its clock never passes LAB_TIME_MAX (Lab.run refuses to); every date shown stays a real date.
LAB_START_MIN = 0  # 1970-01-01T00:00:00Z
LAB_START_MAX = 4102444800  # 2100-01-01T00:00:00Z
LAB_TIME_MAX = 7258118400  # 2200-01-01T00:00:00Z
DURATION_MAX = 100 * 365 * 86400  # one `run`: at most 100 years (36500d)


def parse_duration(text: str) -> int:
    """'90s', '15m', '2h', '1d', '1h30m' -> seconds."""
    s = text.strip().lower()
    parts = _DURATION.findall(s) if len(s) <= 100 else []
    if not s or "".join(n + u for n, u in parts) != s:
        raise InvalidInput(
            f"bad duration {text[:40]!r}",
            "write a number and a unit: 90s, 15m, 2h, 1d (or combined, 1h30m)",
        )
    if any(len(n.lstrip("0")) > 12 for n, _ in parts) or sum(int(n) * _UNITS[u] for n, u in parts) > DURATION_MAX:
        raise InvalidInput(f"duration {text[:40]!r} is too long", f"give at most {DURATION_MAX // 86400}d (100 years)")
    return sum(int(n) * _UNITS[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """Short human form: 45s, 12m 05s, 3h 02m, 2d 04h."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def format_time(epoch: int | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def to_epoch(value) -> int:
    """A TOML datetime (aware or naive, naive = UTC) -> epoch seconds."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp())


def parse_lab_time(text: str, now: int) -> int:
    """A lab time from the user: 'YYYY-MM-DD HH:MM[:SS]' (UTC), 'HH:MM[:SS]' (on the lab's
    current day), or a duration meaning that long before now ('2h')."""
    text = text.strip()
    if _DURATION.fullmatch(text) or re.fullmatch(r"(\d+[smhd])+", text):
        return now - parse_duration(text)
    day = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%d")
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        for candidate in (text, f"{day} {text}"):
            try:
                return int(datetime.strptime(candidate, fmt).replace(tzinfo=timezone.utc).timestamp())
            except ValueError:
                continue
    raise InvalidInput(f"bad lab time {text!r}",
                       "give 'YYYY-MM-DD HH:MM', 'HH:MM' (today in the lab) or how long ago ('2h')")
