"""Serving the emulator over plain HTTP, with a listener that tests can stop and restart.

`stop()` closes the listening socket and aborts every open connection at once, as a
crashed or partitioned API server would: clients get connection refused or reset, open
watches end without a word. `start()` listens again on the same port, with the same
objects, so clients that back off and retry find the API back.
"""

from __future__ import annotations

import asyncio

import aiohttp.web

from kubeemu.emulator import Emulator


class ApiServer:
    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.emulator = emulator
        self.host = host
        self.port = port
        self._web: aiohttp.web.Server | None = None
        self._listener: asyncio.Server | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        # handler_cancellation: a watch whose client went away is cancelled, not leaked.
        self._web = aiohttp.web.Server(self.emulator, handler_cancellation=True)
        self._listener = await asyncio.get_running_loop().create_server(
            self._web, self.host, self.port, reuse_address=True
        )
        self.port = self._listener.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._listener is None or self._web is None:
            return
        self._listener.close()
        for connection in self._web.connections:
            connection.force_close()
            if connection.transport is not None:
                connection.transport.abort()
        await self._listener.wait_closed()
        self._listener = self._web = None

    @property
    def serving(self) -> bool:
        return self._listener is not None
