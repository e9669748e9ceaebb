"""Which fields of published data are secret-like, and the data without them."""

from __future__ import annotations

import re
from typing import Any

# Secret-like field names (see is_secret_field), as words of the name with a plural s taken off.
_SECRET_ANYWHERE = frozenset({"secret", "password", "passwd", "pwd", "passphrase", "authorization", "credential"})
_SECRET_LAST = frozenset({"jwt", "cookie"})
# Words before `tokens` that make it a count of tokens (an LLM's usage, say), not tokens.
_TOKEN_COUNTS = frozenset({"max", "min", "num", "total", "prompt", "completion", "input", "output"})
# Kinds of key that are secret: `<kind> key` or `<kind>key` at the end of a name.
_SECRET_KEYS = frozenset(
    {"api", "private", "secret", "ssh", "signing", "session", "access", "auth", "client", "encryption", "master"}
)
_NAME_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def name_words(name: str) -> tuple[str, ...]:
    """A field name's words, lowercased: split at anything not a letter or digit and where
    camelCase changes case (`X-Api-Key`, `apiKey` and `api_key` all give `api`, `key`)."""
    return tuple(word.lower() for word in _NAME_WORD.findall(name))


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def is_secret_field(name: str) -> bool:
    """Whether an event's data field of this name is dropped (the README states the rule).

    Split the name into lowercase words (at anything not a letter or digit, and where
    camelCase changes case) and take a plural s off each: it is secret-like when one word
    is secret, password, passwd, pwd, passphrase, authorization or credential; or its last
    word is jwt or cookie, or is or ends with token (unless the word before counts tokens:
    max, min, num, total, prompt, completion, input, output); or it ends with token hash;
    or it ends with key after api, private, secret, ssh, signing, session, access, auth,
    client, encryption or master, apart or together (`api_keys`, `sshKey`, `signingkey`).
    So `tokens`, `accessToken`, `refreshtoken`, `Set-Cookie` and `session_key` go, while
    `session`, `tokens_used`, `token_count`, `max_tokens`, `key` and `public_key` stay.
    """
    words = tuple(_singular(word) for word in name_words(name))
    if not words:
        return False
    last, before = words[-1], words[-2] if len(words) > 1 else ""
    return (
        any(word in _SECRET_ANYWHERE for word in words)
        or last in _SECRET_LAST
        or (last.endswith("token") and before not in _TOKEN_COUNTS)
        or words[-2:] == ("token", "hash")
        or (last == "key" and before in _SECRET_KEYS)
        or (last.endswith("key") and last[:-3] in _SECRET_KEYS)
    )


def redact(value: Any) -> Any:
    """The data of an event never carries a secret-like field (is_secret_field), however
    deep; values are never inspected."""
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items() if not is_secret_field(k)}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
