"""The simulator's order management: Angel-like validation, matching, and Angel-shaped records.

Validation happens in two places, as at Angel: the API refuses malformed requests outright (a
failure envelope, no order: wrong variety, MARKET/IOC, a tag of 20+ characters (AB4008), an
unknown token, a bad product, a non-positive price or quantity), while exchange/RMS rules
produce an order that is accepted and then ``rejected`` with a ``text`` (a quantity that is not a
whole number of lots, a price off the tick grid).

Matching is against the simulated market's current quote: a BUY at or above the ask fills at the
ask, a SELL at or below the bid fills at the bid; anything else rests and is re-checked every
time the market advances. With ``partial_fills`` an order of two or more lots takes half its
remaining lots per match, so partially filled orders exist for a few market steps.

Records follow angel-smartapi.md §3/§4.5 field by field, including Angel's inconsistent typing:
the order book sends every number as a string and ``orderid`` as a JSON number (as in the docs'
sample), order details and the order-update stream send prices as numbers and quantities as
strings.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from smartflow.core.timeutil import ist_datetime
from smartflow.sim.market import Contract, Market
from smartflow.sim.universe import SimInstrument


Style = Literal["book", "details", "stream"]
PRODUCTS = frozenset({"INTRADAY", "CARRYFORWARD", "DELIVERY", "MARGIN"})
ALGO_RULE = (
    "orders are prohibited for algorithmic trading: send LIMIT orders with duration DAY "
    "(SEBI retail-algo framework, Angel One from 2026-04-01)"
)
# order-update ``order-status`` codes (DOC-11).
OPEN, CANCELLED, REJECTED, MODIFIED, COMPLETE = "AB01", "AB02", "AB03", "AB04", "AB05"


class Refusal(NamedTuple):
    """An API-level refusal: the request had no effect."""

    code: str
    message: str


@dataclass
class SimFill:
    """One execution of a simulated order."""

    fill_id: str
    price_paise: int
    quantity: int
    ts_ns: int


@dataclass
class SimOrder:
    """One order in the simulator's book."""

    orderid: str
    uniqueorderid: str
    exchange_order_id: str
    client_code: str
    tag: str
    contract: Contract
    side: str
    product: str
    price_paise: int
    quantity: int
    status: str = "open"
    filled: int = 0
    value_paise: int = 0
    cancelled_qty: int = 0
    text: str = ""
    update_ns: int = 0
    fills: list[SimFill] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        """Still working at the exchange."""
        return self.status == "open"

    @property
    def average_paise(self) -> float:
        """Average fill price in paise (0 before the first fill)."""
        return self.value_paise / self.filled if self.filled else 0.0

    def record(self, style: Style) -> dict[str, Any]:
        """The order as Angel's order book (``book``), details or stream carry it."""
        inst = self.contract.inst
        as_num = style != "book"
        price = self.price_paise / 100
        avg = round(self.average_paise / 100, 2)
        last = self.fills[-1] if self.fills else None
        t = _ist(self.update_ns)
        return {
            "variety": "NORMAL",
            "ordertype": "LIMIT",
            "ordertag": self.tag,
            "producttype": self.product,
            "duration": "DAY",
            "price": price if as_num else f"{price:.2f}",
            "triggerprice": 0 if as_num else "0",
            "quantity": str(self.quantity),
            "disclosedquantity": "0",
            "squareoff": 0 if as_num else "0",
            "stoploss": 0 if as_num else "0",
            "trailingstoploss": 0 if as_num else "0",
            "tradingsymbol": inst.symbol,
            "transactiontype": self.side,
            "exchange": inst.segment,
            "symboltoken": inst.token,
            **_contract_fields(inst, as_num),
            "lotsize": str(inst.lot_size),
            "cancelsize": str(self.cancelled_qty),
            "averageprice": avg if as_num else f"{avg:.2f}",
            "filledshares": str(self.filled),
            "unfilledshares": str(self.quantity - self.filled),
            "orderid": int(self.orderid) if style == "book" else self.orderid,
            "text": self.text,
            "status": self.status,
            "orderstatus": self.status,
            "updatetime": t,
            "exchtime": t if self.status != "rejected" else "",
            "exchorderupdatetime": t if self.status != "rejected" else "",
            "fillid": last.fill_id if last else "",
            "filltime": _ist(last.ts_ns)[-8:] if last else "",
            "parentorderid": "",
            "uniqueorderid": self.uniqueorderid,
            "exchangeorderid": self.exchange_order_id if self.status != "rejected" else "",
        }


def _trade_row(o: SimOrder, f: SimFill) -> dict[str, Any]:
    inst = o.contract.inst
    return {
        "exchange": inst.segment,
        "producttype": o.product,
        "tradingsymbol": inst.symbol,
        **_contract_fields(inst, as_num=False),
        "symbolgroup": "XX",
        "marketlot": str(inst.lot_size),
        "precision": "2",
        "multiplier": "-1",
        "tradevalue": f"{f.price_paise * f.quantity / 100:.2f}",
        "transactiontype": o.side,
        "fillprice": f"{f.price_paise / 100:.2f}",
        "fillsize": str(f.quantity),
        "orderid": o.orderid,
        "fillid": f.fill_id,
        "filltime": _ist(f.ts_ns)[-8:],
    }


def _contract_fields(inst: SimInstrument, as_num: bool) -> dict[str, Any]:
    return {
        "instrumenttype": "FUTIDX" if inst.kind == "FUT" else "OPTIDX",
        "strikeprice": inst.strike if as_num else f"{inst.strike:.2f}",
        "optiontype": inst.kind if inst.kind in ("CE", "PE") else "",
        "expirydate": inst.expiry.strftime("%d%b%Y").upper() if inst.expiry else "",
    }


def _ist(ns: int) -> str:
    return ist_datetime(ns).strftime("%d-%b-%Y %H:%M:%S")


def _paise(v: Any) -> int | None:
    try:
        return round(float(v) * 100)
    except (TypeError, ValueError):
        return None


def _whole(v: Any) -> int | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return int(f) if f.is_integer() else None


ChangeHook = Callable[[SimOrder, str], None]


class SimOms:
    """Orders of every client of the simulator, matched against ``market``."""

    def __init__(
        self,
        market: Market,
        now_ns: Callable[[], int],
        on_change: ChangeHook,
        partial_fills: bool = False,
    ) -> None:
        self.market = market
        self.now_ns = now_ns
        self.on_change = on_change
        self.partial_fills = partial_fills
        self.orders: dict[str, SimOrder] = {}
        # Orders that may still trade; pruned lazily, so each market step is cheap.
        self._resting: dict[str, SimOrder] = {}
        self._by_unique: dict[str, str] = {}
        self._seq = 0
        self._fill_seq = 0
        self._prefix = market.session_date.strftime("%y%m%d")

    # ---- lookups ------------------------------------------------------------------------

    def find(self, client_code: str, any_id: str) -> SimOrder | None:
        """An order by Angel's ``orderid`` or ``uniqueorderid``."""
        oid = self._by_unique.get(any_id, any_id)
        o = self.orders.get(oid)
        return o if o is not None and o.client_code == client_code else None

    def of(self, client_code: str) -> list[SimOrder]:
        """Every order of one client, oldest first."""
        return [o for o in self.orders.values() if o.client_code == client_code]

    def with_tag(self, tag: str) -> list[SimOrder]:
        """Orders carrying ``tag`` (tests: 'placed exactly once')."""
        return [o for o in self.orders.values() if o.tag == tag]

    # ---- requests -----------------------------------------------------------------------

    def _contract(self, body: dict[str, Any]) -> Contract | Refusal:
        c = self.market.by_token.get(str(body.get("symboltoken", "")))
        if c is None or c.inst.kind == "INDEX":
            return Refusal("AB1009", "Symbol Not Found")
        symbol = str(body.get("tradingsymbol", c.inst.symbol))
        exchange = str(body.get("exchange", c.inst.segment))
        if symbol != c.inst.symbol or exchange != c.inst.segment:
            return Refusal("AB1009", "Symbol Not Found: tradingsymbol/exchange do not match token")
        return c

    @staticmethod
    def _check_type(body: dict[str, Any]) -> Refusal | None:
        if str(body.get("variety", "")) != "NORMAL":
            return Refusal(
                "AB1008", "Invalid Order Variety. The simulator accepts NORMAL (LIMIT/DAY) only."
            )
        ordertype = str(body.get("ordertype", ""))
        if ordertype != "LIMIT":
            return Refusal("AB1007", f"{ordertype or 'Untyped'} {ALGO_RULE}")
        duration = str(body.get("duration", "DAY"))
        if duration != "DAY":
            return Refusal("AB1007", f"{duration} {ALGO_RULE}")
        return None

    def place(self, client_code: str, body: dict[str, Any]) -> SimOrder | Refusal:
        """Validate and accept a placeOrder body; the order may still be rejected by RMS."""
        refusal = self._check_type(body)
        if refusal:
            return refusal
        tag = str(body.get("ordertag", ""))
        if len(tag) >= 20:
            return Refusal("AB4008", "ordertag length should be less than 20 characters")
        side = str(body.get("transactiontype", ""))
        if side not in ("BUY", "SELL"):
            return Refusal("AB1007", "Invalid transactiontype")
        product = str(body.get("producttype", ""))
        if product not in PRODUCTS:
            return Refusal("AB1012", "Invalid Product Type")
        c = self._contract(body)
        if isinstance(c, Refusal):
            return c
        qty = _whole(body.get("quantity"))
        if qty is None or qty <= 0:
            return Refusal("AB1007", "Invalid quantity")
        price = _paise(body.get("price"))
        if price is None or price <= 0:
            return Refusal("AB1007", "Price must be greater than 0 for a LIMIT order")
        self._seq += 1
        now = self.now_ns()
        o = SimOrder(
            orderid=f"{self._prefix}{self._seq:09d}",
            uniqueorderid=str(uuid.uuid4()),
            exchange_order_id=f"1100000{self._seq:09d}",
            client_code=client_code,
            tag=tag,
            contract=c,
            side=side,
            product=product,
            price_paise=price,
            quantity=qty,
            update_ns=now,
        )
        self.orders[o.orderid] = o
        self._resting[o.orderid] = o
        self._by_unique[o.uniqueorderid] = o.orderid
        rms = self._rms(o)
        if rms:
            o.status, o.text = "rejected", rms
            self.on_change(o, REJECTED)
            return o
        self.on_change(o, OPEN)
        self.match(o)
        return o

    def _rms(self, o: SimOrder) -> str:
        inst = o.contract.inst
        if o.quantity % inst.lot_size:
            return f"Order quantity {o.quantity} is not a multiple of the lot size {inst.lot_size}"
        if o.price_paise % inst.tick_paise:
            return f"Order price is not a multiple of the tick size {inst.tick_paise / 100:.2f}"
        return ""

    def modify(self, client_code: str, body: dict[str, Any]) -> SimOrder | Refusal:
        """Re-price (and/or re-size) an open order."""
        refusal = self._check_type(body)
        if refusal:
            return refusal
        o = self.find(client_code, str(body.get("orderid", "")))
        if o is None:
            return Refusal("AB1013", "Order not found")
        if not o.is_open:
            return Refusal("AB1007", f"Order is {o.status} and cannot be modified")
        price = _paise(body.get("price"))
        qty = _whole(body.get("quantity", o.quantity))
        if price is None or price <= 0 or price % o.contract.inst.tick_paise:
            return Refusal("AB1007", "Invalid price")
        if qty is None or qty < max(o.filled, 1) or qty % o.contract.inst.lot_size:
            return Refusal("AB1007", "Invalid quantity")
        o.price_paise, o.quantity = price, qty
        o.update_ns = self.now_ns()
        self.on_change(o, MODIFIED)
        self.match(o)
        return o

    def cancel(self, client_code: str, body: dict[str, Any]) -> SimOrder | Refusal:
        """Cancel what is left of an open order."""
        if str(body.get("variety", "")) != "NORMAL":
            return Refusal("AB1008", "Invalid Order Variety. Value should be NORMAL.")
        o = self.find(client_code, str(body.get("orderid", "")))
        if o is None:
            return Refusal("AB1013", "Order not found")
        if not o.is_open:
            return Refusal("AB1007", f"Order is {o.status} and cannot be cancelled")
        o.status = "cancelled"
        o.cancelled_qty = o.quantity - o.filled
        o.update_ns = self.now_ns()
        self.on_change(o, CANCELLED)
        return o

    # ---- matching -----------------------------------------------------------------------

    def match(self, o: SimOrder) -> bool:
        """Fill ``o`` (partly, with ``partial_fills``) if the market crosses it."""
        if not o.is_open:
            return False
        c = o.contract
        px = c.ask if o.side == "BUY" else c.bid
        crosses = o.price_paise >= px if o.side == "BUY" else o.price_paise <= px
        if px <= 0 or not crosses:
            return False
        lot = c.inst.lot_size
        take = o.quantity - o.filled
        if self.partial_fills and take >= 2 * lot:
            take = (take // 2) // lot * lot
        now = self.now_ns()
        self._fill_seq += 1
        o.fills.append(SimFill(f"{50000000 + self._fill_seq}", px, take, now))
        o.filled += take
        o.value_paise += px * take
        o.update_ns = now
        if o.filled >= o.quantity:
            o.status = "complete"
            self.on_change(o, COMPLETE)
        else:
            self.on_change(o, OPEN)
        return True

    def on_market(self) -> int:
        """Re-check every resting order after the market moved; returns how many traded."""
        for oid in [k for k, o in self._resting.items() if not o.is_open]:
            del self._resting[oid]
        return sum(1 for o in list(self._resting.values()) if self.match(o))

    # ---- books --------------------------------------------------------------------------

    def trades(self, client_code: str) -> list[dict[str, Any]]:
        """Angel's trade-book rows (every value a string)."""
        return [_trade_row(o, f) for o in self.of(client_code) for f in o.fills]

    def positions(self, client_code: str) -> list[dict[str, Any]]:
        """Angel's getPosition rows, one per (token, product), every number a string."""
        agg: dict[tuple[str, str], list[int]] = {}
        contracts: dict[str, Contract] = {}
        for o in self.of(client_code):
            for f in o.fills:
                key = (o.contract.inst.token, o.product)
                contracts[key[0]] = o.contract
                a = agg.setdefault(key, [0, 0, 0, 0])  # buy qty, buy paise, sell qty, sell paise
                i = 0 if o.side == "BUY" else 2
                a[i] += f.quantity
                a[i + 1] += f.quantity * f.price_paise
        return [self._position_row(contracts[t], p, *a) for (t, p), a in sorted(agg.items())]

    @staticmethod
    def _position_row(
        c: Contract, product: str, bq: int, bv: int, sq: int, sv: int
    ) -> dict[str, Any]:
        inst = c.inst
        net = bq - sq
        buy_avg = bv / bq if bq else 0.0
        sell_avg = sv / sq if sq else 0.0
        net_avg = (buy_avg if net > 0 else sell_avg) if net else 0.0
        realised = min(bq, sq) * (sell_avg - buy_avg)
        unrealised = net * (c.ltp - net_avg) if net else 0.0
        return {
            "exchange": inst.segment,
            "symboltoken": inst.token,
            "producttype": product,
            "tradingsymbol": inst.symbol,
            "symbolname": inst.root,
            "priceden": "1",
            "pricenum": "1",
            "genden": "1",
            "gennum": "1",
            "precision": "2",
            "multiplier": "-1",
            "boardlotsize": "1",
            "buyqty": str(bq),
            "sellqty": str(sq),
            "buyamount": f"{bv / 100:.2f}",
            "sellamount": f"{sv / 100:.2f}",
            "symbolgroup": "XX",
            **_contract_fields(inst, as_num=False),
            "lotsize": str(inst.lot_size),
            "cfbuyqty": "0",
            "cfsellqty": "0",
            "buyavgprice": f"{buy_avg / 100:.2f}",
            "sellavgprice": f"{sell_avg / 100:.2f}",
            "avgnetprice": f"{net_avg / 100:.2f}",
            "netvalue": f"{(sv - bv) / 100:.2f}",
            "netqty": str(net),
            "totalbuyvalue": f"{bv / 100:.2f}",
            "totalsellvalue": f"{sv / 100:.2f}",
            "netprice": f"{net_avg / 100:.2f}",
            "ltp": f"{c.ltp / 100:.2f}",
            "realised": f"{realised / 100:.2f}",
            "unrealised": f"{unrealised / 100:.2f}",
            "pnl": f"{(realised + unrealised) / 100:.2f}",
        }
