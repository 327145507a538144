"""Stage ②: per-underlying chain state (struct-of-arrays tables), bars, per-tick greeks."""
