"""What API clients keep between requests: on-disk listing caches (per identity) and logins from ~/.netrc."""

from __future__ import annotations

import getpass
import hashlib
import json
import netrc
import os
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ListingCache", "find_password", "identity_of"]


class ListingCache:
    """Metadata listings cached on disk as JSON files, each valid for ``expire_after`` seconds.

    Keys include who asked (``identity``), so authenticated and anonymous
    results never mix. Files are written atomically; an unreadable or expired
    entry counts as missing. Never give it records that hold secrets.
    """

    def __init__(self, directory: str | os.PathLike, expire_after: float = 86400.0) -> None:
        self.directory = Path(directory)
        self.expire_after = float(expire_after)

    def key(self, *parts: Any) -> str:
        """The cache key of a request: a hash of its JSON-encoded parts."""
        blob = json.dumps(parts, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> Any | None:
        """The cached value, or ``None`` if absent, expired or unreadable."""
        path = self._path(key)
        try:
            with open(path, encoding="utf-8") as f:
                entry = json.load(f)
            if time.time() - float(entry["time"]) > self.expire_after:
                return None
            return entry["data"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, data: Any) -> None:
        """Store ``data`` (JSON-compatible) under ``key``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"time": time.time(), "data": data}, f)
            os.replace(tmp, self._path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def identity_of(secret: str | None, user: str | None = None) -> str:
    """A cache identity: ``anonymous``, else a short hash of the user name (so each login of
    the same user shares entries), else of the token. Never the secret itself."""
    if not secret and not user:
        return "anonymous"
    who = f"user\0{user}" if user else f"token\0{secret}"
    return "auth:" + hashlib.sha256(who.encode()).hexdigest()[:16]


def find_password(url: str, username: str | None, password: str | None = None, *,
                  prompt: bool = True) -> tuple[str, str]:
    """The login for ``url``: the given password, else ``~/.netrc`` for the host, else a prompt.

    Returns
    -------
    (username, password)

    Raises
    ------
    ValueError
        No username, or no password and prompting is off.
    """
    host = urlsplit(url).hostname or ""
    if password is None:
        try:
            auth = netrc.netrc().authenticators(host)
        except (OSError, netrc.NetrcParseError):
            auth = None
        if auth is not None:
            login, _, secret = auth
            if username is None or username == login:
                username, password = login, secret
    if username is None:
        raise ValueError(f"no username given for {host} (and none in ~/.netrc)")
    if password is None:
        if not prompt:
            raise ValueError(f"no password for {username} at {host} "
                             "(give one, add it to ~/.netrc, or allow the prompt)")
        password = getpass.getpass(f"Password for {username} at {host}: ")
    return username, password
