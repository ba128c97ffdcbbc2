"""A worker whose ``transfer`` tool requires approval (``require_approval=True``): the gateway holds each
call for an approver's decision before this worker sees it."""

from __future__ import annotations

from fastagentic import App

app = App("gated")


@app.tool(require_approval=True)
def transfer(account: str, amount: int) -> dict[str, str | int]:
    """Move money: every call needs a person's approval first."""
    return {"account": account, "amount": amount}
