"""The device's local HTTP endpoint: the Open Inference Protocol (KServe v2 REST) with the binary tensor data
extension, so an application on the device needs no MQTT (docs/http_api.md).  FastAPI over uvicorn, in a thread of
the daemon; needs ``pip install 'edge-maas[http]'``.

Endpoints: GET /v2/health/live, /v2/health/ready, /v2, /v2/models/{name}[/versions/{v}][/ready]; POST
/v2/models/{name}[/versions/{v}]/infer.  Errors are the protocol's ``{"error": "..."}`` with 400 (malformed request,
wrong input name, shape or datatype), 404 (unknown model or version, or path), 413 (body over the limit), 503 (no
version installed yet, or a stage neither held nor run by a worker) and 500 (the model failed).  The model names a
device answers to: edge_maas.device.oip.  Inference runs through the agent's own ``infer``: the bytes are those the
MQTT path gives.  No authentication: it binds to localhost unless told otherwise."""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any, Protocol

import numpy as np
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from edge_maas import __version__
from edge_maas.device import oip
from edge_maas.device.oip import HttpApiError, ProtocolError
from edge_maas.errors import EdgeMaasError, StageUnavailableError, TensorMismatchError
from edge_maas.service import UnknownTaskError

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 64 << 20  # bytes of a request body; larger ones get 413 before they are read


class Servable(Protocol):
    """What the app serves: edge_maas.device.agent.DeviceAgent, or anything with these."""

    device_id: str
    active: Any  # edge_maas.device.agent.Active | None: the version running now
    healthy: bool | None

    def infer(self, inputs, tasks=(), active=None) -> dict[str, np.ndarray]: ...


def build_app(agent: Servable, max_body: int = DEFAULT_MAX_BODY) -> FastAPI:
    """The ASGI app over ``agent``; request bodies over ``max_body`` bytes are refused with 413."""
    app = FastAPI(title="edge-maas device: Open Inference Protocol (KServe v2 REST)", version=__version__,
                  description="Health, metadata and inference of the model version this device runs; JSON tensors "
                  "and the binary tensor data extension.  See docs/http_api.md.")  # fmt: skip

    @app.exception_handler(ProtocolError)
    async def _protocol_error(request: Request, exc: ProtocolError):
        return _error(exc.status, str(exc))

    @app.exception_handler(HTTPException)  # unknown paths, wrong methods: the protocol's error body too
    async def _http_error(request: Request, exc: HTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)  # a bug: still the protocol's error body (uvicorn logs the traceback)
    async def _bug(request: Request, exc: Exception):
        return _error(500, f"internal error: {type(exc).__name__}")

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return _error(400, f"invalid request: {exc.errors()[0].get('msg', exc)}")

    def ready() -> str | None:
        """None when ready; else why not."""
        if agent.active is None:
            return f"device {agent.device_id} has no model version installed yet"
        if agent.healthy is False:
            return f"device {agent.device_id} is not healthy"
        return None

    def resolve(name: str, version: str | None) -> oip.ModelView:
        active = agent.active  # read once: the view, the run and the reply name one version
        if active is None:
            raise ProtocolError(503, f"device {agent.device_id} has no model version installed yet")
        served = oip.views(active)
        view = served.get(name)
        if view is None:
            raise ProtocolError(404, f"unknown model {name!r}; this device serves {', '.join(served)}")
        if version is not None and version != view.version:
            raise ProtocolError(404, f"model {name} has no version {version!r} here; it runs version {view.version}")
        return view

    @app.get("/v2/health/live", summary="Server liveness: 200 while the daemon runs")
    def live():
        return {"live": True}

    @app.get("/v2/health/ready", summary="Server readiness: 200 once a version is installed and healthy, else 503")
    def server_ready():
        why = ready()
        return {"ready": True} if why is None else _error(503, why)

    @app.get("/v2", summary="Server metadata")
    def server_metadata():
        return {"name": "edge-maas", "version": __version__, "extensions": list(oip.EXTENSIONS)}

    @app.get("/v2/models/{name}", summary="Model metadata (the version running now)")
    def model_metadata(name: str):
        return resolve(name, None).metadata()

    @app.get("/v2/models/{name}/versions/{version}", summary="Model metadata of one version")
    def version_metadata(name: str, version: str):
        return resolve(name, version).metadata()

    @app.get("/v2/models/{name}/ready", summary="Model readiness: 200, or 404 (unknown) or 503 (not ready)")
    def model_ready(name: str):
        return _model_ready(resolve(name, None))

    @app.get("/v2/models/{name}/versions/{version}/ready", summary="Readiness of one version")
    def version_ready(name: str, version: str):
        return _model_ready(resolve(name, version))

    def _model_ready(view: oip.ModelView):
        why = ready()
        return {"name": view.name, "ready": True} if why is None else _error(503, why)

    async def infer(request: Request, name: str, version: str | None):
        view = resolve(name, version)
        body = await _read_body(request, max_body)
        # decoding, running and encoding off the event loop: health checks stay answered during a large request
        content, head = await run_in_threadpool(_infer, agent, view, body, request.headers.get(oip.HEADER))
        if head is None:
            return Response(content, media_type="application/json")
        return Response(content, media_type="application/octet-stream", headers={oip.HEADER: str(head)})

    # the body is read by hand (it may carry binary data after the JSON): describe it to OpenAPI ourselves
    body = {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/"
                                                                                   "InferenceRequest"}},
                                           "application/octet-stream": {"schema": {"type": "string", "format":
                                                                                   "binary"}}}}  # fmt: skip

    @app.post("/v2/models/{name}/infer", summary="Inference (JSON tensors, or binary tensor data after the JSON)",
              openapi_extra={"requestBody": body})  # fmt: skip
    async def model_infer(request: Request, name: str):
        return await infer(request, name, None)

    @app.post("/v2/models/{name}/versions/{version}/infer", summary="Inference on one version",
              openapi_extra={"requestBody": body})  # fmt: skip
    async def version_infer(request: Request, name: str, version: str):
        return await infer(request, name, version)

    def openapi() -> dict:
        if app.openapi_schema is None:
            doc = FastAPI.openapi(app)
            schema = oip.InferenceRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            found = doc.setdefault("components", {}).setdefault("schemas", {})
            found.update(schema.pop("$defs", {}))  # nested models hoisted: every $ref resolves
            found["InferenceRequest"] = schema
        return app.openapi_schema

    app.openapi = openapi
    return app


def _infer(agent: Servable, view: oip.ModelView, body: bytes, header: str | None) -> tuple[bytes, int | None]:
    decoded = oip.decode(body, header, view)
    wanted = [n for n, _ in decoded.outputs]
    try:
        result = view.rename(agent.infer(decoded.inputs, view.tasks(wanted), active=view.active))
    except (TensorMismatchError, UnknownTaskError) as exc:  # the caller's inputs
        raise ProtocolError(400, str(exc)) from None
    except StageUnavailableError as exc:  # a worker away: try again later
        raise ProtocolError(503, str(exc)) from None
    except EdgeMaasError as exc:
        raise ProtocolError(500, str(exc)) from None
    return oip.encode(view, decoded, result)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 once it passes ``limit`` bytes (announced or streamed: nothing more is read)."""
    announced = request.headers.get("content-length")
    if announced is not None and announced.isdigit() and int(announced) > limit:
        raise ProtocolError(413, f"request body of {int(announced)} bytes; the limit is {limit}")
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProtocolError(413, f"request body over the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class HttpServer:
    """uvicorn serving build_app(agent) in a thread of the daemon.  The socket is bound at construction, before
    the daemon connects anywhere: an address in use is one clear HttpApiError.  ``port`` 0: any free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8080, max_body: int = DEFAULT_MAX_BODY):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._sock = socket.create_server((host, port), family=family)
        except OSError as exc:
            raise HttpApiError(f"cannot serve HTTP on {host}:{port}: {exc.strerror or exc}") from None
        self.max_body = max_body
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1]

    @property
    def url(self) -> str:
        host = self._sock.getsockname()[0]
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def start(self, agent: Servable, timeout: float = 10.0) -> HttpServer:
        """Serve ``agent``; returns once uvicorn accepts requests.  HttpApiError if it did not start in time."""
        # log_config None: uvicorn leaves the daemon's logging as it is; lifespan off: the app has no startup work
        config = uvicorn.Config(build_app(agent, self.max_body), log_config=None, access_log=False, lifespan="off",
                                timeout_graceful_shutdown=5)  # fmt: skip
        self._server = uvicorn.Server(config)
        # not in the main thread, uvicorn installs no signal handlers: the daemon keeps its SIGTERM handling
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, name="http-api",
                                        daemon=True)  # fmt: skip
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                url = self.url  # before stop() closes the socket it is read from
                self.stop()
                raise HttpApiError(f"the HTTP server on {url} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let requests in flight finish (up to 5 s), close the socket."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout)
        self._sock.close()
