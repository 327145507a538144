"""Alerts and remote control: Telegram and webhooks, never in the order path."""
