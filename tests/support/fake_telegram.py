"""A local fake of the Telegram Bot API (the few methods smartflow uses) and a webhook receiver.

Both are aiohttp servers on 127.0.0.1 with a free port. The fake Bot API answers
``/bot<token>/<method>`` like Telegram does (``{"ok": true, "result": …}``) for getMe,
sendMessage, getUpdates (long poll), answerCallbackQuery and editMessageText, records what
the bot sent, and lets a test queue updates (messages, button presses) as if a user sent them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Sent:
    chat_id: int
    text: str
    buttons: list[dict[str, str]] = field(default_factory=list)


def _user(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": "Owner", "username": f"user{user_id}"}


class FakeBotApi:
    def __init__(self, token: str) -> None:
        self.token = token
        self.sent: list[Sent] = []
        self.calls: list[str] = []
        self.answered: list[str] = []
        self.edited: list[str] = []
        self.updates: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._msg_ids = itertools.count(1000)
        self._new = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- what a user does ---------------------------------------------------------------

    def message(self, chat_id: int, text: str, user_id: int | None = None) -> None:
        self._push(
            {
                "message": {
                    "message_id": next(self._msg_ids),
                    "date": int(time.time()),
                    "chat": {"id": chat_id, "type": "private"},
                    "from": _user(user_id or chat_id),
                    "text": text,
                }
            }
        )

    def press(self, chat_id: int, data: str, user_id: int | None = None) -> None:
        self._push(
            {
                "callback_query": {
                    "id": f"cb{next(self._ids)}",
                    "from": _user(user_id or chat_id),
                    "chat_instance": "ci",
                    "data": data,
                    "message": {
                        "message_id": next(self._msg_ids),
                        "date": int(time.time()),
                        "chat": {"id": chat_id, "type": "private"},
                        "text": "(buttons)",
                    },
                }
            }
        )

    def _push(self, update: dict[str, Any]) -> None:
        update["update_id"] = next(self._ids)
        self.updates.append(update)
        self._new.set()

    # ---- the Bot API ----------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        form = dict(await request.post())
        self.calls.append(method)
        result = await getattr(self, f"_{method}")(form)
        return web.json_response({"ok": True, "result": result})

    async def _getMe(self, _form: dict[str, Any]) -> Any:
        return {"id": 42, "is_bot": True, "first_name": "smartflow", "username": "sf_test_bot"}

    async def _sendMessage(self, form: dict[str, Any]) -> Any:
        chat_id = int(form["chat_id"])
        markup = json.loads(form.get("reply_markup") or "{}")
        buttons = [b for row in markup.get("inline_keyboard", []) for b in row]
        self.sent.append(Sent(chat_id, str(form["text"]), buttons))
        return self._message_result(chat_id, str(form["text"]))

    def _message_result(self, chat_id: int, text: str) -> dict[str, Any]:
        return {
            "message_id": next(self._msg_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "text": text,
        }

    async def _getUpdates(self, form: dict[str, Any]) -> Any:
        offset = int(form.get("offset") or 0)
        timeout = float(form.get("timeout") or 0)
        deadline = time.monotonic() + timeout
        while True:
            ready = [u for u in self.updates if u["update_id"] >= offset]
            left = deadline - time.monotonic()
            if ready or left <= 0:
                return ready
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), left)

    async def _answerCallbackQuery(self, form: dict[str, Any]) -> Any:
        self.answered.append(str(form.get("text", "")))
        return True

    async def _editMessageText(self, form: dict[str, Any]) -> Any:
        self.edited.append(str(form["text"]))
        return self._message_result(int(form["chat_id"]), str(form["text"]))


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/hook"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(dict(request.headers), await request.read()))
        return web.Response(status=204)

    def kinds(self) -> list[str]:
        return [json.loads(r.body)["kind"] for r in self.received]
