"""API errors as the real server reports them: an HTTP code and a `Status` object.

Clients decide what to do from `reason` (kubectl apply creates on `NotFound`, client-go
retries on `Conflict`, informers relist on `Expired`), so the reasons are the API's own.
"""

from __future__ import annotations

import json
from typing import Any


class ApiError(Exception):
    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            status["details"] = self.details
        return status

    def body(self) -> bytes:
        return json.dumps(self.status()).encode()


def not_found(kind: str, plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{plural}{"." + group if group else ""} "{name}" not found',
        {"name": name, "group": group, "kind": plural},
    )


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{plural}{"." + group if group else ""} "{name}" already exists',
        {"name": name, "group": group, "kind": plural},
    )


def conflict(plural: str, group: str, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {plural}{"." + group if group else ""} "{name}": '
        "the object has been modified; please apply your changes to the latest version "
        "and try again",
        {"name": name, "group": group, "kind": plural},
    )


def invalid(kind: str, name: str, message: str) -> ApiError:
    return ApiError(
        422, "Invalid", f'{kind} "{name}" is invalid: {message}', {"name": name, "kind": kind}
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
