"""Stage ③: detectors and order-flow metrics over the chain → SmartMoneySignal."""
