"""``/v1/approvals/{token}``: what an answer link asks (GET), and its answer (POST).

The token is the credential: the routes are public at the access edge (a credential presented is still
authenticated, and its principal is then the approver). ``GET`` never answers anything (mail scanners and
link previews open links): it shows what is asked, as JSON, or to a browser (``Accept: text/html``) as a
page whose form POSTs the answer. ``POST`` answers, with an optional JSON body (``reason``; ``payload``
for an edit link; ``answer`` for a question) or the page's form fields.

Errors: a malformed or altered token 403 ``invalid_approval_token``; an expired one 410
``approval_expired``; a run that no longer waits on that interrupt (answered: the link is spent) 409; an
answer that does not fit 422; a run deleted since 404.
"""

from __future__ import annotations

import html
import json
from typing import Any

from litestar import Request, Response, Router, get, post

from ..access.principal import principal_of, request_id_of
from ..errors import GatewayError
from ..fronts.rest import json_response
from .service import Approvals, Asked

__all__ = ["approvals_router"]

#: Every answer of these routes: never cached, never framed, the token never sent on as a Referer.
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}
#: The page runs no script and loads nothing: inline style, and a form posting back here.
PAGE_HEADERS = HEADERS | {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
}
_VERBS = {
    "approve": "Approve",
    "reject": "Reject",
    "edit": "Approve with changes",
    "answer": "Send the answer",
}


def approvals_router(approvals: Approvals) -> Router:
    @get("/v1/approvals/{token:str}")
    async def show(request: Request[Any, Any, Any], token: str) -> Response[bytes]:
        wants_page = "text/html" in request.headers.get("accept", "")
        try:
            asked = await approvals.show(token)
        except GatewayError as exc:
            if wants_page:
                return _error_page(exc)
            raise _with_headers(exc) from None
        if wants_page:
            return _page(_form(asked), 200)
        return json_response(asked, headers=HEADERS)

    @post("/v1/approvals/{token:str}", status_code=200)
    async def answer(request: Request[Any, Any, Any], token: str) -> Response[bytes]:
        form = request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded")
        try:
            run, decision, approver = await approvals.answer(
                token,
                principal_of(request.scope),
                await request.body(),
                form=form,
                request_id=request_id_of(request.scope),
            )
        except GatewayError as exc:
            if form:
                return _error_page(exc)
            raise _with_headers(exc) from None
        if form:
            done = f"Thank you: {html.escape(_past(decision))}, as {html.escape(approver)}. The run goes on."
            return _page(f"<h1>Done</h1><p>{done}</p>", 200)
        return json_response(
            {
                "run_id": run.id,
                "status": run.status.value,
                "attempt": run.attempt,
                "decision": decision,
                "approver": approver,
            },
            headers=HEADERS,
        )

    return Router(path="/", route_handlers=[show, answer])


def _with_headers(exc: GatewayError) -> GatewayError:
    exc.headers = {**HEADERS, **exc.headers}
    return exc


def _past(decision: str) -> str:
    return {"approve": "approved", "reject": "rejected", "edit": "approved with changes"}.get(
        decision, "answered"
    )


def _page(content: str, status: int) -> Response[bytes]:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer"><title>FastAgentic approval</title><style>'
        "body{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;color:#222}"
        "pre{background:#f4f4f4;padding:.75rem;overflow:auto;white-space:pre-wrap}"
        "textarea{width:100%;font-family:monospace}button{font-size:1rem;padding:.5rem 1.25rem;margin-top:.5rem}"
        "small{color:#666}</style></head><body>" + content + "</body></html>"
    )
    return Response(document.encode(), status_code=status, media_type="text/html", headers=PAGE_HEADERS)


def _error_page(exc: GatewayError) -> Response[bytes]:
    return _page(f"<h1>This link cannot be used</h1><p>{html.escape(exc.message)}</p>", exc.status)


def _json(value: Any) -> str:
    return html.escape(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _form(asked: Asked) -> str:
    request = asked.interrupt.get("request")
    if asked.kind == "approval" and isinstance(request, dict):
        title = f"Approve {request['approval'].get('action', '')!s}?"
        shown = request["approval"].get("details")
    else:
        title = "A run asks a question"
        shown = request
    fields = ""
    if asked.decision == "edit":
        fields += (
            '<label for="payload">The edited payload (JSON)</label>'
            f'<textarea id="payload" name="payload" rows="8" required>{_json(shown)}</textarea>'
        )
    if asked.decision == "answer":
        schema = asked.interrupt.get("schema")
        if schema is not None:
            fields += f"<p>The answer must match this JSON Schema:</p><pre>{_json(schema)}</pre>"
        fields += (
            '<label for="answer">Your answer (JSON)</label>'
            '<textarea id="answer" name="answer" rows="6" required></textarea>'
        )
    else:
        fields += '<label for="reason">Reason (optional)</label><textarea id="reason" name="reason" rows="3"></textarea>'
    return (
        f"<h1>{html.escape(title)}</h1>"
        f"<pre>{_json(shown)}</pre>"
        f"<p><small>Run {html.escape(asked.run_id)} of {html.escape(asked.endpoint)} "
        f"(tenant {html.escape(asked.tenant)}), sent to {html.escape(asked.recipient)}. This link works once.</small></p>"
        f'<form method="post">{fields}<button type="submit">{html.escape(_VERBS[asked.decision])}</button></form>'
    )
