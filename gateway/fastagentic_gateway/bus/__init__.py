from .base import Bus, Subscription
from .inprocess import InProcessBus

__all__ = ["Bus", "InProcessBus", "Subscription"]
