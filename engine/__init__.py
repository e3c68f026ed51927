"""srlab's embedded disaster-recovery engine. It never imports the UI."""

from .errors import InvalidInput, LabError, Refused, SiteFileError
from .lab import Lab

__all__ = ["Lab", "LabError", "InvalidInput", "Refused", "SiteFileError"]
