"""Durable record (SQLite, WAL) of orders, fills, positions, signals and risk events."""
