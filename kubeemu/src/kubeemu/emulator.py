"""The HTTP face of the emulator: kmock's KubernetesEmulator with an indexed, versioned store.

kmock 0.8 gives the server plumbing, the API discovery documents (its bundled data) and the
DSL for ad-hoc reactions. Its object handling scans every object on every request and
lacks most of what informers and kubectl rely on, so every request for a resource path is
served here instead, from `kubeemu.store`:

- objects carry uid, resourceVersion, creationTimestamp (kept when a manifest sets it, so
  tests can order Ingresses by age) and generation; lists carry kind, apiVersion and the
  list resourceVersion, and page with `limit`/`continue` (pages are not a snapshot);
- label and field selectors on list, watch and delete-collection;
- watch from a resourceVersion, 410 Expired when that version is no longer in the bounded
  history, BOOKMARK events when asked (`allowWatchBookmarks`), `sendInitialEvents`, and
  `timeoutSeconds`;
- create, get, PUT (replace, with optimistic concurrency), PATCH in the three formats
  (422 when a patch cannot apply), delete with finalizers, delete-collection, and the
  `status` subresource with the real split between spec and status writes.

Paths that are not resource paths (discovery, /version) go to kmock unchanged.

Faults for tests: `pause()` makes the server accept connections but answer nothing (a hung
API server; open watches fall silent), `resume()` undoes it; `store.expire()` compacts
the history and ends the open watches with 410. Stopping the listener altogether (API
down) is `kubeemu.server.ApiServer.stop()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import importlib.resources
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import attrs
import kmock

from kubeemu import errors, patches, selectors
from kubeemu.store import Entry, Kind, Store, event_line

_WRITE_BATCH_BYTES = 1 << 20


@dataclass(frozen=True)
class Route:
    group: str
    version: str
    plural: str
    namespace: str | None
    name: str | None
    subresource: str | None


_KUBE_VERSION = re.compile(r"v([1-9][0-9]*)(?:(alpha|beta)([1-9][0-9]*))?")
_LEVELS = {None: 0, "beta": 1, "alpha": 2}


def version_order(version: str) -> tuple[int, int, int, int, str]:
    """Kubernetes' order of a group's versions: GA, then beta, then alpha, each newest
    first (v1 > v1beta2 > v1beta1 > v1alpha1), then versions of other shapes by name."""
    match = _KUBE_VERSION.fullmatch(version)
    if match is None:
        return (1, 0, 0, 0, version)
    major, level, minor = match.groups()
    return (0, _LEVELS[level], -int(major), -int(minor or 0), "")


def _prefer_the_newest_version(group: dict[str, Any]) -> dict[str, Any]:
    """An APIGroup document with its versions in Kubernetes' order and the first one
    preferred. kmock takes any version of its set as preferred, so `kubectl get gateway`
    would read v1beta1 of the Gateway API (stored apart from v1) half of the time."""
    group["versions"].sort(key=lambda entry: version_order(entry["version"]))
    group["preferredVersion"] = dict(group["versions"][0])
    return group


def _json_response(body: bytes, status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.Response(body=body, status=status, content_type="application/json")


def _resource_version(text: str | None) -> int | None:
    """None for "any" ("" or "0"), else the integer; 400 when it is not one."""
    if text in (None, "", "0"):
        return None
    try:
        return int(text)
    except ValueError as error:
        raise errors.bad_request(f"invalid resourceVersion {text!r}") from error


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    """The emulator; `store` holds the objects and can be filled directly from Python."""

    token: str | None = None
    history_limit: int = 5000
    bookmark_interval: float = 60.0
    store: Store = attrs.field(init=False)
    _kinds: dict[tuple[str, str, str], Kind] = attrs.field(factory=dict, init=False)
    _serving: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.store = Store(self.history_limit)
        self._serving.set()
        # kmock's bundled discovery data, read as load_bundled() does but through
        # importlib.resources.files(): load_bundled() uses the deprecated read_binary().
        bundled = importlib.resources.files("kmock._internal") / "resources.json.gz"
        self.resources.load_data(gzip.decompress(bundled.read_bytes()))
        # The official client asks /apis/ and /api/ (ApisApi, CoreApi), kubectl without the slash.
        self.fallback["get /apis/"] << self._serve_apis
        self.fallback["get /api/"] << self._serve_api

    # Faults

    def pause(self) -> None:
        self._serving.clear()

    def resume(self) -> None:
        self._serving.set()

    # Resources

    def kind(self, group: str, version: str, plural: str) -> Kind | None:
        """The Kind of a resource known to discovery, or None."""
        key = (group, version, plural)
        if key not in self._kinds:
            resource = kmock.resource(group, version, plural)
            if resource not in self.resources:
                return None
            info = self.resources[resource]
            self._kinds[key] = Kind(
                group=group,
                version=version,
                plural=plural,
                kind=info.kind or plural.capitalize(),
                namespaced=bool(info.namespaced),
                has_status="status" in info.subresources,
            )
        return self._kinds[key]

    def kind_of(self, obj: dict[str, Any]) -> Kind:
        """The Kind of a manifest, from its apiVersion and kind."""
        group, _, version = obj.get("apiVersion", "").rpartition("/")
        for resource in self.resources:
            info = self.resources[resource]
            if (resource.group, resource.version, info.kind) == (group, version, obj.get("kind")):
                found = self.kind(group, version, resource.plural)
                if found is not None:
                    return found
        raise ValueError(f"unknown kind {obj.get('apiVersion')}/{obj.get('kind')}")

    async def _serve_apis(self, request: kmock.Request) -> Any:
        document = await super()._serve_apis(request)
        for group in document["groups"]:
            _prefer_the_newest_version(group)
        return document

    async def _serve_group(self, request: kmock.Request) -> Any:
        return _prefer_the_newest_version(await super()._serve_group(request))

    async def _serve_version(self, request: kmock.Request) -> Any:
        # kmock names the core group version "/v1" (kubectl then finds no Service), and
        # copies a resource's short names onto its subresources, so kubectl finds two
        # candidates for `svc`; the real server says "v1" and gives subresources none.
        document = await super()._serve_version(request)
        document["groupVersion"] = document["groupVersion"].lstrip("/")
        for resource in document["resources"]:
            if "/" in resource["name"]:
                resource.update(shortNames=[], categories=[], singularName="")
                resource["verbs"] = ["get", "patch", "update"]
        return document

    def _route(self, path: str) -> Route | None:
        parts = [part for part in path.split("/") if part]
        if len(parts) >= 3 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 4 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3 and self.kind(group, version, rest[2]):
            namespace, rest = rest[1], rest[2:]
        return Route(
            group=group,
            version=version,
            plural=rest[0],
            namespace=namespace,
            name=rest[1] if len(rest) > 1 else None,
            subresource="/".join(rest[2:]) or None,
        )

    # HTTP

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        authorization = raw_request.headers.get("Authorization")
        if self.token is not None and authorization != f"Bearer {self.token}":
            return _json_response(errors.ApiError(401, "Unauthorized", "Unauthorized").body(), 401)
        await self._serving.wait()
        route = self._route(raw_request.path)
        if route is None:
            return await super().__call__(raw_request)
        try:
            return await self._serve(route, raw_request)
        except errors.ApiError as error:
            return _json_response(error.body(), error.code)

    async def _serve(
        self, route: Route, request: aiohttp.web.BaseRequest
    ) -> aiohttp.web.StreamResponse:
        kind = self.kind(route.group, route.version, route.plural)
        if kind is None or (route.namespace is not None and not kind.namespaced):
            raise errors.ApiError(
                404, "NotFound", "the server could not find the requested resource"
            )
        if route.subresource not in (None, "status"):
            raise errors.ApiError(404, "NotFound", f"subresource {route.subresource} not served")
        query = request.query
        namespace = route.namespace if kind.namespaced else None
        method = request.method
        if method == "GET" and query.get("watch") in ("true", "1"):
            return await self._watch(kind, route, request)
        if method == "GET" and route.name is None:
            return self._list(kind, namespace, query)
        if method == "GET":
            return _json_response(self.store.get(kind, namespace, route.name).raw)
        if method == "POST" and route.name is None:
            if kind.namespaced and namespace is None:
                raise errors.ApiError(405, "MethodNotAllowed", "create needs a namespace path")
            return _json_response(self.store.create(kind, namespace, await _body(request)).raw, 201)
        if method == "PUT" and route.name is not None:
            body = await _body(request)
            entry = self.store.update(
                kind, namespace, route.name, lambda _current: body, route.subresource
            )
            return _json_response(entry.raw)
        if method == "PATCH" and route.name is not None:
            body = await _body(request)
            return _json_response(self._patch(kind, namespace, route, request, body))
        if method == "DELETE" and route.name is not None:
            return self._delete(kind, namespace, route.name, await _optional_body(request))
        if method == "DELETE":
            return self._delete_collection(kind, namespace, query)
        raise errors.ApiError(405, "MethodNotAllowed", f"{method} is not supported here")

    def _list_body(self, kind: Kind, entries: list[Entry], extra: dict[str, Any]) -> bytes:
        metadata = json.dumps({"resourceVersion": str(self.store.rv), **extra})
        head = f'{{"kind":"{kind.kind}List","apiVersion":"{kind.api_version}","metadata":'
        return (head + metadata + ',"items":[').encode() + b",".join(e.raw for e in entries) + b"]}"

    def _list(self, kind: Kind, namespace: str | None, query: Any) -> aiohttp.web.Response:
        labels, fields = _selectors(query)
        limit = int(query["limit"]) if query.get("limit", "").isdigit() else None
        entries, token, remaining = self.store.list(
            kind, namespace, labels, fields, limit, query.get("continue")
        )
        extra: dict[str, Any] = {}
        if token:
            extra = {"continue": token, "remainingItemCount": remaining}
        return _json_response(self._list_body(kind, entries, extra))

    def _patch(
        self, kind: Kind, namespace: str | None, route: Route, request: Any, body: Any
    ) -> bytes:
        content_type = request.content_type
        appliers = {
            "application/merge-patch+json": patches.merge_patch,
            "application/strategic-merge-patch+json": patches.strategic_merge_patch,
            "application/json-patch+json": patches.json_patch,
        }
        if content_type not in appliers:
            raise errors.ApiError(
                415, "UnsupportedMediaType", f"the patch type {content_type!r} is not supported"
            )
        if content_type != "application/json-patch+json" and not isinstance(body, dict):
            raise errors.bad_request("a merge patch must be a JSON object")
        applier = appliers[content_type]

        def change(current: dict[str, Any]) -> Any:
            try:
                patched = applier(current, body)
            except patches.PatchError as error:
                raise errors.invalid(kind.kind, route.name or "", str(error)) from error
            if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
                raise errors.invalid(kind.kind, route.name or "", "the patch removes metadata")
            if patched["metadata"].get("name") != route.name:
                raise errors.invalid(kind.kind, route.name or "", "metadata.name is immutable")
            return patched

        assert route.name is not None
        return self.store.update(kind, namespace, route.name, change, route.subresource).raw

    def _delete(
        self, kind: Kind, namespace: str | None, name: str, options: dict[str, Any]
    ) -> aiohttp.web.Response:
        preconditions = options.get("preconditions") or {}
        current = self.store.get(kind, namespace, name).obj["metadata"]
        for field_name in ("uid", "resourceVersion"):
            if preconditions.get(field_name) not in (None, current.get(field_name)):
                raise errors.conflict(kind.plural, kind.group, name)
        entry = self.store.delete(kind, namespace, name)
        pending = bool(entry.obj["metadata"].get("finalizers"))
        return _json_response(entry.raw, 202 if pending else 200)

    def _delete_collection(
        self, kind: Kind, namespace: str | None, query: Any
    ) -> aiohttp.web.Response:
        labels, fields = _selectors(query)
        entries, _, _ = self.store.list(kind, namespace, labels, fields)
        deleted = [
            self.store.delete(kind, e.obj["metadata"].get("namespace"), e.obj["metadata"]["name"])
            for e in entries
        ]
        return _json_response(self._list_body(kind, deleted, {}))

    async def _watch(
        self, kind: Kind, route: Route, request: aiohttp.web.BaseRequest
    ) -> aiohttp.web.StreamResponse:
        query = request.query
        labels, fields = _selectors(query)
        if route.name is not None:
            fields += (selectors.Requirement("metadata.name", "in", frozenset({route.name})),)
        initial_events = query.get("sendInitialEvents") == "true"
        since = None if initial_events else _resource_version(query.get("resourceVersion"))
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        bookmarks = query.get("allowWatchBookmarks") == "true"
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        try:
            watcher = self.store.watch(kind, route.namespace, labels, fields, since)
        except errors.ApiError as error:
            await response.prepare(request)
            await response.write(event_line("ERROR", error.body()))
            await response.write_eof()
            return response
        if initial_events:
            watcher.queue.put_nowait(self._bookmark(kind, initial_events_end=True))
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            await response.prepare(request)
            while True:
                wait = self.bookmark_interval if bookmarks else None
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    wait = left if wait is None else min(wait, left)
                try:
                    line = await asyncio.wait_for(watcher.queue.get(), wait)
                except TimeoutError:
                    if bookmarks and (deadline is None or time.monotonic() < deadline):
                        await self._serving.wait()
                        await response.write(self._bookmark(kind))
                    continue
                batch, closed = [], line is None
                while line is not None:
                    batch.append(line)
                    if sum(map(len, batch)) > _WRITE_BATCH_BYTES or watcher.queue.empty():
                        break
                    line = watcher.queue.get_nowait()
                    closed = line is None
                await self._serving.wait()
                if batch:
                    await response.write(b"".join(batch))
                if closed:
                    break
        finally:
            self.store.unwatch(kind, watcher)
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    def _bookmark(self, kind: Kind, initial_events_end: bool = False) -> bytes:
        metadata: dict[str, Any] = {"resourceVersion": str(self.store.rv)}
        if initial_events_end:
            metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": metadata}
        return event_line("BOOKMARK", json.dumps(obj).encode())


def _selectors(
    query: Any,
) -> tuple[tuple[selectors.Requirement, ...], tuple[selectors.Requirement, ...]]:
    try:
        return (
            selectors.parse_label_selector(query.get("labelSelector")),
            selectors.parse_field_selector(query.get("fieldSelector")),
        )
    except selectors.SelectorError as error:
        raise errors.bad_request(str(error)) from error


async def _body(request: aiohttp.web.BaseRequest) -> Any:
    if "protobuf" in request.content_type or "cbor" in request.content_type:
        raise errors.ApiError(
            415, "UnsupportedMediaType", f"the body type {request.content_type!r} is not served"
        )
    try:
        return json.loads(await request.read())
    except ValueError as error:
        raise errors.bad_request(f"the body is not JSON: {error}") from error


async def _optional_body(request: aiohttp.web.BaseRequest) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    body = await _body(request)
    return body if isinstance(body, dict) else {}
