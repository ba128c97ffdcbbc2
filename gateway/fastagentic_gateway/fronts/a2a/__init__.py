"""The A2A front: agent endpoints as A2A agents, on the a2a-sdk's request handler and routes."""

import os

# The SDK wraps every handler, dispatcher and task-manager method in an OpenTelemetry span when the
# opentelemetry API is importable (it is, through other dependencies). The gateway configures no tracer,
# so those spans record nothing, yet opening them was about a sixth of the CPU of an A2A request. Off
# unless the deployment asks for them (the SDK reads this once, when it is first imported).
os.environ.setdefault("OTEL_INSTRUMENTATION_A2A_SDK_ENABLED", "false")

from .front import A2aFront

__all__ = ["A2aFront"]
