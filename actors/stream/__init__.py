"""The real-time stream: committed events to Redis for the WebSocket fan-out."""
