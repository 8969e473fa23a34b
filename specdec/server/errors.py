"""OpenAI-style error bodies, `{"error": {"message", "type", "param", "code"}}`, for every way a request fails:
a user mistake names the bad value and what is accepted; an internal error says only that it happened (the
traceback goes to the server's log, never to the client)."""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

log = logging.getLogger("specdec.server")

TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
         405: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 503: "service_unavailable"}
INTERNAL = "the server hit an internal error while handling this request; it has been logged, please retry"


class APIError(Exception):
    """A request that fails with `status` and one sentence for the client."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict:
        return error_body(self.status, self.message, self.param, self.code)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": TYPES.get(status, "invalid_request_error"), "param": param,
                      "code": code}}


def install_error_handlers(app: FastAPI) -> None:
    """APIError as itself; FastAPI's 422 validation errors as 400; unknown routes as 404; anything else as 500."""

    async def api_error(_: Request, e: APIError) -> JSONResponse:
        return e.response()

    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        return validation_error(e.errors()).response()

    async def no_route(request: Request, _: Exception) -> JSONResponse:
        return APIError(404, f"no route {request.url.path!r}; accepted: the routes listed in /docs").response()

    async def bad_method(request: Request, _: Exception) -> JSONResponse:
        return APIError(405, f"{request.method} is not allowed on {request.url.path!r}; accepted: the methods "
                             f"listed in /docs").response()

    async def internal(_: Request, e: Exception) -> JSONResponse:
        log.error("internal error", exc_info=e)
        return APIError(500, INTERNAL).response()

    app.add_exception_handler(APIError, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(404, no_route)
    app.add_exception_handler(405, bad_method)
    app.add_exception_handler(Exception, internal)


def validation_error(errors: list[dict] | tuple) -> APIError:
    """The first of pydantic's errors as one sentence naming the field, the value and what is accepted."""
    if not errors:
        return APIError(400, "the request is invalid; accepted: a JSON object as the OpenAI API describes it")
    first = errors[0]
    kind, loc = first.get("type", ""), [str(x) for x in first.get("loc", ()) if x != "body" and not _member(x)]
    if kind == "json_invalid":
        return APIError(400, f"the request body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})"
                             f"; accepted: a JSON object", code="invalid_json")
    if not loc:
        return APIError(400, f"the request body is {_short(first.get('input'))}; accepted: a JSON object",
                        code="invalid_json")
    field = _field(loc)
    if kind == "missing":
        return APIError(400, f"{field} is required; accepted: see the OpenAI API for this route", param=field)
    return APIError(400, f"{field}={_short(first.get('input'))} is invalid: {first.get('msg', 'bad value')}",
                    param=field)


def _member(part) -> bool:
    """A union member's tag in pydantic's error location (`str`, `list[str]`), not a field name."""
    return isinstance(part, str) and (part in ("str", "int", "float", "bool", "dict", "list") or "[" in part)


def _field(loc: list[str]) -> str:
    out = loc[0]
    for part in loc[1:]:
        out += f"[{part}]" if part.isdigit() else f".{part}"
    return out


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
