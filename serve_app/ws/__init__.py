"""The real-time WebSocket API at `/ws` (docs/websocket.md): a replica's hub of Redis
subscriptions (`hub`), per market a book mirror with its subscription groups, trades and
ticker (`market_feed`, `book`, `ticker`, `trades`), per account the private streams
(`account_feed`), per client a bounded queue and writer (`connection`, its frames written
straight to the transport by `wire` when it can) and a session of
operations (`session`, parsed by `protocol`), and the endpoint (`service`). It imports the
gateway's services, never the routes, the HTTP plumbing or the app."""
