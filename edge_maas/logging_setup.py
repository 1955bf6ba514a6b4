"""How the `edge-maas` command logs: text lines (the default), or one JSON object per line (`--log-format json` on
the daemons: device, worker, registry serve) for log shippers (Loki, Elasticsearch, CloudWatch).

JSON lines come from python-json-logger (pythonjsonlogger.json.JsonFormatter): keys ``time`` (ISO 8601, UTC),
``level``, ``logger``, ``message``, plus ``exc_info`` when a traceback is logged and any ``extra`` fields."""

from __future__ import annotations

import logging
import sys
from typing import Literal

LogFormat = Literal["text", "json"]
FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(verbose: int = 0, fmt: LogFormat = "text") -> None:
    """Root logging to stderr: warnings by default, -v info, -vv debug; ``fmt`` text or json.  As logging.basicConfig:
    nothing changes when the root logger has handlers already (a host program's, or pytest's, own logging)."""
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_formatter() if fmt == "json" else logging.Formatter(TEXT))
    logging.basicConfig(level=level, handlers=[handler])


def json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter("{levelname}{name}{message}", style="{", timestamp="time",
                         rename_fields={"levelname": "level", "name": "logger"})  # fmt: skip
