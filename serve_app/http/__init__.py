"""FastAPI plumbing of the REST routes: dependencies (the replica's core, the caller's
identity, admin access) and the contract every route keeps (strict queries and media types,
documented errors)."""
