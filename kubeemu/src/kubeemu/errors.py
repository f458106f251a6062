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


def _object_error(
    code: int, reason: str, plural: str, group: str, name: str, message: str
) -> ApiError:
    """The API server names the object as `plural.group "name"` in these messages."""
    resource = f"{plural}.{group}" if group else plural
    return ApiError(
        code,
        reason,
        message.format(object=f'{resource} "{name}"'),
        {"name": name, "group": group, "kind": plural},
    )


def not_found(plural: str, group: str, name: str) -> ApiError:
    return _object_error(404, "NotFound", plural, group, name, "{object} not found")


def already_exists(plural: str, group: str, name: str) -> ApiError:
    return _object_error(409, "AlreadyExists", plural, group, name, "{object} already exists")


def conflict(plural: str, group: str, name: str) -> ApiError:
    return _object_error(
        409,
        "Conflict",
        plural,
        group,
        name,
        "Operation cannot be fulfilled on {object}: the object has been modified; "
        "please apply your changes to the latest version and try again",
    )


def invalid(kind: str, name: str, message: str) -> ApiError:
    return ApiError(
        422, "Invalid", f'{kind} "{name}" is invalid: {message}', {"name": name, "kind": kind}
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
