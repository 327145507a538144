"""aiogram (seconds to import) is loaded only by a daemon with Telegram alerts on."""

from __future__ import annotations

import subprocess
import sys


SCRIPT = """
import sys
import structlog
from smartflow.app.alerting import Alerting
from smartflow.app.daemon import Daemon, RunOptions
from smartflow.config import (
    AlertsConfig, Config, Credentials, Secret, TelegramConfig, WebhookConfig
)

log = structlog.get_logger()
# What `smartflow run` builds with the defaults (sim, alerts off): the daemon, then its alerting.
Daemon(Config(), Credentials(), RunOptions(), log)
Alerting(Config(), Credentials(), log)
print("aiogram" in sys.modules)
webhook = AlertsConfig(enabled=True, webhook=WebhookConfig(enabled=True, url="http://127.0.0.1:9"))
Alerting(Config(alerts=webhook), Credentials(webhook_secret=Secret("s")), log)
print("aiogram" in sys.modules)
telegram = AlertsConfig(enabled=True, telegram=TelegramConfig(enabled=True, chat_ids=[1]))
Alerting(Config(alerts=telegram), Credentials(telegram_token=Secret("1:abc")), log)
print("aiogram" in sys.modules)
"""


def test_aiogram_is_imported_only_when_telegram_alerts_are_on() -> None:
    # A fresh interpreter: this one has imported aiogram for other tests.
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=120
    ).stdout.splitlines()
    assert out == ["False", "False", "True"]  # defaults, webhook only, Telegram on
