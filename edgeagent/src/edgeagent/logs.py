"""JSON logs: one object per line on stderr, which systemd hands to the journal.

Fields given through `extra=` (`namespace`, `object_name`, `kind`, `resource`,
`generation`, ...) become top-level keys, so `journalctl -o cat | jq 'select(.name ==
"web1")'` finds every line about one object. `object_name` is written as `name`: a
LogRecord already has a `name` (the logger's), which `extra=` may not overwrite.

Private keys never reach a log call: the agent logs names of Secrets, never their data.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry["name" if key == "object_name" else key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # urllib3 logs every retry of a refused connection as a warning; the informers already
    # log the failure once with its consequence (backoff), in JSON.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
