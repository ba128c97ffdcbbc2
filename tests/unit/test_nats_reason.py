"""Bus errors name their cause even when the exception's own text is empty."""

from __future__ import annotations

import nats.errors

from fastagentic_gateway.bus.nats import reason


def test_an_exception_without_text_is_named_by_its_type() -> None:
    # nats-py raises some errors with no text; the log once read "cannot read the dispatch queue on NATS: ".
    assert str(nats.errors.Error()) == ""
    assert reason(nats.errors.Error()) == "Error"
    assert reason(TimeoutError()) == "TimeoutError"
    assert reason(ValueError("bad subject")) == "bad subject"
