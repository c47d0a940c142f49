#!/usr/bin/env python3
"""Writes conformance/vectors.json: Standard Webhooks signature test vectors.

The vectors are made here from first principles, HMAC-SHA256 from Python's
standard library and Ed25519 from the `cryptography` package, never by hookd: a
verifier is checked against signatures it did not produce. Every key is fixed and
Ed25519 signing is deterministic (RFC 8032), so a re-run reproduces vectors.json
byte for byte.

    python conformance/generate.py          # rewrite vectors.json
    python conformance/generate.py --check  # exit 1 if vectors.json is not what this makes

What each case checks and why its verdict is what it is: conformance/README.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

OUTPUT = Path(__file__).resolve().parent / "vectors.json"

SPEC = "https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md"
TOLERANCE_SECONDS = 300

# The known answer the Standard Webhooks libraries test against; the first vector
# must reproduce it, which pins this generator to the specification.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

# The order of the curve's prime subgroup; a signature's S must be below it.
ED25519_L = 2**252 + 27742317777372353535851937790883648493

# Names the runners use in a vector's `deviations`.
PYTHON_LIBRARY = "standardwebhooks-python"
JS_LIBRARY = "standardwebhooks-js"

RUNNERS = {
    "hookd": "hookd_core::signing (crates/core/tests/conformance.rs): every vector; v1a both with "
    "the public key and with the secret key",
    PYTHON_LIBRARY: "standardwebhooks 1.1.0 from PyPI (scripts/compat/test_conformance.py): v1 vectors, "
    "its clock frozen at `now`",
    JS_LIBRARY: "standardwebhooks 1.1.1 from npm (scripts/compat/js/conformance.test.mjs): v1 vectors, "
    "Date.now frozen at `now`",
    "cryptography-ed25519": "a strict reading of the specification over the `cryptography` package's "
    "Ed25519 (scripts/compat/test_conformance.py): v1a vectors",
}

FORMAT = {
    "name": "unique, kebab-case; starts with the version",
    "description": "what the case is",
    "version": '"v1" (HMAC-SHA256, checked with `secret`) or "v1a" (Ed25519, checked with `publicKey`)',
    "secret": "the receiver's secret: `whsec_` + base64 of the HMAC key (v1), or `whsk_` + base64 of the "
    "32-byte Ed25519 seed (v1a)",
    "publicKey": "v1a only: `whpk_` + base64 of the 32-byte Ed25519 public key",
    "id": "the webhook-id header",
    "timestamp": "the webhook-timestamp header, verbatim (a string: some cases are not numbers)",
    "body": "the request body as UTF-8 text; when `bodyBase64` is present the body is not UTF-8 and this "
    "is only a readable rendering (invalid bytes as U+FFFD)",
    "bodyBase64": "optional: the body's exact bytes, base64; when present it is the body",
    "signature": "the webhook-signature header, verbatim",
    "now": "the verifier's clock, unix seconds",
    "expected": '"valid" or "invalid": the verdict the specification calls for',
    "reason": "why that is the verdict",
    "deviations": "optional: runner name -> {verdict, reason} where a pinned library is known to give "
    "another verdict; that runner asserts the recorded verdict instead, so a change either way shows",
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def signed_content(msg_id: str, timestamp: str, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


class HmacKey:
    def __init__(self, key: bytes):
        self.key = key
        self.secret = "whsec_" + b64(key)

    def mac(self, msg_id: str, timestamp: str, body: bytes) -> bytes:
        return hmac.new(self.key, signed_content(msg_id, timestamp, body), hashlib.sha256).digest()

    def sign(self, msg_id: str, timestamp: str, body: bytes) -> str:
        return "v1," + b64(self.mac(msg_id, timestamp, body))


class Ed25519Key:
    def __init__(self, seed: bytes):
        self.seed = seed
        self.private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public_bytes = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.secret = "whsk_" + b64(seed)
        self.public_key = "whpk_" + b64(self.public_bytes)

    def raw_signature(self, msg_id: str, timestamp: str, body: bytes) -> bytes:
        return self.private.sign(signed_content(msg_id, timestamp, body))

    def sign(self, msg_id: str, timestamp: str, body: bytes) -> str:
        return "v1a," + b64(self.raw_signature(msg_id, timestamp, body))


def fixed_bytes(label: str) -> bytes:
    """32 bytes named by `label`: fixed keys without random numbers in the repository."""
    return hashlib.sha256(b"hookd conformance vectors: " + label.encode()).digest()


HMAC_KEY = HmacKey(base64.b64decode(SPEC_SECRET.removeprefix("whsec_")))
OTHER_HMAC_KEY = HmacKey(fixed_bytes("another v1 key"))
ED25519_KEY = Ed25519Key(fixed_bytes("the v1a key"))
OTHER_ED25519_KEY = Ed25519Key(fixed_bytes("another v1a key"))

ID = SPEC_ID
TS = SPEC_TIMESTAMP
TIMESTAMP = str(TS)
BODY = SPEC_BODY
UNICODE_BODY = '{"name":"Zoë Ω","city":"東京","emoji":"🎉","rtl":"שלום"}'.encode()
CONTROL_BODY = '{"bytes":"\x00\x01\x1f\x7f","lines":"a\r\nb\tc"}'.encode()
# Not UTF-8: a lone continuation byte, an overlong encoding, bytes that never
# appear in UTF-8, a NUL.
BINARY_BODY = bytes([0x80, 0xC0, 0xAF, 0xFE, 0xFF, 0x00, 0x7B, 0x7D, 0xE9])

PYTHON_BAD_ENTRY = (
    "splits every entry with a two-value unpack before looking at the version; an entry with no "
    "comma (the empty one here) raises ValueError before the valid signature is reached"
)
PYTHON_BODY_DECODE = "decodes the body as UTF-8 before signing and raises UnicodeDecodeError"
JS_BODY_DECODE = "turns a Buffer body into a string (invalid bytes become U+FFFD) and signs that string"
PYTHON_FLOAT_TIMESTAMP = (
    "parses the timestamp with float() and signs floor() of it, so a fraction is accepted and dropped"
)
JS_PARSEINT_TIMESTAMP = "parses the timestamp with parseInt(), which stops at the first non-digit"


def vector(
    name: str,
    description: str,
    expected: str,
    reason: str,
    *,
    signature: str,
    version: str = "v1",
    secret: str | None = None,
    msg_id: str = ID,
    timestamp: str = TIMESTAMP,
    body: bytes = BODY,
    now: int = TS,
    deviations: dict[str, tuple[str, str]] | None = None,
) -> dict:
    assert expected in ("valid", "invalid")
    out: dict = {"name": name, "description": description, "version": version}
    if version == "v1":
        out["secret"] = secret or HMAC_KEY.secret
    else:
        out["secret"] = secret or ED25519_KEY.secret
        out["publicKey"] = ED25519_KEY.public_key
    out["id"] = msg_id
    out["timestamp"] = timestamp
    try:
        out["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        out["body"] = body.decode("utf-8", errors="replace")
        out["bodyBase64"] = b64(body)
    out["signature"] = signature
    out["now"] = now
    out["expected"] = expected
    out["reason"] = reason
    if deviations:
        for verdict, _ in deviations.values():
            assert verdict != expected, f"{name}: a deviation must differ from the expected verdict"
        out["deviations"] = {
            runner: {"verdict": verdict, "reason": why} for runner, (verdict, why) in deviations.items()
        }
    return out


def non_canonical(signature_b64: str) -> str:
    """The same bytes with the unused low bits of the last data character set: decoders
    that ignore those bits read the same signature, canonical ones refuse it."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    data = signature_b64.rstrip("=")
    padding = signature_b64[len(data) :]
    last = alphabet.index(data[-1])
    unused_bits = {1: 0b11, 2: 0b1111}[len(padding)]
    assert last & unused_bits == 0
    return data[:-1] + alphabet[last | 1] + padding


def v1_vectors() -> list[dict]:
    key, other = HMAC_KEY, OTHER_HMAC_KEY
    good = key.sign(ID, TIMESTAMP, BODY)
    good_b64 = good.removeprefix("v1,")
    assert good == SPEC_SIGNATURE, "HMAC-SHA256 does not reproduce the specification's known answer"
    wrong = other.sign(ID, TIMESTAMP, BODY)
    tampered = '{"test": 2432232315}'.encode()
    ed25519 = ED25519_KEY.sign(ID, TIMESTAMP, BODY)
    mac = key.mac(ID, TIMESTAMP, BODY)
    return [
        vector(
            "v1-spec-known-answer",
            "the Standard Webhooks known-answer example, verified at the moment it was signed",
            "valid",
            "HMAC-SHA256 of `{id}.{timestamp}.{body}` under the secret's key, base64, after `v1,`",
            signature=good,
        ),
        vector(
            "v1-valid-32-byte-secret",
            "a 32-byte key instead of the example's 24 bytes",
            "valid",
            "any key of 24 bytes or more signs; the verifier uses what the secret decodes to",
            secret=other.secret,
            signature=wrong,
        ),
        vector(
            "v1-secret-without-prefix",
            "the secret given as bare base64, without `whsec_`",
            "valid",
            "the prefix only labels the secret; the reference libraries strip it when present",
            secret=SPEC_SECRET.removeprefix("whsec_"),
            signature=good,
        ),
        vector(
            "v1-tampered-body",
            "one digit of the body changed after signing",
            "invalid",
            "the body is part of the signed content",
            body=tampered,
            signature=good,
        ),
        vector(
            "v1-body-trailing-newline",
            "a newline appended to the body after signing (a re-serialised body)",
            "invalid",
            "the signature covers the exact bytes; the spec warns against re-serialising",
            body=BODY + b"\n",
            signature=good,
        ),
        vector(
            "v1-wrong-secret",
            "signed with another endpoint's secret",
            "invalid",
            "the MAC is keyed; another key gives another MAC",
            signature=wrong,
        ),
        vector(
            "v1-wrong-id",
            "the webhook-id header differs from the id that was signed",
            "invalid",
            "the id is part of the signed content (replaying a body under another id fails)",
            msg_id="msg_p5jXN8AQM9LWM0D4loKWxJel",
            signature=good,
        ),
        vector(
            "v1-wrong-timestamp",
            "the webhook-timestamp header is one second later than the signed one",
            "invalid",
            "the timestamp is part of the signed content (a replay cannot refresh it)",
            timestamp=str(TS + 1),
            signature=good,
        ),
        vector(
            "v1-truncated-signature",
            "the last four base64 characters of the signature removed (still valid base64: 30 bytes)",
            "invalid",
            "a signature must match in full",
            signature=good[:-4],
        ),
        vector(
            "v1-truncated-signature-one-character",
            "the last character (the padding) of the signature removed",
            "invalid",
            "a signature must match in full",
            signature=good[:-1],
        ),
        vector(
            "v1-signature-prefix",
            "the first 16 bytes of the right MAC, correctly base64-encoded",
            "invalid",
            "a verifier comparing only as many bytes as it was given would accept a prefix; it must not",
            signature="v1," + b64(mac[:16]),
        ),
        vector(
            "v1-signature-first-byte",
            "the first byte of the right MAC, correctly base64-encoded",
            "invalid",
            "with prefix comparison one guess in 256 would verify",
            signature="v1," + b64(mac[:1]),
        ),
        vector(
            "v1-signature-extended",
            "the right MAC with a zero byte appended",
            "invalid",
            "a signature must be exactly the MAC, not start with it",
            signature="v1," + b64(mac + b"\x00"),
        ),
        vector(
            "v1-empty-signature",
            "`v1,` with nothing after the comma",
            "invalid",
            "an empty signature matches nothing",
            signature="v1,",
        ),
        vector(
            "v1-empty-header",
            "an empty webhook-signature header",
            "invalid",
            "no signature at all",
            signature="",
        ),
        vector(
            "v1-version-only",
            "`v1` alone, with no comma and no signature",
            "invalid",
            "no signature at all",
            signature="v1",
        ),
        vector(
            "v1-several-one-valid",
            "two signatures, the first by another secret, the second by this one (a rotation)",
            "valid",
            "the header is a list; any one matching signature verifies",
            signature=f"{wrong} {good}",
        ),
        vector(
            "v1-several-valid-first",
            "two signatures, the matching one first",
            "valid",
            "any one matching signature verifies, wherever it is",
            signature=f"{good} {wrong}",
        ),
        vector(
            "v1-several-none-valid",
            "two signatures, one by another secret and one over another body",
            "invalid",
            "no entry matches",
            signature=f"{wrong} {key.sign(ID, TIMESTAMP, tampered)}",
        ),
        vector(
            "v1-stale-timestamp",
            "verified 301 seconds after the timestamp",
            "invalid",
            "older than the 300-second tolerance: a possible replay",
            now=TS + 301,
            signature=good,
        ),
        vector(
            "v1-stale-timestamp-at-tolerance",
            "verified exactly 300 seconds after the timestamp",
            "valid",
            "the tolerance is inclusive (the libraries refuse only beyond it)",
            now=TS + 300,
            signature=good,
        ),
        vector(
            "v1-stale-timestamp-just-inside",
            "verified 299 seconds after the timestamp",
            "valid",
            "within the tolerance",
            now=TS + 299,
            signature=good,
        ),
        vector(
            "v1-future-timestamp",
            "verified 301 seconds before the timestamp",
            "invalid",
            "further ahead than the tolerance",
            now=TS - 301,
            signature=good,
        ),
        vector(
            "v1-future-timestamp-at-tolerance",
            "verified exactly 300 seconds before the timestamp",
            "valid",
            "the tolerance is inclusive both ways",
            now=TS - 300,
            signature=good,
        ),
        vector(
            "v1-timestamp-milliseconds",
            "the timestamp in milliseconds, and signed that way",
            "invalid",
            "read as seconds it is far in the future",
            timestamp=str(TS * 1000),
            signature=key.sign(ID, str(TS * 1000), BODY),
        ),
        vector(
            "v1-timestamp-non-numeric",
            "a timestamp that is not a number, signed as given",
            "invalid",
            "the header is an integer unix timestamp; without one there is nothing to check freshness against",
            timestamp="yesterday",
            signature=key.sign(ID, "yesterday", BODY),
        ),
        vector(
            "v1-timestamp-empty",
            "an empty webhook-timestamp header",
            "invalid",
            "the timestamp is required",
            timestamp="",
            signature=key.sign(ID, "", BODY),
        ),
        vector(
            "v1-timestamp-fractional",
            "a timestamp with a fraction, signed over its whole seconds",
            "invalid",
            "the specification's timestamp is an integer; `1614265330.5` is not one",
            timestamp=f"{TS}.5",
            signature=good,
            deviations={
                PYTHON_LIBRARY: ("valid", PYTHON_FLOAT_TIMESTAMP),
                JS_LIBRARY: ("valid", JS_PARSEINT_TIMESTAMP),
            },
        ),
        vector(
            "v1-timestamp-trailing-garbage",
            "digits followed by letters, signed over the digits",
            "invalid",
            "the specification's timestamp is an integer; `1614265330abc` is not one",
            timestamp=f"{TS}abc",
            signature=good,
            deviations={JS_LIBRARY: ("valid", JS_PARSEINT_TIMESTAMP)},
        ),
        vector(
            "v1-double-space-between",
            "two spaces between a wrong and the right signature",
            "valid",
            "the empty entry between the spaces is no signature and is passed over; the right one "
            "matches (as the JavaScript and Go libraries do)",
            signature=f"{wrong}  {good}",
            deviations={PYTHON_LIBRARY: ("invalid", PYTHON_BAD_ENTRY)},
        ),
        vector(
            "v1-leading-space",
            "a space before the only signature",
            "valid",
            "the empty entry before the space is passed over; the signature matches",
            signature=f" {good}",
            deviations={PYTHON_LIBRARY: ("invalid", PYTHON_BAD_ENTRY)},
        ),
        vector(
            "v1-trailing-space",
            "a space after the only signature",
            "valid",
            "the signature matches; the empty entry after it does not matter",
            signature=f"{good} ",
        ),
        vector(
            "v1-tab-separated",
            "a wrong and the right signature separated by a tab",
            "invalid",
            "the list is space delimited; split on spaces this is one entry whose signature is not base64 "
            "of the MAC",
            signature=f"{wrong}\t{good}",
        ),
        vector(
            "v1-comma-separated",
            "a wrong and the right signature separated by a comma",
            "invalid",
            "the list is space delimited; a comma separates only the version from the signature",
            signature=f"{wrong},{good}",
        ),
        vector(
            "v1-space-after-comma",
            "a space between `v1,` and the right signature",
            "invalid",
            "the list is split on spaces first: that leaves an empty `v1,` and a signature with no version",
            signature="v1, " + good_b64,
        ),
        vector(
            "v1-undecodable-entry-before-valid",
            "an entry whose signature is not valid base64 (`abc`), then the right signature",
            "valid",
            "an entry that cannot be decoded matches nothing and is passed over; the right one matches",
            signature=f"v1,abc {good}",
            deviations={
                PYTHON_LIBRARY: (
                    "invalid",
                    "decodes each signature with base64.b64decode(), which raises binascii.Error on `abc` "
                    "(incorrect padding) before the valid signature is reached",
                )
            },
        ),
        vector(
            "v1-missing-padding",
            "the right signature without its `=` padding",
            "invalid",
            "the signature is standard, padded base64 (as the libraries produce and compare)",
            signature=good.rstrip("="),
        ),
        vector(
            "v1-non-canonical-base64",
            "the right MAC, base64 with the unused low bits of the last character set",
            "invalid",
            "not the canonical base64 of the MAC; the JavaScript and Go libraries compare the base64 "
            "text and refuse it (accepting it forges nothing: the MAC is still needed)",
            signature="v1," + non_canonical(good_b64),
            deviations={
                PYTHON_LIBRARY: (
                    "valid",
                    "compares decoded bytes, and base64.b64decode() ignores the unused bits",
                )
            },
        ),
        vector(
            "v1-url-safe-alphabet",
            "the right MAC in URL-safe base64 (`-` and `_` for `+` and `/`)",
            "invalid",
            "the specification's base64 is the standard alphabet",
            signature="v1," + good_b64.replace("+", "-").replace("/", "_"),
        ),
        vector(
            "v1-uppercase-version",
            "`V1,` instead of `v1,`",
            "invalid",
            "version identifiers are compared exactly",
            signature="V1," + good_b64,
        ),
        vector(
            "v1-unknown-version-alone",
            "the right MAC labelled `v2`",
            "invalid",
            "a verifier checks only the versions it knows; `v2` is not one",
            signature="v2," + good_b64,
        ),
        vector(
            "v1-unknown-version-alongside-valid",
            "a `v2` entry, then the right `v1` signature",
            "valid",
            "unknown versions are passed over (forward compatibility); the `v1` entry matches",
            signature=f"v2,{b64(fixed_bytes('a future scheme'))} {good}",
        ),
        vector(
            "v1-v1a-signature",
            "only a valid Ed25519 (`v1a`) signature of the same content, checked with the `v1` secret",
            "invalid",
            "a `v1` secret verifies `v1` entries only",
            signature=ed25519,
        ),
        vector(
            "v1-v1a-signature-relabelled",
            "the same Ed25519 signature labelled `v1`",
            "invalid",
            "64 bytes of Ed25519 signature are not the 32-byte MAC",
            signature="v1," + ed25519.removeprefix("v1a,"),
        ),
        vector(
            "v1-rotation-with-v1a",
            "a valid `v1a` signature, then the right `v1` one (the specification's example header shape)",
            "valid",
            "the `v1a` entry is passed over by a `v1` secret; the `v1` entry matches",
            signature=f"{ed25519} {good}",
        ),
        vector(
            "v1-empty-body",
            "an empty body",
            "valid",
            "the signed content is then `{id}.{timestamp}.`",
            body=b"",
            signature=key.sign(ID, TIMESTAMP, b""),
        ),
        vector(
            "v1-unicode-body",
            "a body with accented, CJK, right-to-left and astral-plane (emoji) characters",
            "valid",
            "the body is signed as its UTF-8 bytes",
            body=UNICODE_BODY,
            signature=key.sign(ID, TIMESTAMP, UNICODE_BODY),
        ),
        vector(
            "v1-control-characters-body",
            "a UTF-8 body with NUL, other control characters and CRLF",
            "valid",
            "every byte is signed as it is",
            body=CONTROL_BODY,
            signature=key.sign(ID, TIMESTAMP, CONTROL_BODY),
        ),
        vector(
            "v1-non-utf8-body",
            "a body that is not UTF-8 (see bodyBase64)",
            "valid",
            "the specification signs the payload as sent; nothing requires it to be text",
            body=BINARY_BODY,
            signature=key.sign(ID, TIMESTAMP, BINARY_BODY),
            deviations={
                PYTHON_LIBRARY: ("invalid", PYTHON_BODY_DECODE),
                JS_LIBRARY: ("invalid", JS_BODY_DECODE),
            },
        ),
    ]


def malleated(raw_signature: bytes) -> bytes:
    """The same signature with S replaced by S + L: it satisfies the verification
    equation, but RFC 8032 requires S < L and a verifier must refuse it."""
    r, s = raw_signature[:32], int.from_bytes(raw_signature[32:], "little")
    return r + (s + ED25519_L).to_bytes(32, "little")


def v1a_vectors() -> list[dict]:
    key, other = ED25519_KEY, OTHER_ED25519_KEY
    good = key.sign(ID, TIMESTAMP, BODY)
    good_b64 = good.removeprefix("v1a,")
    raw = key.raw_signature(ID, TIMESTAMP, BODY)
    wrong = other.sign(ID, TIMESTAMP, BODY)
    tampered = '{"test": 2432232315}'.encode()
    # The key-confusion forgery: the public key is public, so anyone can compute an
    # HMAC under it; a verifier that accepted `v1` with it would accept anyone's.
    public_key_as_hmac_key = HmacKey(key.public_bytes).mac(ID, TIMESTAMP, BODY)
    return [
        vector(
            "v1a-valid",
            "an Ed25519 signature by the secret key, checked with its public key",
            "valid",
            "Ed25519 of `{id}.{timestamp}.{body}`, base64, after `v1a,`",
            version="v1a",
            signature=good,
        ),
        vector(
            "v1a-tampered-body",
            "one digit of the body changed after signing",
            "invalid",
            "the body is part of the signed content",
            version="v1a",
            body=tampered,
            signature=good,
        ),
        vector(
            "v1a-wrong-key",
            "signed by another Ed25519 key",
            "invalid",
            "only the holder of this public key's secret key can sign for it",
            version="v1a",
            signature=wrong,
        ),
        vector(
            "v1a-wrong-id",
            "the webhook-id header differs from the id that was signed",
            "invalid",
            "the id is part of the signed content",
            version="v1a",
            msg_id="msg_p5jXN8AQM9LWM0D4loKWxJel",
            signature=good,
        ),
        vector(
            "v1a-wrong-timestamp",
            "the webhook-timestamp header is one second later than the signed one",
            "invalid",
            "the timestamp is part of the signed content",
            version="v1a",
            timestamp=str(TS + 1),
            signature=good,
        ),
        vector(
            "v1a-truncated-signature",
            "the last four base64 characters of the signature removed",
            "invalid",
            "an Ed25519 signature is exactly 64 bytes",
            version="v1a",
            signature=good[:-4],
        ),
        vector(
            "v1a-signature-prefix",
            "the first 32 bytes (R) of the right signature, correctly base64-encoded",
            "invalid",
            "an Ed25519 signature is exactly 64 bytes",
            version="v1a",
            signature="v1a," + b64(raw[:32]),
        ),
        vector(
            "v1a-empty-signature",
            "`v1a,` with nothing after the comma",
            "invalid",
            "an empty signature matches nothing",
            version="v1a",
            signature="v1a,",
        ),
        vector(
            "v1a-several-one-valid",
            "two signatures, the first by another key, the second by this one",
            "valid",
            "any one matching signature verifies",
            version="v1a",
            signature=f"{wrong} {good}",
        ),
        vector(
            "v1a-several-none-valid",
            "two signatures, one by another key and one over another body",
            "invalid",
            "no entry matches",
            version="v1a",
            signature=f"{wrong} {key.sign(ID, TIMESTAMP, tampered)}",
        ),
        vector(
            "v1a-stale-timestamp",
            "verified 301 seconds after the timestamp",
            "invalid",
            "older than the 300-second tolerance",
            version="v1a",
            now=TS + 301,
            signature=good,
        ),
        vector(
            "v1a-stale-timestamp-at-tolerance",
            "verified exactly 300 seconds after the timestamp",
            "valid",
            "the tolerance is inclusive",
            version="v1a",
            now=TS + 300,
            signature=good,
        ),
        vector(
            "v1a-future-timestamp",
            "verified 301 seconds before the timestamp",
            "invalid",
            "further ahead than the tolerance",
            version="v1a",
            now=TS - 301,
            signature=good,
        ),
        vector(
            "v1a-future-timestamp-at-tolerance",
            "verified exactly 300 seconds before the timestamp",
            "valid",
            "the tolerance is inclusive both ways",
            version="v1a",
            now=TS - 300,
            signature=good,
        ),
        vector(
            "v1a-timestamp-non-numeric",
            "a timestamp that is not a number, signed as given",
            "invalid",
            "the header is an integer unix timestamp",
            version="v1a",
            timestamp="yesterday",
            signature=key.sign(ID, "yesterday", BODY),
        ),
        vector(
            "v1a-double-space-between",
            "two spaces between a wrong and the right signature",
            "valid",
            "the empty entry is passed over; the right one matches",
            version="v1a",
            signature=f"{wrong}  {good}",
        ),
        vector(
            "v1a-tab-separated",
            "a wrong and the right signature separated by a tab",
            "invalid",
            "the list is space delimited; this is one entry that does not decode to a signature",
            version="v1a",
            signature=f"{wrong}\t{good}",
        ),
        vector(
            "v1a-non-canonical-base64",
            "the right signature, base64 with the unused low bits of the last character set",
            "invalid",
            "not the canonical base64 of the signature (accepting it would forge nothing)",
            version="v1a",
            signature="v1a," + non_canonical(good_b64),
        ),
        vector(
            "v1a-malleated-signature",
            "the right signature with S replaced by S + L (the group order)",
            "invalid",
            "RFC 8032 requires S < L; otherwise every signature would have a second valid encoding",
            version="v1a",
            signature="v1a," + b64(malleated(raw)),
        ),
        vector(
            "v1a-unknown-version-alone",
            "the right signature labelled `v2`",
            "invalid",
            "a verifier checks only the versions it knows",
            version="v1a",
            signature="v2," + good_b64,
        ),
        vector(
            "v1a-unknown-version-alongside-valid",
            "a `v2` entry, then the right `v1a` signature",
            "valid",
            "unknown versions are passed over; the `v1a` entry matches",
            version="v1a",
            signature=f"v2,{b64(fixed_bytes('a future scheme'))} {good}",
        ),
        vector(
            "v1a-v1-signature",
            "only a `v1` HMAC keyed with the public key's bytes, checked with the public key",
            "invalid",
            "a public key verifies `v1a` entries only; anyone can compute an HMAC under a public key, so "
            "accepting one would accept forgeries",
            version="v1a",
            signature="v1," + b64(public_key_as_hmac_key),
        ),
        vector(
            "v1a-v1-signature-relabelled",
            "that HMAC labelled `v1a`",
            "invalid",
            "32 bytes of MAC are no Ed25519 signature",
            version="v1a",
            signature="v1a," + b64(public_key_as_hmac_key),
        ),
        vector(
            "v1a-rotation-with-v1",
            "a `v1` signature, then the right `v1a` one (the specification's example header shape)",
            "valid",
            "the `v1` entry is passed over by an Ed25519 key; the `v1a` entry matches",
            version="v1a",
            signature=f"{HMAC_KEY.sign(ID, TIMESTAMP, BODY)} {good}",
        ),
        vector(
            "v1a-empty-body",
            "an empty body",
            "valid",
            "the signed content is then `{id}.{timestamp}.`",
            version="v1a",
            body=b"",
            signature=key.sign(ID, TIMESTAMP, b""),
        ),
        vector(
            "v1a-unicode-body",
            "a body with accented, CJK, right-to-left and astral-plane (emoji) characters",
            "valid",
            "the body is signed as its UTF-8 bytes",
            version="v1a",
            body=UNICODE_BODY,
            signature=key.sign(ID, TIMESTAMP, UNICODE_BODY),
        ),
        vector(
            "v1a-non-utf8-body",
            "a body that is not UTF-8 (see bodyBase64)",
            "valid",
            "the payload is signed as sent",
            version="v1a",
            body=BINARY_BODY,
            signature=key.sign(ID, TIMESTAMP, BINARY_BODY),
        ),
    ]


def render() -> str:
    vectors = v1_vectors() + v1a_vectors()
    names = [v["name"] for v in vectors]
    assert len(names) == len(set(names)), "vector names must be unique"
    document = {
        "description": "Standard Webhooks signature test vectors: positive and negative cases for v1 "
        "(HMAC-SHA256) and v1a (Ed25519). Made by conformance/generate.py; see conformance/README.md.",
        "spec": SPEC,
        "tolerance_seconds": TOLERANCE_SECONDS,
        "format": FORMAT,
        "runners": RUNNERS,
        "vectors": vectors,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv[1:] == ["--check"]:
        if OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT} is not what generate.py makes; run it to rewrite the file", file=sys.stderr)
            return 1
        return 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    OUTPUT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
