"""Angel-protocol-exact simulator: SmartStream, REST, order updates, a synthetic market."""
