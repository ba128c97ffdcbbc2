"""The floor: a bare litestar + msgspec app that echoes the request body, served exactly like the gateway
(uvicorn, httptools, uvloop, one process). Every gateway figure is reported as a ratio to it."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import msgspec
import uvicorn
import uvloop
from litestar import Litestar, Request, Response, get, post
from litestar.response import Stream


@post("/echo", status_code=200)
async def echo(request: Request) -> Response[bytes]:  # type: ignore[type-arg]
    body = msgspec.json.decode(await request.body())
    return Response(msgspec.json.encode({"output": body}), media_type="application/json")


@get("/tokens/{count:int}")
async def tokens(count: int) -> Stream:
    async def frames() -> AsyncIterator[bytes]:
        for seq in range(1, count + 1, 100):
            yield b"".join(
                b'id: %d\nevent: token\ndata: {"seq":%d,"data":{"text":"t"}}\n\n' % (n, n)
                for n in range(seq, min(seq + 100, count + 1))
            )

    return Stream(frames(), media_type="text/event-stream")


app = Litestar([echo, tokens], openapi_config=None, logging_config=None)


def main() -> None:
    port = int(sys.argv[1])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http="httptools", access_log=False, log_level="warning"
    )
    uvloop.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
