"""Stage ①: SmartStream WebSocket frames → validated packets (protocol, client session)."""
