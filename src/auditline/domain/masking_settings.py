"""A tenant's masking settings: the JSON shape its admins write, its strict check, and the
:class:`~auditline.domain.masking.MaskingRules` it compiles to.

In the tenant's ``settings`` object (``PATCH /api/v1/tenants/{id}``; docs/api.md)::

    "masking": {
      "email": "redact" | "pseudonymise" | "keep",     default "redact"
      "card":  "redact" | "pseudonymise" | "keep",     default "redact"
      "redact_keys": ["national_id", "iban"],          extra secret key names, at most 64
      "exempt_keys": ["support_email"]                 keys the e-mail/card detectors skip
    }

Every member is optional; no ``masking`` (or ``{}``) compiles to
:data:`~auditline.domain.masking.DEFAULT_RULES` itself, so such a tenant's events are
byte for byte what they were before tenants had masking settings.

What a tenant cannot change, on purpose: credentials in text (``Bearer``/``Basic``, JWTs)
and values under secret keys, built-in or added, are always redacted, never kept and never
pseudonymised. A keyed digest of a password would let anyone holding the database (which
holds the key) test guesses offline, and ``changed_fields`` already shows that a secret
changed. Names are literal, matched like the built-in ones (case and separators ignored);
no patterns, so no rule can make masking slow.

The list names avoid the word "secret": the change record of a settings update is masked
with the default rules, and a value under a key like ``secret_keys`` would be redacted from
it, hiding from auditors what was changed.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, cast

from auditline.domain.events import FieldError
from auditline.domain.masking import (
    DEFAULT_RULES,
    DEFAULT_SECRET_KEYS,
    MaskingRules,
    is_secret_key,
)

Mode = Literal["redact", "pseudonymise", "keep"]
MODES: Final[tuple[Mode, ...]] = ("redact", "pseudonymise", "keep")
KINDS: Final = ("email", "card")
LISTS: Final = ("redact_keys", "exempt_keys")
MAX_NAMES: Final = 64
MAX_NAME_CHARS: Final = 64
MIN_NAME_ALNUM: Final = 2

_PATH: Final = ("settings", "masking")


@dataclass(frozen=True, slots=True)
class MaskingSettings:
    """A tenant's checked masking settings (no key: that is not a setting)."""

    email: Mode = "redact"
    card: Mode = "redact"
    redact_keys: tuple[str, ...] = ()
    exempt_keys: tuple[str, ...] = ()

    @property
    def pseudonymises(self) -> bool:
        """Whether any kind is pseudonymised, i.e. whether the tenant's key is needed."""
        return "pseudonymise" in (self.email, self.card)

    def rules(self, pseudonym_key: bytes | None) -> MaskingRules:
        """The compiled rules; the default rules object itself for default settings.

        Without a key, a kind set to ``pseudonymise`` is redacted instead: it fails closed
        (nothing revealed, only the change no longer visible) rather than inventing a key
        whose pseudonyms would not match the tenant's earlier ones.
        """
        if self == DEFAULT_SETTINGS:
            return DEFAULT_RULES
        keyed = pseudonym_key is not None
        return MaskingRules(
            secret_keys=DEFAULT_SECRET_KEYS + self.redact_keys,
            mask_emails=self.email != "keep",
            mask_card_numbers=self.card != "keep",
            exempt_keys=self.exempt_keys,
            pseudonymise_emails=keyed and self.email == "pseudonymise",
            pseudonymise_cards=keyed and self.card == "pseudonymise",
            pseudonym_key=pseudonym_key,
        )


DEFAULT_SETTINGS: Final = MaskingSettings()


class InvalidSettings(ValueError):
    """Tenant settings break the rules; nothing was changed. Paths start at ``settings``."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(f"{len(errors)} invalid setting(s)")
        self.errors = errors


def masking_settings(settings: Mapping[str, object]) -> MaskingSettings:
    """The checked ``masking`` member of a tenant's *settings* (defaults when absent).

    Raises :class:`InvalidSettings` listing every problem, each with its path.
    """
    raw = settings.get("masking")
    if raw is None and "masking" not in settings:
        return DEFAULT_SETTINGS
    if not isinstance(raw, dict):
        raise InvalidSettings([FieldError(_PATH, "must be an object")])
    errors: list[FieldError] = []
    for key in raw:
        if key not in (*KINDS, *LISTS):
            expected = ", ".join(sorted((*KINDS, *LISTS)))
            errors.append(FieldError((*_PATH, key), f"unknown setting; expected one of {expected}"))
    modes: dict[str, Mode] = {}
    for kind in KINDS:
        value = raw.get(kind, "redact")
        if value in MODES:
            modes[kind] = cast(Mode, value)
        else:
            allowed = ", ".join(f"'{mode}'" for mode in MODES)
            errors.append(FieldError((*_PATH, kind), f"must be one of {allowed}"))
    lists = {name: _names(raw.get(name, []), (*_PATH, name), errors) for name in LISTS}
    if not errors:
        secret = MaskingRules(secret_keys=DEFAULT_SECRET_KEYS + lists["redact_keys"])
        for index, name in enumerate(lists["exempt_keys"]):
            if is_secret_key(name, secret):
                errors.append(
                    FieldError(
                        (*_PATH, "exempt_keys", index),
                        f"'{name}' is a secret key: values under it are always redacted",
                    )
                )
    if errors:
        raise InvalidSettings(errors)
    return MaskingSettings(
        email=modes["email"],
        card=modes["card"],
        redact_keys=lists["redact_keys"],
        exempt_keys=lists["exempt_keys"],
    )


def _names(value: object, path: tuple[str | int, ...], errors: list[FieldError]) -> tuple[str, ...]:
    """A list of literal key names, each checked; problems are appended to *errors*."""
    if not isinstance(value, list):
        errors.append(FieldError(path, "must be an array of key names"))
        return ()
    if len(value) > MAX_NAMES:
        errors.append(FieldError(path, f"at most {MAX_NAMES} names"))
        return ()
    names: list[str] = []
    for index, name in enumerate(value):
        problem = _name_problem(name)
        if problem:
            errors.append(FieldError((*path, index), problem))
        else:
            names.append(cast(str, name))
    return tuple(names)


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return "must be a string"
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        return f"must be 1 to {MAX_NAME_CHARS} characters"
    if any(unicodedata.category(char).startswith("C") for char in name):
        return "must not contain control or unassigned characters"
    if sum(char.isalnum() for char in name) < MIN_NAME_ALNUM:
        return (
            f"needs at least {MIN_NAME_ALNUM} letters or digits "
            "(names are matched ignoring case and separators)"
        )
    return None
