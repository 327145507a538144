"""Local HTTP API: chain, signals, order-flow views, health, Prometheus metrics, kill switch."""
