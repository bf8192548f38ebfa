"""The dunning policy file: defaults, the shipped files and every kind of bad input."""

from __future__ import annotations

import re
from dataclasses import FrozenInstanceError, replace
from datetime import timedelta
from pathlib import Path

import pytest

from billing.domain.dunning_policy import (
    DEFAULT_POLICY,
    DoNotRetryAction,
    DunningPolicy,
    ExhaustedAction,
    SoftDeclinePolicy,
    TransientPolicy,
)
from billing.domain.policy_file import load_policy, parse_policy
from billing.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[3]
D = timedelta(days=1)
H = timedelta(hours=1)
M = timedelta(minutes=1)
S = timedelta(seconds=1)


def test_default_file_equals_default_policy() -> None:
    assert load_policy(ROOT / "config" / "dunning.toml") == DEFAULT_POLICY


def test_load_policy_accepts_a_string_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert load_policy("config/dunning.toml") == DEFAULT_POLICY


def test_default_policy_values() -> None:
    policy = DEFAULT_POLICY
    assert policy.soft_decline.retry_after == (1 * D, 3 * D, 5 * D, 7 * D)
    assert policy.soft_decline.on_exhausted is ExhaustedAction.SUSPEND
    assert policy.soft_decline.cancel_after == 14 * D
    assert policy.hard_decline.confirm_after == 1 * H
    assert policy.hard_decline.cancel_after == 30 * D
    assert policy.do_not_retry.action is DoNotRetryAction.NEEDS_PAYMENT_METHOD
    assert policy.transient.backoff == (1 * M, 5 * M, 30 * M, 2 * H)
    assert policy.unknown.reconcile_backoff == (10 * S, 1 * M, 5 * M, 30 * M, 2 * H)
    assert policy.unknown.give_up_after == 3 * D
    assert policy.merchant_config.pause_backoff == (1 * M, 5 * M, 15 * M, 1 * H)
    assert DunningPolicy() == DEFAULT_POLICY


def test_fast_file_loads_with_seconds_scale_values() -> None:
    policy = load_policy(ROOT / "config" / "dunning-fast.toml")
    assert policy.soft_decline.retry_after == (S, S, S)
    assert policy.soft_decline.on_exhausted is ExhaustedAction.SUSPEND
    assert policy.soft_decline.cancel_after == 5 * S
    assert policy.hard_decline.confirm_after == S
    assert policy.hard_decline.cancel_after is not None
    assert policy.hard_decline.cancel_after <= M
    assert policy.transient.backoff == (S, 2 * S)
    assert policy.unknown.reconcile_backoff == (S, 2 * S)
    assert policy.unknown.give_up_after == M
    assert policy.merchant_config.pause_backoff == (2 * S, 5 * S)


def test_policy_is_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        DEFAULT_POLICY.soft_decline.on_exhausted = ExhaustedAction.CANCEL  # type: ignore[misc]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty-file"),
        pytest.param("# only comments\n", id="only-comments"),
    ],
)
def test_empty_file_is_the_default_policy(text: str) -> None:
    assert parse_policy(text) == DEFAULT_POLICY


def test_partial_file_falls_back_to_defaults() -> None:
    policy = parse_policy('[transient]\nbackoff = ["2m"]\n')
    assert policy == replace(DEFAULT_POLICY, transient=TransientPolicy(backoff=(2 * M,)))


def test_missing_keys_in_a_table_keep_their_defaults() -> None:
    policy = parse_policy('[soft_decline]\non_exhausted = "cancel"\ncancel_after = "14d"\n')
    assert policy.soft_decline == SoftDeclinePolicy(
        retry_after=DEFAULT_POLICY.soft_decline.retry_after,
        on_exhausted=ExhaustedAction.CANCEL,
        cancel_after=14 * D,
    )
    assert policy.hard_decline == DEFAULT_POLICY.hard_decline

    unknown = parse_policy('[unknown]\ngive_up_after = "1d"\n').unknown
    assert unknown.reconcile_backoff == DEFAULT_POLICY.unknown.reconcile_backoff
    assert unknown.give_up_after == D


@pytest.mark.parametrize(
    ("text", "section"),
    [
        pytest.param('[soft_decline]\ncancel_after = ""\n', "soft_decline", id="soft-empty"),
        pytest.param('[soft_decline]\nretry_after = ["1d"]\n', "soft_decline", id="soft-omitted"),
        pytest.param('[hard_decline]\ncancel_after = ""\n', "hard_decline", id="hard-empty"),
        pytest.param('[hard_decline]\nconfirm_after = "2h"\n', "hard_decline", id="hard-omitted"),
    ],
)
def test_cancel_after_empty_or_omitted_means_never(text: str, section: str) -> None:
    policy = parse_policy(text)
    assert getattr(policy, section).cancel_after is None


def test_parse_accepts_a_mapping() -> None:
    policy = parse_policy(
        {"soft_decline": {"retry_after": ["2d", "1d12h"]}, "do_not_retry": {"action": "cancel"}}
    )
    assert policy.soft_decline.retry_after == (2 * D, D + 12 * H)
    assert policy.do_not_retry.action is DoNotRetryAction.CANCEL


def test_enum_values_are_case_insensitive() -> None:
    assert parse_policy('[soft_decline]\non_exhausted = "Cancel"\n').soft_decline.on_exhausted is (
        ExhaustedAction.CANCEL
    )


BAD_INPUTS = [
    pytest.param(
        '[soft_decline]\nretry_after = ["1d", "3d", "3x"]\n',
        "soft_decline.retry_after[2]: invalid duration '3x'",
        id="bad-duration-in-list",
    ),
    pytest.param(
        '[soft_decline]\nretry_after = ["1d", "0s"]\n',
        "soft_decline.retry_after[1]: must be a positive duration",
        id="zero-duration-in-list",
    ),
    pytest.param(
        "[soft_decline]\nretry_after = []\n",
        "soft_decline.retry_after: must list at least one duration",
        id="empty-list",
    ),
    pytest.param(
        '[soft_decline]\nretry_after = "1d"\n',
        "soft_decline.retry_after: must be a list",
        id="string-instead-of-list",
    ),
    pytest.param(
        "[transient]\nbackoff = [60]\n",
        "transient.backoff[0]: must be a duration string",
        id="number-instead-of-duration",
    ),
    pytest.param(
        '[soft_decline]\non_exhausted = "delete"\n',
        "soft_decline.on_exhausted: must be one of 'suspend', 'cancel'",
        id="bad-on-exhausted",
    ),
    pytest.param(
        "[soft_decline]\non_exhausted = true\n",
        "soft_decline.on_exhausted: must be one of",
        id="bool-on-exhausted",
    ),
    pytest.param(
        '[soft_decline]\ncancel_after = "-1d"\n',
        "soft_decline.cancel_after: invalid duration '-1d'",
        id="negative-cancel-after",
    ),
    pytest.param(
        "[soft_decline]\ncancel_after = 14\n",
        "soft_decline.cancel_after: must be a duration string",
        id="number-cancel-after",
    ),
    pytest.param(
        '[soft_decline]\nretry_afer = ["1d"]\n',
        "soft_decline.retry_afer: unknown key",
        id="unknown-key",
    ),
    pytest.param(
        '[soft_declines]\nretry_after = ["1d"]\n',
        "soft_declines: unknown section",
        id="unknown-section",
    ),
    pytest.param(
        "soft_decline = 3\n",
        "soft_decline: must be a table",
        id="section-not-a-table",
    ),
    pytest.param(
        '[hard_decline]\nconfirm_after = "0m"\n',
        "hard_decline.confirm_after: must be a positive duration",
        id="zero-confirm-after",
    ),
    pytest.param(
        '[hard_decline]\nconfirm_after = ""\n',
        "hard_decline.confirm_after: empty duration",
        id="empty-confirm-after",
    ),
    pytest.param(
        '[do_not_retry]\naction = "retry"\n',
        "do_not_retry.action: must be one of 'needs_payment_method', 'cancel'",
        id="bad-do-not-retry-action",
    ),
    pytest.param(
        "[transient]\nbackoff = []\n",
        "transient.backoff: must list at least one duration",
        id="empty-transient-backoff",
    ),
    pytest.param(
        '[unknown]\nreconcile_backoff = ["10s", "soon"]\n',
        "unknown.reconcile_backoff[1]: invalid duration 'soon'",
        id="bad-reconcile-backoff",
    ),
    pytest.param(
        '[unknown]\ngive_up_after = "0s"\n',
        "unknown.give_up_after: must be a positive duration",
        id="zero-give-up",
    ),
    pytest.param(
        '[merchant_config]\npause_backoff = "1m"\n',
        "merchant_config.pause_backoff: must be a list",
        id="pause-backoff-not-a-list",
    ),
    pytest.param(
        "[transient\n",
        "invalid TOML",
        id="broken-toml",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_INPUTS)
def test_bad_input_names_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)) as caught:
        parse_policy(text)
    text_of_error = str(caught.value)
    assert text_of_error.startswith("dunning policy")
    assert "\n" not in text_of_error


def test_load_policy_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('[transient]\nbackoff = ["1m", "x"]\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"policy\.toml: transient\.backoff\[1\]"):
        load_policy(path)


def test_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_policy(tmp_path / "nope.toml")


def test_non_mapping_source_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="expected TOML text or a mapping"):
        parse_policy(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: SoftDeclinePolicy(retry_after=()), id="empty-schedule"),
        pytest.param(lambda: SoftDeclinePolicy(retry_after=(D, -D)), id="negative-delay"),
        pytest.param(lambda: TransientPolicy(backoff=(timedelta(0),)), id="zero-backoff"),
    ],
)
def test_dataclasses_refuse_invalid_values(build: object) -> None:
    assert callable(build)
    with pytest.raises(ConfigurationError, match="dunning policy: "):
        build()


def test_stuck_orders_thresholds_are_read_from_the_policy_file() -> None:
    from billing.domain.dunning_policy import StuckOrderPolicy

    assert parse_policy("").stuck_orders == StuckOrderPolicy(decline_after=timedelta(minutes=30))
    policy = parse_policy('[stuck_orders]\ndecline_after = "45m"\n')
    assert policy.stuck_orders.decline_after == timedelta(minutes=45)
    assert parse_policy('[stuck_orders]\ndecline_after = ""\n').stuck_orders.decline_after is None
    # a table without the key keeps the default; other tables are untouched
    assert parse_policy("[stuck_orders]\n").stuck_orders == StuckOrderPolicy()
    assert policy.soft_decline == parse_policy("").soft_decline


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[stuck_orders]\ndecline_after = "0s"\n', "stuck_orders.decline_after"),
        ("[stuck_orders]\ndecline_after = 30\n", "stuck_orders.decline_after"),
        ('[stuck_orders]\nafter = "30m"\n', "stuck_orders.after: unknown key"),
    ],
)
def test_bad_stuck_orders_thresholds_name_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        parse_policy(text)
