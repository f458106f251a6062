"""`kubeemu`: serve the emulator over plain HTTP, preloaded with manifests, until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from kubeemu import errors, kubeconfig, manifests
from kubeemu.emulator import Emulator
from kubeemu.server import ApiServer


def preload(emulator: Emulator, objects: list[dict]) -> None:
    for obj in objects:
        kind = emulator.kind_of(obj)
        namespace = obj.get("metadata", {}).get("namespace") or "default"
        emulator.store.create(kind, namespace if kind.namespaced else None, obj)


async def serve(args: argparse.Namespace) -> None:
    emulator = Emulator(
        token=args.token,
        history_limit=args.history,
        bookmark_interval=args.bookmark_interval,
    )
    preload(emulator, manifests.load(args.file))
    server = ApiServer(emulator, args.host, args.port)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    async with emulator:
        await server.start()
        if args.kubeconfig:
            kubeconfig.write(args.kubeconfig, server.url, args.token)
        print(f"kubeemu: serving {server.url}", file=sys.stderr, flush=True)
        await stopped.wait()
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="kubeemu", description="Kubernetes API emulator (kmock 0.8, extended) over HTTP."
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default %(default)s)")
    parser.add_argument("--port", type=int, default=8001, help="listen port (default %(default)s)")
    parser.add_argument(
        "-f",
        "--file",
        action="append",
        default=[],
        metavar="FILE_OR_DIR",
        help="YAML/JSON manifests to preload; repeatable",
    )
    parser.add_argument(
        "--token", help="require 'Authorization: Bearer TOKEN' (default: accept anything)"
    )
    parser.add_argument(
        "--history",
        type=int,
        default=5000,
        help="changes kept per kind for watch resume; older resourceVersions get 410 "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--bookmark-interval",
        type=float,
        default=60.0,
        help="seconds between BOOKMARK events on watches that allow them; the real API "
        "server sends one about every minute (default %(default)s)",
    )
    parser.add_argument("--kubeconfig", help="also write a kubeconfig for this server here")
    args = parser.parse_args(argv)
    if args.history < 1:
        parser.error("--history must be at least 1")
    try:
        asyncio.run(serve(args))
    except (ValueError, OSError, errors.ApiError) as error:
        print(f"kubeemu: {error}", file=sys.stderr)
        sys.exit(1)
