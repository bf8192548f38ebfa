"""``[unknown] operator_recheck_every / operator_recheck_for``: how often and how long an
attempt waiting for an operator is still re-checked. Read from the policy file; bad values
are refused naming the key."""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing.domain.dunning_policy import DEFAULT_POLICY
from billing.domain.policy_file import parse_policy
from billing.errors import ConfigurationError


@pytest.mark.parametrize(
    ("toml", "every", "for_"),
    [
        ("", timedelta(hours=6), timedelta(days=30)),
        ('[unknown]\noperator_recheck_every = "1h"', timedelta(hours=1), timedelta(days=30)),
        ('[unknown]\noperator_recheck_for = "7d"', timedelta(hours=6), timedelta(days=7)),
    ],
)
def test_operator_recheck_is_read_from_the_policy(
    toml: str, every: timedelta, for_: timedelta
) -> None:
    unknown = parse_policy(toml).unknown
    assert (unknown.operator_recheck_every, unknown.operator_recheck_for) == (every, for_)
    assert unknown.give_up_after == DEFAULT_POLICY.unknown.give_up_after


@pytest.mark.parametrize(
    "toml",
    ['[unknown]\noperator_recheck_every = "0s"', "[unknown]\noperator_recheck_for = 5"],
)
def test_a_bad_operator_recheck_value_is_refused_naming_the_key(toml: str) -> None:
    with pytest.raises(
        ConfigurationError,
        match=r"unknown\.operator_recheck_(every|for): must be a (positive )?duration",
    ):
        parse_policy(toml)
