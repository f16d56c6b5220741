"""The gateway's services, below the routes: a replica's `GatewayCore` (connections, actor
handles, the order batcher), the market registry, the database reads, the stats cache, the
request/response models, the conversions between them and engine commands, and the table of
error codes. Nothing here imports the routes, the app or FastAPI's routing."""
