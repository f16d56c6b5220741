"""The market actor (a Ray shell around the pure engine) and its PostgreSQL journal."""
