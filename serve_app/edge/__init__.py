"""The gateway's edge: request ids, CORS, the rate limit, request logs and metrics, for
every HTTP request (the lean order route included). See `serve_app.edge.stack`."""

from serve_app.edge.stack import Edge, EdgeConfig

__all__ = ["Edge", "EdgeConfig"]
