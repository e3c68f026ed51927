"""srlab's embedded disaster-recovery engine. It never imports the UI.

Its public face is `Lab`, its errors, the names of the states things move through, and the
plain formatting of lab times and durations.
"""

from .clock import format_duration, format_time, parse_duration, parse_lab_time
from .errors import Damaged, EnvironmentProblem, InvalidInput, LabError, Refused, SiteFileError, environment_error
from .lab import Lab
from .states import Failover, JobState, Protection, StepState

__all__ = ["Lab", "LabError", "InvalidInput", "Refused", "SiteFileError", "Protection", "Failover", "JobState", "StepState",
           "format_duration", "format_time", "parse_duration", "parse_lab_time"]
