"""Merchant accounts in the settings: environment and TOML, one clear error line, no secret
ever shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from billing.bootstrap import build_gateways, settings_secrets
from billing.domain.dialects import Dialect
from billing.errors import ConfigurationError
from billing.gateway.accounts import MerchantGateways, UnconfiguredAccount, gateway_for
from billing.settings import load_settings

SECRET = "eu-S3CRET-password"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("BILLING_") and not name.startswith("BILLING_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env of the checkout


def test_without_merchants_there_is_one_default_account_from_gateway_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BILLING_GATEWAY_URL", "https://acq.example/payment/rest")
    accounts = load_settings().merchant_accounts()
    assert list(accounts) == ["default"]
    assert accounts["default"].url == "https://acq.example/payment/rest"
    assert accounts["default"].dialect is Dialect.RBS


def test_accounts_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLING_MERCHANTS__EU__URL", "https://api.uat.all2pay.net")
    monkeypatch.setenv("BILLING_MERCHANTS__EU__DIALECT", "all2pay")
    monkeypatch.setenv("BILLING_MERCHANTS__EU__USERNAME", "eu-login")
    monkeypatch.setenv("BILLING_MERCHANTS__EU__PASSWORD", SECRET)
    monkeypatch.setenv("BILLING_MERCHANTS__EU__RATE_LIMIT", "5")
    monkeypatch.setenv("BILLING_MERCHANTS__EU__TWO_PHASE", "true")
    settings = load_settings()
    eu = settings.merchant_accounts()["eu"]
    assert (eu.dialect, eu.rate_limit, eu.two_phase) == (Dialect.ALL2PAY, 5, True)
    assert SECRET not in repr(settings) and SECRET not in repr(eu)
    assert SECRET in {v for v, _ in settings_secrets(settings).pairs}  # redacted in logs


def test_accounts_come_from_a_toml_table(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "billing.toml"
    path.write_text(
        '[merchants.kzt]\nurl = "https://kz.example/payment/rest"\ntoken = "kz-token-value"\n'
        "fiscal_receipts = false\n"
    )
    monkeypatch.setenv("BILLING_CONFIG_FILE", str(path))
    kzt = load_settings().merchant_accounts()["kzt"]
    assert kzt.token is not None and not kzt.fiscal_receipts


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"BILLING_MERCHANTS__EU__URL": "https://x.example"},
            "invalid setting BILLING_MERCHANTS__EU: Value error, needs a token, or a username "
            "and a password",
        ),
        (
            {
                "BILLING_MERCHANTS__EU__URL": "ftp://x.example",
                "BILLING_MERCHANTS__EU__TOKEN": SECRET,
            },
            "invalid setting BILLING_MERCHANTS__EU__URL: Value error, base_url must be an "
            "http(s) URL with a host",
        ),
        (
            {
                "BILLING_MERCHANTS__EU__URL": "https://x.example",
                "BILLING_MERCHANTS__EU__TOKEN": SECRET,
                "BILLING_MERCHANTS__EU__DIALECT": "soap",
            },
            "invalid setting BILLING_MERCHANTS__EU__DIALECT: Value error, unknown gateway "
            "dialect 'soap'; use one of rbs, all2pay",
        ),
        (
            {
                "BILLING_MERCHANTS__EU__URL": "https://x.example",
                "BILLING_MERCHANTS__EU__TOKEN": SECRET,
                "BILLING_MERCHANTS__EU__TWOPHASE": "true",
            },
            "invalid setting BILLING_MERCHANTS__EU__TWOPHASE: Extra inputs are not permitted",
        ),
        (
            {
                "BILLING_MERCHANTS__DEFAULT__URL": "https://x.example",
                "BILLING_MERCHANTS__DEFAULT__TOKEN": SECRET,
            },
            "'default' is the BILLING_GATEWAY_* account",
        ),
        ({"BILLING_GATEWAY_DIALECT": "json"}, "invalid setting BILLING_GATEWAY_DIALECT"),
    ],
)
def test_a_mistake_is_one_line_naming_the_setting_never_the_secret(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    text = str(caught.value)
    assert message in text
    assert "\n" not in text and SECRET not in text


def test_bootstrap_builds_one_gateway_per_account_and_routes_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BILLING_MERCHANTS__EU__URL", "https://api.uat.all2pay.net")
    monkeypatch.setenv("BILLING_MERCHANTS__EU__TOKEN", SECRET)
    gateways = build_gateways(load_settings())
    try:
        assert isinstance(gateways, MerchantGateways)
        assert gateways.names == ("default", "eu")
        assert gateway_for(gateways, "eu") is not gateway_for(gateways, "default")
        assert isinstance(gateway_for(gateways, "gone"), UnconfiguredAccount)
        assert SECRET not in repr(gateways) and SECRET not in repr(gateway_for(gateways, "eu"))
    finally:
        gateways.close()


def test_accounts_come_from_a_dotenv_file_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "BILLING_MERCHANTS__EU__URL=https://eu.example/v1\n"
        "BILLING_MERCHANTS__EU__DIALECT=all2pay\n"
        f"BILLING_MERCHANTS__EU__TOKEN={SECRET}\n"
    )
    eu = load_settings().merchant_accounts()["eu"]
    assert eu.dialect is Dialect.ALL2PAY and eu.token is not None
