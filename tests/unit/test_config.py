"""Typed config: errors that name the key and the file, the documented keys, and credentials."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from smartflow.config import (
    SECRET_NAMES,
    ApiConfig,
    Config,
    Credentials,
    Secret,
    decode,
    fingerprint,
    load,
    load_credentials,
    to_builtins,
)
from smartflow.core.errors import ConfigError


REPO_CONFIG = Path(__file__).resolve().parents[2] / "config.toml"

# design.md §3.1, verbatim: the keys (and defaults) users' scripts rely on.
DESIGN_SNIPPET = """
mode = "sim"                 # "sim" (embedded simulator, paper orders) | "live"
[market]
underlyings = ["NIFTY"]      # roots as in the scrip master's `name`
strikes_each_side = 20       # ATM ± N
[model]
forward = "synthetic"        # "synthetic" | "future" | "spot"
rate = 0.065                 # continuous compounding
dividend_yield = 0.0         # used by "spot" mode only
iv_price = "mid"             # "mid" (falls back to LTP) | "ltp"
[detectors]
profile = "default"          # "default" | "volatile" | "calm" | "scalping"
bar_seconds = 5
[strategy]
enabled = true
[orders]
broker = "paper"             # "paper" | "angel"
[api]
listen = "127.0.0.1:8321"
"""


def _error(text: str, source: str = "x.toml") -> str:
    with pytest.raises(ConfigError) as excinfo:
        decode(text, source)
    return str(excinfo.value)


def test_defaults() -> None:
    cfg = load(None)
    assert cfg == Config() == decode("", "empty.toml")
    assert cfg.mode == "sim"
    assert cfg.orders.broker == "paper"


def test_design_keys_and_defaults() -> None:
    cfg = Config()
    assert cfg.mode == "sim"
    assert cfg.market.underlyings == ["NIFTY"]
    assert cfg.market.strikes_each_side == 20
    assert cfg.model.forward == "synthetic"
    assert cfg.model.rate == 0.065
    assert cfg.model.dividend_yield == 0.0
    assert cfg.model.iv_price == "mid"
    assert cfg.detectors.profile == "default"
    assert cfg.detectors.bar_seconds == 5
    assert cfg.strategy.enabled is True
    assert cfg.orders.broker == "paper"
    assert cfg.api.listen == "127.0.0.1:8321"
    # The snippet in design.md is a valid file and spells out exactly the defaults.
    assert decode(DESIGN_SNIPPET, "design.toml") == cfg


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("mode", '"live"'),
        ("market.underlyings", '["NIFTY", "SENSEX"]'),
        ("market.strikes_each_side", "30"),
        ("model.forward", '"future"'),
        ("model.forward", '"spot"'),
        ("model.rate", "0.1"),
        ("model.dividend_yield", "0.01"),
        ("model.iv_price", '"ltp"'),
        ("detectors.profile", '"scalping"'),
        ("detectors.bar_seconds", "15"),
        ("strategy.enabled", "false"),
        ("orders.broker", '"angel"'),
        ("api.listen", '"0.0.0.0:9000"'),
    ],
)
def test_design_keys_accept_their_documented_values(key: str, value: str) -> None:
    section, _, name = key.rpartition(".")
    text = f"[{section}]\n{name} = {value}\n" if section else f"{name} = {value}\n"
    if key == "orders.broker":
        text = 'mode = "live"\n' + text
    obj: object = decode(text, "x.toml")
    for part in key.split("."):
        obj = getattr(obj, part)
    assert obj == tomllib.loads(f"v = {value}")["v"]


def test_unknown_key_names_key_and_file() -> None:
    assert _error('[market]\nunderlying = ["NIFTY"]\n') == "x.toml: unknown key `market.underlying`"
    assert _error("modee = 'sim'\n") == "x.toml: unknown key `modee`"
    assert "unknown key `sim.scenarios[0].strenght`" in _error(
        "[[sim.scenarios]]\nkind = 'whale'\nstart_s = 1\nstrenght = 2\n"
    )


def test_wrong_type_names_key() -> None:
    msg = _error("[market]\nstrikes_each_side = 'twenty'\n")
    assert msg.startswith("x.toml: key `market.strikes_each_side`")
    assert "Expected `int`, got `str`" in msg
    assert "key `market.underlyings[0]`" in _error("[market]\nunderlyings = [1]\n")
    assert "key `mode`" in _error("mode = 3\n")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[market]\nstrikes_each_side = 0\n", "market.strikes_each_side"),
        ("[market]\nstrikes_each_side = 201\n", "market.strikes_each_side"),
        ("[feed]\nmax_sockets = 4\n", "feed.max_sockets"),
        ("[feed]\nmax_tokens_per_socket = 1001\n", "feed.max_tokens_per_socket"),
        ("[detectors]\nbar_seconds = 0\n", "detectors.bar_seconds"),
        ("[detectors]\nwhale_volume_multiple = 0\n", "detectors.whale_volume_multiple"),
        ("[model]\nrate = 0.9\n", "model.rate"),
        ("[risk]\norders_per_second = 10\n", "risk.orders_per_second"),
        ("[strategy]\nexit_cutoff_ist = '25:00'\n", "strategy.exit_cutoff_ist"),
        ("[sim]\nport = 70000\n", "sim.port"),
    ],
)
def test_out_of_range_names_key(text: str, key: str) -> None:
    assert _error(text).startswith(f"x.toml: key `{key}`")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("mode = 'paper'\n", "mode"),
        ("[model]\nforward = 'bogus'\n", "model.forward"),
        ("[model]\niv_price = 'bid'\n", "model.iv_price"),
        ("[detectors]\nprofile = 'wild'\n", "detectors.profile"),
        ("[orders]\nbroker = 'zerodha'\n", "orders.broker"),
        ("[feed]\nmode = 'depth'\n", "feed.mode"),
        ("[market]\nexpiries = 3\n", "market.expiries"),
        ("[market]\nexpiries = 0\n", "market.expiries"),
    ],
)
def test_bad_enum_names_key(text: str, key: str) -> None:
    msg = _error(text)
    assert msg.startswith(f"x.toml: key `{key}`")
    assert "Invalid enum value" in msg


@pytest.mark.parametrize("text", ["mode = \n", "[market\n", "mode = 'sim'\nmode = 'live'\n"])
def test_invalid_toml_names_file(text: str) -> None:
    assert _error(text, "bad.toml").startswith("bad.toml: ")


def test_sim_mode_refuses_the_angel_broker() -> None:
    msg = _error('mode = "sim"\n[orders]\nbroker = "angel"\n')
    assert msg.startswith("x.toml: ")
    assert "orders.broker must be 'paper'" in msg
    assert decode('mode = "live"\n[orders]\nbroker = "angel"\n').orders.broker == "angel"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[api]\nlisten = '8321'\n", "api.listen must be HOST:PORT"),
        ("[api]\nlisten = 'localhost:99999'\n", "api.listen must be HOST:PORT"),
        ("[market]\nexpiry = '25-11-2026'\n", "market.expiry must be YYYY-MM-DD"),
        ("[market]\nunderlyings = ['nifty']\n", "market.underlyings"),
        (
            "[market]\nexpiries = 2\nstrikes_each_side = 200\nunderlyings = ['NIFTY', 'SENSEX']\n",
            "market.expiries: 2 expiries of 2 underlyings at ATM ± 200 strikes stream 3212 tokens,"
            " more than the feed's 3000",
        ),
        ("[history]\nprev_close_requests_per_s = 4\n", "history.prev_close_requests_per_s"),
    ],
)
def test_cross_field_checks(text: str, fragment: str) -> None:
    assert fragment in _error(text)


def test_two_expiries_within_the_feed_budget() -> None:
    cfg = decode(
        "[market]\nexpiries = 2\nstrikes_each_side = 100\nunderlyings = ['NIFTY', 'SENSEX']\n"
    )
    assert cfg.market.expiries == 2
    assert decode("").market.expiries == 1


def test_load_reads_file_and_names_it(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[detectors]\nbar_seconds = 10\n", encoding="utf-8")
    assert load(good).detectors.bar_seconds == 10
    bad = tmp_path / "bad.toml"
    bad.write_text("[market]\nunderlying = []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.toml: unknown key `market\.underlying`"):
        load(bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        load(tmp_path / "missing.toml")


def test_config_is_frozen_and_fingerprinted() -> None:
    cfg = Config()
    with pytest.raises(AttributeError):
        cfg.mode = "live"
    assert fingerprint(cfg) == fingerprint(decode(DESIGN_SNIPPET))
    assert fingerprint(cfg) != fingerprint(decode("[detectors]\nbar_seconds = 6\n"))
    assert to_builtins(cfg)["market"]["underlyings"] == ["NIFTY"]


@pytest.mark.skipif(not REPO_CONFIG.exists(), reason="no config.toml in the repository")
def test_repository_config_loads() -> None:
    load(REPO_CONFIG)


# ---- credentials ---------------------------------------------------------------------


def test_credentials_directory_wins_over_environment(tmp_path: Path) -> None:
    (tmp_path / "api_key").write_text("key-from-file\n", encoding="utf-8")
    (tmp_path / "pin").write_text("", encoding="utf-8")
    env = {
        "CREDENTIALS_DIRECTORY": str(tmp_path),
        "SMARTFLOW_API_KEY": "key-from-env",
        "SMARTFLOW_PIN": "4321",
        "SMARTFLOW_CLIENT_CODE": " A1234 ",
    }
    creds = load_credentials(env)
    assert creds.api_key is not None
    assert creds.api_key.reveal() == "key-from-file"
    # An empty credential file falls back to the environment; values are stripped.
    assert creds.pin is not None
    assert creds.pin.reveal() == "4321"
    assert creds.client_code is not None
    assert creds.client_code.reveal() == "A1234"
    assert creds.totp_secret is None
    assert creds.missing() == ["totp_secret"]


def test_credentials_from_environment_only() -> None:
    creds = load_credentials({"SMARTFLOW_TOTP_SECRET": "JBSWY3DPEHPK3PXP"})
    assert creds.totp_secret is not None
    assert creds.totp_secret.reveal() == "JBSWY3DPEHPK3PXP"
    assert creds.missing() == ["api_key", "client_code", "pin"]
    assert load_credentials({}) == Credentials()


def test_secret_never_shows_its_value() -> None:
    value = "hunter2-very-secret"
    s = Secret(value)
    rendered = [repr(s), str(s), f"{s}", f"{s!r}", format(s), "%s" % s, repr([s])]  # noqa: UP031
    for text in rendered:
        assert value not in text
        assert "****" in text
    creds = Credentials(api_key=s)
    assert value not in repr(creds)
    assert value not in str(creds)
    assert s.reveal() == value
    assert bool(s)
    assert not Secret("")
    with pytest.raises(AttributeError):
        s.extra = 1  # type: ignore[attr-defined]


def test_redacted_says_set_or_missing_only(tmp_path: Path) -> None:
    creds = load_credentials({"SMARTFLOW_API_KEY": "abcdef123", "SMARTFLOW_KILL_TOKEN": "kill-me"})
    red = creds.redacted()
    assert set(red) == set(SECRET_NAMES)
    assert red["api_key"] == "set"
    assert red["kill_token"] == "set"
    assert red["pin"] == "missing"
    assert set(red.values()) <= {"set", "missing"}
    assert "abcdef123" not in repr(red)


@pytest.mark.parametrize(
    ("listen", "loopback"),
    [
        ("127.0.0.1:8321", True),
        ("127.5.6.7:1", True),
        ("localhost:8321", True),
        ("[::1]:8321", True),
        ("0.0.0.0:8321", False),
        ("[::]:8321", False),
        ("10.0.0.5:8321", False),
        ("my-host:8321", False),
    ],
)
def test_api_listen_loopback(listen: str, loopback: bool) -> None:
    assert ApiConfig(listen=listen).loopback() is loopback


def test_api_token_is_a_credential_never_shown() -> None:
    creds = load_credentials({"SMARTFLOW_API_TOKEN": "tok-123456"})
    assert creds.api_token is not None
    assert creds.api_token.reveal() == "tok-123456"
    assert "tok-123456" in creds.values()
    assert creds.redacted()["api_token"] == "set"
    assert "tok-123456" not in repr(creds)
