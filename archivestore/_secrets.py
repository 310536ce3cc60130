"""Redaction of secrets (tokens, passwords, URL signatures) from any text that may be logged or raised.

Standard library only, so every layer (and :mod:`archivestore.errors`) can use it.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["SECRET_KEY_RE", "redact"]

_SECRET_KEYS = (
    "signature|sig|x-amz-signature|x-amz-credential|x-amz-security-token|"
    "x-goog-signature|x-goog-credential|policy|key-pair-id|token|access_token|"
    "girder-token|girderToken|password|passwd|auth|authorization"
)
_SECRET_PARAM_RE = re.compile(rf"(?i)(?<![A-Za-z0-9_-])({_SECRET_KEYS})=([^&\s'\"<>]*)")
_SECRET_HEADER_RE = re.compile(
    rf"(?i)(['\"](?:{_SECRET_KEYS})['\"]\s*:\s*['\"]|(?:girder-token|authorization):\s*)"
    rf"(bearer\s+|basic\s+)?[^\s'\",}}]+"
)
SECRET_KEY_RE = re.compile(rf"(?i){_SECRET_KEYS}")
_USERINFO_RE = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@")


def redact(text: Any) -> str:
    """Return ``text`` with secrets replaced by ``REDACTED``.

    Covers URL query signatures and tokens (``signature=``, ``X-Amz-Signature=``,
    ``token=``, ...), ``Authorization``/``Girder-Token`` header values and
    ``user:password@`` in URLs. Used on every URL, parameter list and error
    message this package logs or raises.
    """
    text = str(text)
    text = _USERINFO_RE.sub(r"\1REDACTED@", text)
    text = _SECRET_PARAM_RE.sub(lambda m: f"{m.group(1)}=REDACTED", text)
    text = _SECRET_HEADER_RE.sub(lambda m: f"{m.group(1)}{m.group(2) or ''}REDACTED", text)
    return text
