"""srlab's embedded disaster-recovery engine. It never imports the UI.

Its public face is `Lab`, its errors, and the plain formatting of lab times and durations.
"""

from .clock import format_duration, format_time, parse_duration
from .errors import InvalidInput, LabError, Refused, SiteFileError
from .lab import Lab

__all__ = ["Lab", "LabError", "InvalidInput", "Refused", "SiteFileError",
           "format_duration", "format_time", "parse_duration"]
