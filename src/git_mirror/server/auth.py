"""Who may read and who may push.

Reads are anonymous unless ``server.anonymousRead: false``. A push needs a declared token with
``push: true``, given as the HTTP Basic password (any user name) or as a ``Bearer`` token.
Every candidate token is compared with :func:`hmac.compare_digest`, all of them every time, so
the answer's timing says nothing about which token came close.

What a push may change is not decided here: the mirror's ``pre-receive`` hook (installed by
``apply``) accepts lane updates and refuses the rest, with its reason sent to the client.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from git_mirror.config.secrets import resolve_secret

if TYPE_CHECKING:
    from git_mirror.config.loader import LoadedConfig
    from git_mirror.redact import Secret

REALM = 'Basic realm="git-mirror"'


@dataclass(frozen=True)
class Principal:
    """The caller: a token's name, or anonymous (``name`` None)."""

    name: str | None
    push: bool = False

    @property
    def anonymous(self) -> bool:
        """No token was given."""
        return self.name is None


ANONYMOUS = Principal(None)


@dataclass(frozen=True)
class Decision:
    """``status`` 0 means allowed; otherwise 401 (who are you?) or 403 (not you)."""

    status: int
    principal: Principal
    message: str = ""


class Authenticator:
    """Checks the ``Authorization`` header against the tokens declared under ``server.tokens``."""

    def __init__(self, tokens: dict[str, tuple[Secret, bool]], *, anonymous_read: bool) -> None:
        self._tokens = [(name, secret.reveal().encode(), push)
                        for name, (secret, push) in sorted(tokens.items())]
        self.anonymous_read = anonymous_read

    @classmethod
    def from_config(cls, cfg: LoadedConfig) -> Authenticator:
        """Resolve every declared token now, so a missing secret stops ``serve`` at start."""
        server = cfg.model.server
        tokens = {name: (resolve_secret(tok.secret_ref, cfg, role=f"token:{name}",
                                         key=("server", "tokens", name, "secretRef")), tok.push)
                  for name, tok in server.tokens.items()}
        return cls(tokens, anonymous_read=server.anonymous_read)

    def identify(self, authorization: str | None) -> Principal | None:
        """The principal the header proves; ANONYMOUS without a header; None when it is wrong."""
        if not authorization:
            return ANONYMOUS
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        candidate: bytes | None = None
        if scheme.lower() == "bearer" and value:
            candidate = value.encode()
        elif scheme.lower() == "basic" and value:
            try:
                decoded = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return None
            _user, sep, password = decoded.partition(b":")
            candidate = password if sep else None
        if not candidate:
            return None
        found: Principal | None = None
        for name, token, push in self._tokens:
            # No early exit: every token is compared, whatever matched before.
            if hmac.compare_digest(candidate, token) and found is None:
                found = Principal(name, push)
        return found

    def check(self, authorization: str | None, *, write: bool) -> Decision:
        """Decide a read (clone, fetch) or a write (push) request."""
        who = self.identify(authorization)
        if who is None:
            return Decision(401, ANONYMOUS, "the credentials given do not match a declared token")
        if who.anonymous:
            if write:
                return Decision(401, who, "pushing needs a token with push: true")
            if not self.anonymous_read:
                return Decision(401, who, "reading needs a token (server.anonymousRead is false)")
            return Decision(0, who)
        if write and not who.push:
            return Decision(403, who, f"token {who.name!r} may not push (push: false)")
        return Decision(0, who)
