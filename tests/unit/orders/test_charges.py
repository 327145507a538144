"""Charges of index-option fills against contract notes worked out by hand (defaults of 2026-12).

Rates: brokerage ₹20 or 0.25 % of the order's premium, whichever is lower; STT 0.15 % of the
sell premium; NSE 0.03503 % / BSE 0.0325 % of the premium; SEBI ₹10 per crore; stamp 0.003 % of the
buy premium; GST 18 % of brokerage + exchange + SEBI. Each line rounded to paise (half up).
"""

from __future__ import annotations

import pytest

from smartflow.config import CostsConfig
from smartflow.journal.store import FillCharges
from smartflow.orders.charges import ChargeModel


MODEL = ChargeModel(CostsConfig())


def test_nifty_round_trip_contract_note() -> None:
    # BUY 75 NIFTY 24000 CE @ 120.00 on NFO: premium 9,000.00
    #   brokerage min(20, 0.25 % × 9000 = 22.50)         = 20.00
    #   exchange  9000 × 0.03503 % = 3.1527             =  3.15
    #   SEBI      9000 × 10 / 1e7 = 0.009               =  0.01
    #   stamp     9000 × 0.003 %  = 0.27                =  0.27
    #   GST       18 % × (20 + 3.15 + 0.01 = 23.16) = 4.1688 = 4.17
    #   total                                            = 27.60
    buy = MODEL.fill("NFO", "BUY", 75, 120.0)
    assert buy == FillCharges(brokerage=20.0, exchange=3.15, sebi=0.01, stamp=0.27, gst=4.17)
    assert buy.total == 27.60
    # SELL 75 @ 135.50: premium 10,162.50
    #   brokerage min(20, 25.41)                         = 20.00
    #   STT       10162.50 × 0.15 % = 15.24375          = 15.24
    #   exchange  10162.50 × 0.03503 % = 3.5599        =  3.56
    #   SEBI      0.0101625                             =  0.01
    #   GST       18 % × (20 + 3.56 + 0.01 = 23.57) = 4.2426 = 4.24
    #   total                                            = 43.05
    sell = MODEL.fill("NFO", "SELL", 75, 135.5)
    assert sell == FillCharges(brokerage=20.0, stt=15.24, exchange=3.56, sebi=0.01, gst=4.24)
    assert sell.total == 43.05
    gross = 75 * (135.5 - 120.0)
    assert gross == 1162.50
    assert round(gross - buy.total - sell.total, 2) == 1091.85


def test_sensex_small_order_pays_the_percentage_brokerage_and_bse_rate() -> None:
    # BUY 20 SENSEX CE @ 250.00 on BFO: premium 5,000.00
    #   brokerage min(20, 0.25 % × 5000 = 12.50)         = 12.50
    #   exchange  5000 × 0.0325 % = 1.625 (half up)      =  1.63
    #   SEBI      0.005 (half up)                        =  0.01
    #   stamp     5000 × 0.003 % = 0.15                  =  0.15
    #   GST       18 % × (12.50 + 1.63 + 0.01 = 14.14) = 2.5452 = 2.55
    buy = MODEL.fill("BFO", "BUY", 20, 250.0)
    assert buy == FillCharges(brokerage=12.5, exchange=1.63, sebi=0.01, stamp=0.15, gst=2.55)
    assert buy.total == 16.84


def test_brokerage_is_per_order_across_partial_fills() -> None:
    # One order of 150 @ 100 filled 75 + 75: ₹20 for the order, not 18.75 twice.
    first = MODEL.fill("NFO", "BUY", 75, 100.0)
    second = MODEL.fill("NFO", "BUY", 75, 100.0, order_turnover=7500.0)
    assert (first.brokerage, second.brokerage) == (18.75, 1.25)
    assert first.brokerage + second.brokerage == 20.0


def test_every_rate_is_configurable_and_costs_can_be_off() -> None:
    zero = ChargeModel(CostsConfig(enabled=False))
    assert zero.fill("NFO", "SELL", 75, 100.0).total == 0.0
    old_stt = ChargeModel(CostsConfig(stt_sell_pct=0.1, brokerage_per_order=0.0))
    sell = old_stt.fill("NFO", "SELL", 75, 100.0)
    assert (sell.brokerage, sell.stt) == (0.0, 7.5)


def test_a_bad_rate_is_refused_naming_its_key() -> None:
    from smartflow.config import decode
    from smartflow.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"costs\.stt_sell_pct"):
        decode("[costs]\nstt_sell_pct = -0.1\n")
