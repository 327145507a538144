"""Stage ⑤: order router, paper broker, live Angel gateway, rate limits, reconciliation."""
