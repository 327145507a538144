"""Stage ④: signals → order intents (entries, exits, sizing) under risk limits."""
