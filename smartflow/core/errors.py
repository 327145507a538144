"""Error taxonomy: transient errors are retried locally; fatal errors stop the daemon.

A supervisor that sees a ``FatalError`` shuts down and exits non-zero so systemd restarts the
process (crash-only design). ``TransientError`` is caught at a stage's per-message boundary,
counted and retried with backoff.
"""

from __future__ import annotations


class SmartflowError(Exception):
    """Base class of every error smartflow raises on purpose."""


class TransientError(SmartflowError):
    """A failure expected to clear by itself: network, 5xx, timeouts, one bad frame."""


class FatalError(SmartflowError):
    """A failure that retrying cannot fix: bad config, rejected credentials, broken invariant."""


class ConfigError(FatalError):
    """The configuration is invalid; the message names the file and the key."""


class AuthError(FatalError):
    """The broker rejected our credentials or tokens."""
