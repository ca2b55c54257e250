"""Encryption at rest for the token columns (Fernet / MultiFernet from `cryptography`).

Every column that holds a credential (bot and user tokens, their refresh tokens, the incoming
webhook URL) is an `EncryptedToken`: the stores read and write plain strings, the database only
ever sees Fernet token text (AES-128-CBC + HMAC-SHA256, versioned, timestamped).

Keys
- `SLACK_TOKEN_ENCRYPTION_KEYS`: comma-separated Fernet keys (url-safe base64 of 32 bytes, as
  `python main.py keys generate` prints them). The first encrypts; all decrypt (a MultiFernet), so
  a new key is rolled out by putting it first, running `python main.py keys rotate`, and then
  dropping the old one.
- Embedded SQLite with no key set: a key file is created next to the database file
  (`<database>.key`, mode 0600) on first start and reused afterwards.
- A server database with no key set: start-up refuses (a `SettingsError`).

Which keyring a column uses is resolved per engine: `bind(engine, keyring)` attaches one to an
engine (the app factory, the CLI and start-up do this from settings), and `configure(keyring)` sets
the process-wide default for engines nobody bound. Several apps (and keyrings) can therefore live
in one process, as the tests need.

A value that does not decrypt raises `TokenDecryptionError` with an explanation; it never comes back
as garbage.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import weakref
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.engine import Connection, Dialect, Engine, make_url
from sqlalchemy.types import TypeDecorator

logger = logging.getLogger(__name__)

KEYS_ENV = "SLACK_TOKEN_ENCRYPTION_KEYS"
# Every Fernet token starts with the version byte 0x80 followed by a 64-bit timestamp: base64 "gAAAAA".
FERNET_PREFIX = "gAAAAA"

# The credential columns, per table (the raw names used by `keys rotate` and migration 0003).
TOKEN_COLUMNS: dict[str, tuple[str, ...]] = {
    "slack_bots": ("bot_token", "bot_refresh_token"),
    "slack_installations": (
        "bot_token",
        "bot_refresh_token",
        "user_token",
        "user_refresh_token",
        "incoming_webhook_url",
    ),
}


class TokenEncryptionError(RuntimeError):
    """Base class: token encryption is misconfigured or a stored value cannot be used."""


class KeysNotConfigured(TokenEncryptionError):
    """No keyring was bound to the engine and no process-wide default is set."""


class TokenDecryptionError(TokenEncryptionError):
    """A stored value could not be decrypted with any configured key."""


# --------------------------------------------------------------------------- keys


def generate_key() -> str:
    """A new Fernet key (url-safe base64 of 32 random bytes)."""
    return Fernet.generate_key().decode("ascii")


def parse_keys(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def invalid_key_positions(keys: Iterable[str]) -> list[int]:
    """1-based positions of values that are not Fernet keys (never the values themselves)."""
    bad = []
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError, TypeError):
            bad.append(position)
    return bad


def looks_encrypted(value: str) -> bool:
    return value.startswith(FERNET_PREFIX)


class Keyring:
    """The configured keys: the first encrypts, every one decrypts. Never shows a key in its repr."""

    def __init__(self, keys: Sequence[str], *, source: str = KEYS_ENV):
        keys = tuple(keys)
        if not keys:
            raise ValueError("a keyring needs at least one key")
        bad = invalid_key_positions(keys)
        if bad:
            raise TokenEncryptionError(
                f"{source}: key(s) at position {', '.join(map(str, bad))} are not Fernet keys "
                "(url-safe base64 of 32 bytes; `python main.py keys generate` prints one)."
            )
        self.source = source
        self._primary = Fernet(keys[0].encode("ascii"))
        self._all = MultiFernet([Fernet(k.encode("ascii")) for k in keys])
        # Short fingerprints name keys in messages without revealing them.
        self.fingerprints = tuple(hashlib.sha256(k.encode("ascii")).hexdigest()[:8] for k in keys)

    def __repr__(self) -> str:
        return f"Keyring({len(self.fingerprints)} key(s), first {self.fingerprints[0]}, from {self.source})"

    def encrypt(self, plaintext: str) -> str:
        return self._primary.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, stored: str, *, where: str = "a token column") -> str:
        try:
            return self._all.decrypt(stored.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as error:
            raise TokenDecryptionError(self._explain(stored, where)) from error

    def is_current(self, stored: str) -> bool:
        """True when the value is encrypted under the first key (nothing for `keys rotate` to do)."""
        try:
            self._primary.decrypt(stored.encode("ascii"))
            return True
        except (InvalidToken, UnicodeError):
            return False

    def reencrypt(self, stored: str, *, where: str = "a token column") -> str:
        """The value under the first key: decrypted with any key (or taken as plaintext when it was
        never encrypted) and encrypted again."""
        if not looks_encrypted(stored):
            return self.encrypt(stored)
        try:
            return self._all.rotate(stored.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError) as error:
            raise TokenDecryptionError(self._explain(stored, where)) from error

    def _explain(self, stored: str, where: str) -> str:
        if not looks_encrypted(stored):
            return (
                f"{where} holds a value that is not encrypted (a plaintext token from before encryption "
                "at rest?). Run `python main.py db upgrade`: migration 0003 encrypts existing tokens."
            )
        return (
            f"{where} could not be decrypted with any of the {len(self.fingerprints)} key(s) in {self.source} "
            f"(fingerprints {', '.join(self.fingerprints)}): the key it was encrypted with is missing (wrong "
            "or removed key) or the value is corrupt. Put the previous key back in the list (comma-separated; "
            "the first encrypts, all decrypt), then run `python main.py keys rotate` before removing it."
        )


# --------------------------------------------------------------------------- which keyring


_default: Optional[Keyring] = None
_bound: "weakref.WeakKeyDictionary[Dialect, Keyring]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def configure(keyring: Optional[Keyring]) -> None:
    """Set (or clear) the process-wide default keyring."""
    global _default
    _default = keyring


def default_keyring() -> Optional[Keyring]:
    return _default


def bind(engine: Engine, keyring: Keyring) -> None:
    """Use `keyring` for the token columns whenever they go through `engine`."""
    with _lock:
        _bound[engine.dialect] = keyring


def keyring_for(bind_or_dialect: Engine | Connection | Dialect) -> Keyring:
    dialect = bind_or_dialect if isinstance(bind_or_dialect, Dialect) else bind_or_dialect.dialect
    keyring = _bound.get(dialect) or _default
    if keyring is None:
        raise KeysNotConfigured(
            "Token encryption keys are not configured for this database connection. The app factory and "
            "start-up configure them from SLACK_TOKEN_ENCRYPTION_KEYS (or the SQLite key file)."
        )
    return keyring


def bound_keyring(bind_or_dialect: Engine | Connection | Dialect) -> Optional[Keyring]:
    """The keyring the engine would use, or None (no error)."""
    dialect = bind_or_dialect if isinstance(bind_or_dialect, Dialect) else bind_or_dialect.dialect
    return _bound.get(dialect) or _default


# --------------------------------------------------------------------------- from settings / environment


def key_file_path(database_url: str) -> Optional[Path]:
    """`<database file>.key` for a file-based SQLite URL, else None."""
    url = make_url(_normalize(database_url))
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    database = Path(os.path.abspath(url.database))
    return database.with_name(database.name + ".key")


def _normalize(database_url: str) -> str:
    from bolt_app.database import normalize_database_url

    return normalize_database_url(database_url)


def resolve_keyring(keys: Sequence[str], database_url: str) -> Keyring:
    """The keyring for a deployment: the configured keys; else, for SQLite, the key file next to the
    database (created on first use); a server database without keys is a configuration error."""
    from bolt_app.settings import SettingsError

    if keys:
        try:
            return Keyring(keys)
        except TokenEncryptionError as error:
            raise SettingsError([str(error)]) from None
    backend = make_url(_normalize(database_url)).get_backend_name()
    if backend != "sqlite":
        raise SettingsError(
            [
                f"{KEYS_ENV} is required with a {backend} database: tokens are stored encrypted and the key "
                "must be the same on every host. Generate one with `python main.py keys generate` and set it "
                "(keep it in your secret store, not in the database)."
            ]
        )
    path = key_file_path(database_url)
    if path is None:
        # An in-memory database lives as long as the process: so can its key.
        return Keyring([generate_key()], source="an in-memory key (in-memory SQLite database)")
    return Keyring(_read_or_create_key_file(path), source=f"the key file {path}")


def keyring_from_settings(settings: Any) -> Keyring:
    return resolve_keyring(settings.token_encryption_keys, settings.database_url)


def keyring_from_environment(database_url: str) -> Keyring:
    """As the app would resolve it, from SLACK_TOKEN_ENCRYPTION_KEYS in the environment (migrations)."""
    return resolve_keyring(parse_keys(os.environ.get(KEYS_ENV)), database_url)


def _read_or_create_key_file(path: Path) -> tuple[str, ...]:
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    # Written to a private temporary file, then linked into place: concurrent starters (workers,
    # a `db upgrade` next to a starting server) all end up with the one key that won the link.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(generate_key() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
            created = True
        except FileExistsError:
            created = False
    finally:
        temporary.unlink(missing_ok=True)
    if created:
        logger.warning(
            "Created the token encryption key file %s (mode 0600). Tokens in the database are encrypted with "
            "it: back it up with the database, and set %s to use a key from your secret store instead.",
            path,
            KEYS_ENV,
        )
    return _read_key_file(path)


def _read_key_file(path: Path) -> tuple[str, ...]:
    text = path.read_text(encoding="ascii")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        logger.warning("The token encryption key file %s is readable by others (mode %o); chmod 600 it.", path, mode)
    keys = parse_keys(text.replace("\n", ","))
    if not keys:
        raise TokenEncryptionError(f"The token encryption key file {path} is empty; restore it from a backup.")
    return keys


# --------------------------------------------------------------------------- the column type


class EncryptedToken(TypeDecorator):
    """A string column stored as Fernet token text. NULL stays NULL."""

    impl = sa.String(1024)
    cache_ok = True

    def process_bind_param(self, value: Optional[str], dialect: Dialect) -> Optional[str]:
        if value is None:
            return None
        return keyring_for(dialect).encrypt(str(value))

    def process_result_value(self, value: Optional[str], dialect: Dialect) -> Optional[str]:
        if value is None:
            return None
        # Each encryption is randomised: compare these columns only with IS (NOT) NULL in SQL.
        return keyring_for(dialect).decrypt(value)


# --------------------------------------------------------------------------- raw access


def raw_table(name: str) -> sa.TableClause:
    """The table with its token columns as plain text (no decryption): for rotation and migrations."""
    return sa.table(name, sa.column("id", sa.Integer), *(sa.column(c, sa.String) for c in TOKEN_COLUMNS[name]))


def check_stored_tokens(conn: Connection, keyring: Keyring) -> int:
    """Decrypt one stored value per token column: a wrong key fails at start-up, not on the first event.

    Returns the number of values checked.
    """
    checked = 0
    inspector = sa.inspect(conn)
    for name, columns in TOKEN_COLUMNS.items():
        if not inspector.has_table(name):
            continue
        table = raw_table(name)
        for column in columns:
            value = conn.execute(
                sa.select(table.c[column]).where(table.c[column].is_not(None)).limit(1)
            ).scalar()
            if value is not None:
                keyring.decrypt(value, where=f"{name}.{column}")
                checked += 1
    return checked


__all__ = [
    "EncryptedToken",
    "KEYS_ENV",
    "Keyring",
    "KeysNotConfigured",
    "TOKEN_COLUMNS",
    "TokenDecryptionError",
    "TokenEncryptionError",
    "bind",
    "check_stored_tokens",
    "configure",
    "generate_key",
    "keyring_for",
    "keyring_from_environment",
    "keyring_from_settings",
    "raw_table",
    "resolve_keyring",
]
