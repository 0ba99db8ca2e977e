"""X-Twilio-Signature validation that is correct behind a proxy and never raises."""

from __future__ import annotations

from collections.abc import Mapping

from twilio.request_validator import RequestValidator, get_signature_algorithm


def public_url(base_url: str | None, request_url: str, full_path: str) -> str:
    """The URL Twilio signed: the configured public base + path?query, else the request URL."""
    if base_url:
        path = full_path[:-1] if full_path.endswith("?") else full_path
        return base_url.rstrip("/") + path
    return request_url


def signature_ok(auth_token: str | None, url: str, params: Mapping[str, object] | object,
                 signature: str | None, settings_header: str | None = None) -> bool:
    """True only for a present, valid signature. Any oddity (missing header, odd encoding,
    unknown algorithm) is a plain False so the caller answers 403, never 500."""
    if not auth_token or not signature:
        return False
    try:
        validator = RequestValidator(auth_token)
        return bool(validator.validate(url, params, signature,
                                       algorithm=get_signature_algorithm(settings_header)))
    except Exception:  # the validator must never turn a bad request into a 500
        return False


def sign(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Sign exactly as Twilio does (HMAC-SHA1 of URL + sorted params), for simulate/tests."""
    return RequestValidator(auth_token).compute_signature(url, params)
