"""`specdec serve`: an OpenAI-compatible HTTP server over the batched engine.

One file per job: `config` (settings), `protocol` (request and response models), `params` (a request into
engine inputs), `errors` (OpenAI error bodies), `runner` (the engine's thread and the asyncio bridge), `text`
(incremental text and stop strings), `responses` (bodies and chunks), `generation` (one request end to end),
`metrics` (Prometheus), `methods` (drafters per request), `lifecycle` (uvicorn with a drain), `app` (routes).
"""

from specdec.server.app import create_app
from specdec.server.config import ServerConfig
from specdec.server.methods import Methods

__all__ = ["Methods", "ServerConfig", "create_app"]
