"""The A2A front: agent endpoints as A2A agents, on the a2a-sdk's request handler and routes."""

from .front import A2aFront

__all__ = ["A2aFront"]
