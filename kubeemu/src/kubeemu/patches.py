"""The three patch formats of the API: JSON merge, strategic merge and JSON patch.

All functions are pure: they return a new document and never modify their inputs, because
the store keeps every earlier version of an object alive in its watch history.

Strategic merge patch is implemented without the API's Go schema. A list is merged by key
when the patch says so itself (kubectl always sends a `$setElementOrder/<field>` directive
or `$patch: delete` items for lists that have a merge key); a list of scalars with a
`$setElementOrder` is a set union (e.g. finalizers); any other list is replaced, which is
what the schema says for every list of Ingress, EndpointSlice and Secret. The directives
`$patch: replace|delete`, `$retainKeys` and `$deleteFromPrimitiveList/<field>` are honoured.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """A patch that cannot be applied: the API answers 422 Invalid."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


_ORDER = "$setElementOrder/"
_DELETE_FROM = "$deleteFromPrimitiveList/"


def _merge_key_of(order: list[Any] | None, items: list[Any]) -> str | None:
    """The merge key that kubectl's directives reveal, or None for a list to replace."""
    for entry in (order or []) + items:
        if isinstance(entry, dict):
            keys = [key for key in entry if not key.startswith("$")]
            if len(keys) == 1 and (entry in (order or []) or entry.get("$patch") == "delete"):
                return keys[0]
    return None


def _merge_list(
    current: list[Any], patch: list[Any], order: list[Any] | None, deletions: list[Any]
) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [item for item in patch if not (isinstance(item, dict) and "$patch" in item)]
    merge_key = _merge_key_of(order, patch)
    if merge_key is not None:
        merged = {item.get(merge_key): item for item in current if isinstance(item, dict)}
        for item in patch:
            if not isinstance(item, dict) or merge_key not in item:
                raise PatchError(f"list item without merge key {merge_key!r}: {item!r}")
            if item.get("$patch") == "delete":
                merged.pop(item[merge_key], None)
            else:
                merged[item[merge_key]] = strategic_merge_patch(merged.get(item[merge_key]), item)
        wanted = [entry[merge_key] for entry in order or [] if isinstance(entry, dict)]
        ordered = [merged.pop(key) for key in wanted if key in merged]
        return ordered + list(merged.values())
    if order is not None and all(not isinstance(item, dict) for item in order + patch):
        union = [item for item in current if item not in deletions]
        union += [item for item in patch if item not in union]
        rank = {item: position for position, item in enumerate(order)}
        return sorted(union, key=lambda item: rank.get(item, len(rank)))
    return copy.deepcopy(patch)


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """The subset of Kubernetes strategic merge patch described in the module docstring."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "delete":
        return None
    if patch.get("$patch") == "replace":
        return {key: value for key, value in patch.items() if key != "$patch"}
    result = dict(target) if isinstance(target, dict) else {}
    if "$retainKeys" in patch:
        retained = set(patch["$retainKeys"] or [])
        result = {key: value for key, value in result.items() if key in retained}
    for key, value in patch.items():
        if key.startswith("$"):
            if key.startswith(_DELETE_FROM) and key[len(_DELETE_FROM) :] not in patch:
                field = key[len(_DELETE_FROM) :]
                result[field] = [item for item in result.get(field) or [] if item not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            current = result.get(key) if isinstance(result.get(key), list) else []
            order = patch.get(_ORDER + key)
            deletions = patch.get(_DELETE_FROM + key) or []
            result[key] = _merge_list(current, value, order, deletions)
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = value
    for key, order in patch.items():
        if key.startswith(_ORDER) and key[len(_ORDER) :] not in patch:
            field = key[len(_ORDER) :]
            if isinstance(result.get(field), list):
                result[field] = _merge_list(result[field], [], order, [])
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(document: Any, parts: list[str]) -> tuple[Any, str]:
    if not parts:
        raise PatchError("the operation cannot target the whole document")
    node = document
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise PatchError(f"path element {part!r} does not exist")
    return node, parts[-1]


def _get(document: Any, parts: list[str]) -> Any:
    if not parts:
        return document
    node, last = _parent(document, parts)
    if isinstance(node, dict) and last in node:
        return node[last]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        return node[int(last)]
    raise PatchError(f"path element {last!r} does not exist")


def _remove(document: Any, parts: list[str]) -> Any:
    node, last = _parent(document, parts)
    if isinstance(node, dict) and last in node:
        return node.pop(last)
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        return node.pop(int(last))
    raise PatchError(f"cannot remove missing path element {last!r}")


def _add(document: Any, parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    node, last = _parent(document, parts)
    if isinstance(node, dict):
        node[last] = value
    elif isinstance(node, list):
        if last == "-":
            node.append(value)
        elif last.isdigit() and int(last) <= len(node):
            node.insert(int(last), value)
        else:
            raise PatchError(f"list index {last!r} out of range")
    else:
        raise PatchError(f"cannot add below a scalar at {last!r}")
    return document


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902: add, remove, replace, move, copy and test."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch must be a list of operations")
    document = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchError(f"malformed operation {operation!r}")
        op, parts = operation["op"], _pointer(operation["path"])
        if op in ("add", "replace", "test") and "value" not in operation:
            raise PatchError(f"operation {op!r} needs a value")
        if op == "add":
            document = _add(document, parts, copy.deepcopy(operation["value"]))
        elif op == "remove":
            _remove(document, parts)
        elif op == "replace":
            _get(document, parts)
            if parts:
                _remove(document, parts)
            document = _add(document, parts, copy.deepcopy(operation["value"]))
        elif op in ("move", "copy"):
            source = _pointer(operation.get("from", ""))
            value = _remove(document, source) if op == "move" else _get(document, source)
            document = _add(document, parts, copy.deepcopy(value))
        elif op == "test":
            if _get(document, parts) != operation["value"]:
                raise PatchError(f"test failed at {operation['path']!r}")
        else:
            raise PatchError(f"unknown operation {op!r}")
    return document
