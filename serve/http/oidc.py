"""OIDC bearer tokens: a JWT signed by a key of the configured JWKS becomes a principal.

The signature, expiry, and (when configured) issuer and audience are checked by PyJWT;
the algorithms allowed come from settings, never from the token.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from core.errors import InputError, Unauthenticated
from core.names import clean_group, clean_user_id
from core.settings import OidcSettings
from core.types import Principal
from core.users import ROLES

log = logging.getLogger(__name__)


class OidcVerifier:
    def __init__(self, settings: OidcSettings) -> None:
        import jwt

        self.settings = settings
        self._client = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, timeout=5) \
            if settings.jwks_url else None
        self._keys = (jwt.PyJWKSet.from_dict(json.loads(settings.jwks_file.read_text()))
                      if settings.jwks_file else None)

    def principal(self, token: str) -> Principal:
        import jwt

        s = self.settings
        try:
            key = self._key(token)
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=s.algorithms, audience=s.audience, issuer=s.issuer,
                options={"require": ["exp"], "verify_aud": s.audience is not None},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
        user = claims.get(s.user_claim)
        if not isinstance(user, str) or not user:
            raise Unauthenticated(f"invalid token: no {s.user_claim!r} claim")
        try:
            user = clean_user_id(user)
        except InputError as exc:
            raise Unauthenticated(f"invalid token: its {s.user_claim!r} claim is not a usable "
                                  f"user id ({exc})") from exc
        roles = tuple(sorted(set(_strings(claims.get(s.roles_claim))) & set(ROLES))) or ("employee",)
        return Principal(user, _groups(_strings(claims.get(s.groups_claim))), roles)

    def _key(self, token: str) -> Any:
        import jwt

        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token).key
        assert self._keys is not None
        kid = jwt.get_unverified_header(token).get("kid")
        for candidate in self._keys.keys:
            if kid is None or candidate.key_id == kid:
                return candidate.key
        raise jwt.InvalidKeyError(f"no key {kid!r} in the JWKS")


def _groups(names: list[str]) -> tuple[str, ...]:
    """The claim's groups under enclave's rule for names (core/names.py), normalised as the
    documents' groups are; a name the rule refuses grants nothing."""
    groups = set()
    for name in names:
        try:
            groups.add(clean_group(name))
        except InputError:
            log.warning("an identity provider's group name was ignored: %s", ascii(name)[:80])
    return tuple(sorted(groups))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v]
    return []
