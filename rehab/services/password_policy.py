"""Password rules (NIST SP 800-63B §5.1.1.2, ASVS 2.1): at least 12 characters, long ones
accepted, no composition rules, and not a known common or breached password.

The list is zxcvbn's 30 000 most common passwords (from breach corpora), shipped with the
package, so the check works offline.
"""

from __future__ import annotations

from functools import cache
from itertools import pairwise

from rehab.services.commands import InvalidInput

MIN_LENGTH = 12
MAX_LENGTH = 256


@cache
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def is_common(password: str) -> bool:
    """Common as typed, or a common one with a little padding ("password1234!")."""
    lowered = password.lower()
    common = _common_passwords()
    if lowered in common:
        return True
    stripped = lowered.rstrip("0123456789!?.@#$%*_- ").lstrip("0123456789!?.@#$%*_- ")
    if stripped in common and len(stripped) >= 4:
        return True
    # The same short chunk repeated ("abcabcabcabc") is as weak as the chunk.
    if any(
        len(lowered) % size == 0 and lowered == lowered[:size] * (len(lowered) // size)
        for size in range(1, 5)
    ):
        return True
    return _is_sequence(lowered)


def _is_sequence(text: str) -> bool:
    """Runs like "123456789012" or "abcdefghijkl": nearly every step is ±1 (9 wraps to 0)."""
    steps = [ord(b) - ord(a) for a, b in pairwise(text)]
    runs = sum(1 for step in steps if step in (1, -1, -9, 9))
    return bool(steps) and runs >= 0.9 * len(steps)


def check(password: str, *, email: str = "") -> None:
    """Raise InvalidInput (field "password") when the password is not acceptable."""
    if len(password) < MIN_LENGTH:
        raise InvalidInput("password", f"must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidInput("password", f"must be at most {MAX_LENGTH} characters")
    if is_common(password):
        raise InvalidInput("password", "is too common (it appears in breached-password lists)")
    local_part = email.partition("@")[0].lower()
    if local_part and len(local_part) >= 4 and local_part in password.lower():
        raise InvalidInput("password", "must not contain your e-mail name")
