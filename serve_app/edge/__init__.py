"""The gateway's edge: request ids, CORS, the rate limit, request logs and metrics, for
every HTTP request (the lean order route included). See `serve_app.edge.stack`.

Nothing is imported here: `serve_app.errors` uses `serve_app.edge.context`, which must not
pull in the stack (it imports `serve_app.errors` back)."""
