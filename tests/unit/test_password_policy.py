from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rehab.services import password_policy
from rehab.services.commands import InvalidInput


@pytest.mark.parametrize(
    "password",
    [
        "short",
        "password1234",
        "qwertyuiop123",
        "123456789012",
        "aaaaaaaaaaaa",
        "abcabcabcabc",
        "!!iloveyou2024",
        "Password123!",
    ],
)
def test_weak_or_common_passwords_are_refused(password: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        password_policy.check(password)
    assert refused.value.field == "password"


def test_the_e_mail_name_is_refused() -> None:
    with pytest.raises(InvalidInput):
        password_policy.check("elena.marsh-rehab-2025", email="elena.marsh@demo.test")


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery staple",
        "marble stairs in september",
        "x" * 3 + "kq9!Lp2#vB7z",
        "a" * 200 + "b",
    ],
)
def test_long_uncommon_passwords_are_accepted(password: str) -> None:
    password_policy.check(password)


@given(st.text(min_size=64, max_size=256).filter(lambda p: len(set(p)) > 8))
def test_passwords_of_64_characters_and_more_are_accepted(password: str) -> None:
    password_policy.check(password)
