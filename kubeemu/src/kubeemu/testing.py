"""The emulator in its own thread, for tests that use the synchronous `kubernetes` client.

kmock's pytest fixture runs the server on the test's event loop, where a blocking client
would deadlock it; here the server has a loop of its own, and every hook (faults, direct
store access) hops onto that loop and waits for the result.

    with EmulatorThread() as api:
        api.write_kubeconfig(tmp_path / "kubeconfig")
        client = api.api_client()
        ...
        api.stop_serving()   # API down: connection refused, watches cut
        api.start_serving()  # back, same port, same objects
        api.expire()         # compaction: history gone, open watches end with 410
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from typing import Any, Self, TypeVar

from kubeemu import cli, kubeconfig
from kubeemu.emulator import Emulator
from kubeemu.server import ApiServer

T = TypeVar("T")


class EmulatorThread:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        history_limit: int = 5000,
        bookmark_interval: float = 1.0,
        objects: list[dict[str, Any]] | None = None,
    ) -> None:
        self.token = token
        self.emulator = Emulator(
            token=token, history_limit=history_limit, bookmark_interval=bookmark_interval
        )
        cli.preload(self.emulator, objects or [])
        self.server = ApiServer(self.emulator, host, port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="kubeemu", daemon=True)
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            async with self.emulator:
                await self.server.start()
                self._started.set()
                await self._stop.wait()
                await self.server.stop()
        except BaseException as error:  # reported to the starting thread
            self._failure = error
            self._started.set()

    def start(self) -> Self:
        self._thread.start()
        self._started.wait(10)
        if self._failure is not None:
            raise self._failure
        return self

    def close(self) -> None:
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return self.server.url

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run a function on the server's loop (where the store lives) and return its result."""

        async def run() -> T:
            return function(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def _await(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    # Faults

    def stop_serving(self) -> None:
        """The API goes down: the listener closes and every open connection is aborted."""
        self._await(self.server.stop())

    def start_serving(self) -> None:
        self._await(self.server.start())

    def pause(self) -> None:
        """The API hangs: connections are accepted, nothing is answered, watches fall silent."""
        self.call(self.emulator.pause)

    def resume(self) -> None:
        self.call(self.emulator.resume)

    def expire(self) -> None:
        """Compact the history of every kind; open watches end with 410 Expired."""
        self.call(self.emulator.store.expire)

    # Clients

    def write_kubeconfig(self, path: str | os.PathLike[str]) -> str:
        return str(kubeconfig.write(path, self.url, self.token))

    def api_client(self) -> Any:
        """A `kubernetes.client.ApiClient` for this server (imported lazily: tests only)."""
        import kubernetes.client

        configuration = kubernetes.client.Configuration()
        configuration.host = self.url
        configuration.api_key = {"BearerToken": self.token or "kubeemu"}
        configuration.api_key_prefix = {"BearerToken": "Bearer"}
        return kubernetes.client.ApiClient(configuration)
