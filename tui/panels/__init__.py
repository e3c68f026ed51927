"""The app's panels, one per key (1-7)."""

from .dashboard import Dashboard
from .events import Events
from .faults import Faults
from .jobs import Jobs
from .plans import RecoveryPlans
from .protected import ProtectedItems
from .resources import Resources

PANELS = [Dashboard, ProtectedItems, Resources, Jobs, RecoveryPlans, Events, Faults]

__all__ = ["PANELS", "Dashboard", "ProtectedItems", "Resources", "Jobs", "RecoveryPlans", "Events", "Faults"]
