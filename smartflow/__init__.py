"""smartflow: Angel One SmartStream option-chain daemon."""

__version__ = "0.1.0"
