"""Telegram: alerts to the allow-listed chats and remote control from them.

This is the one module that imports aiogram, which takes seconds to import: the app imports it
only when ``[alerts.telegram] enabled``, so a daemon without Telegram never waits for it.

Commands: ``/status``, ``/positions``, ``/pnl``, ``/orders``, ``/pause`` (no new entries),
``/resume``, ``/flatten`` (asks to confirm with a button, valid ``CONFIRM_S``), ``/kill``.
A message or a button press from a chat not on ``alerts.telegram.chat_ids`` is refused, logged
and journaled with who sent it; so is a command older than ``MAX_AGE_S`` (queued at Telegram
while the daemon was down: a stale ``/flatten`` must not act hours later).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.types import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from aiogram.utils.token import TokenValidationError

from smartflow.alerts.commands import Control, EntryGate
from smartflow.alerts.events import Alert, Publish
from smartflow.alerts.sinks import PermanentSinkError, RetryAfter
from smartflow.core.errors import FatalError
from smartflow.journal.store import Journal, JournalWriteError


MAX_AGE_S = 120.0
CONFIRM_S = 60.0
POLL_RETRY_S = (1.0, 30.0)
HELP = (
    "/status /positions /pnl /orders — read; /pause /resume — new entries; "
    "/flatten — exit every position (asks to confirm); /kill — trip the kill switch"
)


def make_bot(token: str, api_url: str) -> Bot:
    """The bot behind the sinks and the commands; a malformed token is a ``FatalError``."""
    try:
        return Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(api_url)))
    except TokenValidationError:
        raise FatalError(
            "credential telegram_token is not a bot token (@BotFather's 123456:ABC…)"
        ) from None


def keyboard(buttons: tuple[tuple[str, str], ...]) -> InlineKeyboardMarkup | None:
    """One row of inline buttons (None without buttons)."""
    if not buttons:
        return None
    row = [InlineKeyboardButton(text=label, callback_data=data) for label, data in buttons]
    return InlineKeyboardMarkup(inline_keyboard=[row])


class TelegramSink:
    """One allow-listed chat of the bot."""

    def __init__(self, bot: Bot, chat_id: int) -> None:
        self.bot = bot
        self.chat_id = chat_id
        self.name = f"telegram:{chat_id}"

    async def send(self, alert: Alert) -> float | None:
        """``sendMessage`` as plain text (no parse mode: symbols need no escaping)."""
        try:
            await self.bot.send_message(
                self.chat_id, alert.text[:4096], reply_markup=keyboard(alert.buttons)
            )
        except TelegramRetryAfter as e:
            raise RetryAfter(float(e.retry_after)) from None
        except (TelegramBadRequest, TelegramForbiddenError) as e:
            # A wrong chat id, a bot blocked by the user, a malformed text: not transient.
            raise PermanentSinkError(e.message) from None
        return None


def _sender(user: Any) -> str:
    if user is None:
        return "unknown"
    name = f" @{user.username}" if user.username else ""
    return f"{user.id}{name}"


class TelegramCommands:
    """The getUpdates loop: commands and button presses from the allow-listed chats."""

    def __init__(
        self,
        bot: Bot,
        chat_ids: list[int],
        poll_timeout_s: int,
        control: Control,
        gate: EntryGate,
        journal: Journal,
        publish: Publish,
        log: Any,
    ) -> None:
        self.bot = bot
        self.allowed = set(chat_ids)
        self.poll_timeout_s = poll_timeout_s
        self.control = control
        self.gate = gate
        self.journal = journal
        self.publish = publish
        self.log = log
        self.counts: dict[str, int] = {}
        self._confirm: dict[str, float] = {}
        self._offset: int | None = None
        self._n = 0

    async def run(self) -> None:
        """Poll until cancelled; a failing Bot API is retried with backoff, logged once."""
        delay = POLL_RETRY_S[0]
        failing = False
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=self._offset,
                    timeout=self.poll_timeout_s,
                    allowed_updates=["message", "callback_query"],
                    request_timeout=self.poll_timeout_s + 10,
                )
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if not failing:
                    self.log.warning("alerts.updates_failing", error=type(e).__name__)
                failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, POLL_RETRY_S[1])
                continue
            if failing:
                self.log.info("alerts.updates_recovered")
            failing, delay = False, POLL_RETRY_S[0]
            for update in updates:
                self._offset = update.update_id + 1
                try:
                    await self.handle(update)
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # one bad update must not stop remote control
                    self.log.error("alerts.command_failed", error=f"{type(e).__name__}: {e}")

    async def expire_held(self) -> None:
        """Drop entries unapproved past their deadline, journaled and said (once a second)."""
        for intent in self.gate.expire():
            await self._record("-", "timeout", "expire", "done", intent.intent_id)
            self.publish(Alert(kind="approval", text=f"EXPIRED unapproved {intent.symbol}"))

    async def handle(self, update: Update) -> None:
        """One update: a command message or a button press."""
        if update.message is not None and update.message.text:
            await self._message(update.message)
        elif update.callback_query is not None:
            await self._callback(update.callback_query)

    def _counted(self, status: str) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1

    async def _record(self, chat: str, who: str, command: str, status: str, detail: str) -> None:
        self._counted(status)
        with contextlib.suppress(JournalWriteError):  # logged and counted by the journal
            await self.journal.remote_command(
                time.time_ns(), "telegram", chat, who, command, status, detail
            )

    async def _refuse_stranger(self, chat_id: int, who: str, command: str) -> None:
        self.log.warning("alerts.command_refused", chat_id=chat_id, sender=who, command=command)
        await self._record(str(chat_id), who, command, "refused", "chat not allow-listed")

    async def _message(self, msg: Message) -> None:
        chat_id = msg.chat.id
        who = _sender(msg.from_user)
        text = (msg.text or "").strip()
        command = text.split()[0].split("@")[0].lower() if text.startswith("/") else text[:32]
        if chat_id not in self.allowed:
            await self._refuse_stranger(chat_id, who, command)
            await self._reply(chat_id, f"chat {chat_id} is not allowed to command this daemon")
            return
        age = time.time() - msg.date.timestamp()
        if age > MAX_AGE_S:
            await self._record(str(chat_id), who, command, "refused", f"stale: {age:.0f} s old")
            await self._reply(chat_id, f"{command} ignored: sent {age:.0f} s ago (stale)")
            return
        status, reply = await self._run(command, chat_id, who)
        await self._record(str(chat_id), who, command, status, reply[:500])
        self.log.info("alerts.command", chat_id=chat_id, sender=who, command=command, status=status)
        await self._reply(chat_id, reply, self._buttons_for(command, status))

    def _buttons_for(self, command: str, status: str) -> tuple[tuple[str, str], ...]:
        if command == "/flatten" and status == "asked":
            key = str(self._n)
            return (("Flatten now", f"fl:{key}"), ("Cancel", f"no:{key}"))
        return ()

    async def _run(self, command: str, chat_id: int, who: str) -> tuple[str, str]:
        c = self.control
        reads: dict[str, Callable[[], str]] = {
            "/status": c.status,
            "/positions": c.positions,
            "/pnl": c.pnl,
        }
        if command in reads:
            return "done", reads[command]()
        if command == "/orders":
            return "done", await c.orders()
        if command == "/pause":
            self.gate.paused = True
            return "done", "paused: no new entries (exits and the kill switch still work)"
        if command == "/resume":
            self.gate.paused = False
            return "done", "resumed: entries allowed (every risk check still applies)"
        if command == "/flatten":
            self._n += 1
            self._confirm[str(self._n)] = time.monotonic() + CONFIRM_S
            return "asked", f"flatten every position? confirm within {CONFIRM_S:g} s"
        if command == "/kill":
            return "done", await c.kill(f"telegram {who} in chat {chat_id}")
        return "refused", f"unknown command {command!r}. {HELP}"

    async def _callback(self, cb: CallbackQuery) -> None:
        msg = cb.message
        chat_id = msg.chat.id if msg is not None else 0
        who = _sender(cb.from_user)
        data = cb.data or ""
        action, _, key = data.partition(":")
        if chat_id not in self.allowed:
            await self._refuse_stranger(chat_id, who, f"button {action}")
            await _quiet(self.bot.answer_callback_query(cb.id, text="not allowed"), self.log)
            return
        if action in ("ap", "rj"):
            intent, outcome = self.gate.decide(key, approve=action == "ap")
            command = "approve" if action == "ap" else "reject"
            detail = f"{intent.intent_id} {outcome}" if intent else f"#{key} {outcome}"
            await self._record(str(chat_id), who, command, "done" if intent else "failed", detail)
            self.log.info("alerts.approval", sender=who, decision=command, detail=detail)
        elif action in ("fl", "no"):
            deadline = self._confirm.pop(key, None)
            if deadline is None or deadline < time.monotonic():
                outcome, status = "flatten: confirmation expired, send /flatten again", "failed"
            elif action == "no":
                outcome, status = "flatten cancelled", "done"
            else:
                outcome, status = await self.control.flatten(f"telegram {who}"), "done"
            await self._record(str(chat_id), who, f"/flatten {action}", status, outcome[:500])
            self.log.info("alerts.command", sender=who, command="/flatten", confirm=action)
        else:
            outcome = f"unknown button {data!r}"
            await self._record(str(chat_id), who, "button", "refused", outcome)
        await _quiet(self.bot.answer_callback_query(cb.id, text=outcome[:200]), self.log)
        if msg is not None:
            await self._edit(chat_id, msg.message_id, outcome)

    async def _reply(
        self, chat_id: int, text: str, buttons: tuple[tuple[str, str], ...] = ()
    ) -> None:
        # Replies go straight out (the command loop is itself off the order path); alerts use
        # the outboxes.
        await _quiet(
            self.bot.send_message(chat_id, text[:4096], reply_markup=keyboard(buttons)), self.log
        )

    async def _edit(self, chat_id: int, message_id: int, text: str) -> None:
        await _quiet(
            self.bot.edit_message_text(text=text[:4096], chat_id=chat_id, message_id=message_id),
            self.log,
        )


async def _quiet(aw: Awaitable[Any], log: Any) -> None:
    try:
        await aw
    except asyncio.CancelledError:
        raise
    except Exception as e:
        log.warning("alerts.reply_failed", error=type(e).__name__)
