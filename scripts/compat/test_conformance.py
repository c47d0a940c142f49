"""The shared Standard Webhooks vectors (conformance/vectors.json) through two
verifiers independent of hookd; no hookd binary is needed.

- `v1` vectors: the `standardwebhooks` package from PyPI (pinned in
  requirements.txt), its clock frozen at the vector's `now`.
- `v1a` vectors: the specification read strictly, over the `cryptography`
  package's Ed25519 (the PyPI library has no `v1a`).

Each vector must give its expected verdict, or the one its `deviations` record for
this runner: a known library difference is asserted, not skipped, so a library
that changes its mind shows up here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import importlib.util
import json
import re
from datetime import datetime
from pathlib import Path

import pytest
import standardwebhooks.webhooks
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

CONFORMANCE = Path(__file__).resolve().parents[2] / "conformance"
DOCUMENT = json.loads((CONFORMANCE / "vectors.json").read_text(encoding="utf-8"))
TOLERANCE = DOCUMENT["tolerance_seconds"]
VECTORS = DOCUMENT["vectors"]

# This file's runners, as named in a vector's `deviations`.
LIBRARY_RUNNER = "standardwebhooks-python"
ED25519_RUNNER = "cryptography-ed25519"


def by_version(version: str):
    return [pytest.param(v, id=v["name"]) for v in VECTORS if v["version"] == version]


def body_of(vector) -> bytes:
    if "bodyBase64" in vector:
        return base64.b64decode(vector["bodyBase64"], validate=True)
    return vector["body"].encode("utf-8")


def expected_for(vector, runner: str) -> str:
    return vector.get("deviations", {}).get(runner, {}).get("verdict", vector["expected"])


def explain(vector, runner: str, verdict: str) -> str:
    deviation = vector.get("deviations", {}).get(runner)
    why = f"recorded deviation: {deviation['reason']}" if deviation else vector["reason"]
    return f"{vector['name']}: {runner} says {verdict}; {why}"


# --------------------------------------------------------------------------- v1: the PyPI library


def frozen_datetime(now: int) -> type[datetime]:
    """`datetime` whose now() is `now`. The library reads the clock only through
    `datetime.now(tz=timezone.utc)` in its own module namespace (`from datetime
    import datetime`), so replacing that name freezes its clock and nothing else."""

    class FrozenDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.fromtimestamp(now, tz)

    return FrozenDatetime


def library_verdict(vector, monkeypatch) -> str:
    monkeypatch.setattr(standardwebhooks.webhooks, "datetime", frozen_datetime(vector["now"]))
    headers = {
        "webhook-id": vector["id"],
        "webhook-timestamp": vector["timestamp"],
        "webhook-signature": vector["signature"],
    }
    try:
        webhook = standardwebhooks.Webhook(vector["secret"])
        webhook.verify(body_of(vector), headers, json_parse=False)
    # Not only WebhookVerificationError: on some malformed headers the library raises
    # ValueError or binascii.Error, which refuses the request just the same.
    except Exception:
        return "invalid"
    return "valid"


def test_the_frozen_clock_is_the_one_the_library_reads(monkeypatch):
    monkeypatch.setattr(standardwebhooks.webhooks, "datetime", frozen_datetime(1_000_000_000))
    assert standardwebhooks.webhooks.datetime.now().timestamp() == 1_000_000_000


@pytest.mark.parametrize("vector", by_version("v1"))
def test_v1_vector_with_the_standardwebhooks_library(vector, monkeypatch):
    verdict = library_verdict(vector, monkeypatch)
    assert verdict == expected_for(vector, LIBRARY_RUNNER), explain(vector, LIBRARY_RUNNER, verdict)


# --------------------------------------------------------------------------- v1a: the specification over `cryptography`


def strict_base64(text: str) -> bytes | None:
    """The bytes of canonical, padded, standard base64, or None: no characters
    outside the alphabet, no unused bits set."""
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error:
        return None
    return data if base64.b64encode(data).decode("ascii") == text else None


def ed25519_verdict(vector) -> str:
    timestamp = vector["timestamp"]
    if not re.fullmatch(r"[0-9]+", timestamp) or abs(vector["now"] - int(timestamp)) > TOLERANCE:
        return "invalid"
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(vector["publicKey"].removeprefix("whpk_")))
    content = f"{vector['id']}.{timestamp}.".encode() + body_of(vector)
    for entry in vector["signature"].split(" "):
        version, _, encoded = entry.partition(",")
        signature = strict_base64(encoded) if version == "v1a" else None
        if signature is None:
            continue
        try:
            key.verify(signature, content)
            return "valid"
        except InvalidSignature:
            continue
    return "invalid"


@pytest.mark.parametrize("vector", by_version("v1a"))
def test_v1a_vector_with_cryptography(vector):
    verdict = ed25519_verdict(vector)
    assert verdict == expected_for(vector, ED25519_RUNNER), explain(vector, ED25519_RUNNER, verdict)


@pytest.mark.parametrize("vector", by_version("v1a"))
def test_v1a_public_key_belongs_to_the_secret_key(vector):
    seed = base64.b64decode(vector["secret"].removeprefix("whsk_"))
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert vector["publicKey"] == "whpk_" + base64.b64encode(public).decode("ascii")


# --------------------------------------------------------------------------- the file itself


def test_vectors_json_is_what_the_generator_makes():
    spec = importlib.util.spec_from_file_location("conformance_generate", CONFORMANCE / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    assert (CONFORMANCE / "vectors.json").read_text(encoding="utf-8") == generate.render(), (
        "conformance/vectors.json differs from what conformance/generate.py makes; run the generator"
    )


def test_deviations_name_known_runners_and_differ_from_the_expected_verdict():
    for vector in VECTORS:
        for runner, deviation in vector.get("deviations", {}).items():
            assert runner in DOCUMENT["runners"], f"{vector['name']}: unknown runner {runner}"
            assert deviation["verdict"] != vector["expected"], vector["name"]


def test_the_known_answer_is_the_specifications():
    """The first vector is the published example; recomputing it here with `hmac`
    keeps the generator honest independently of either library."""
    vector = VECTORS[0]
    key = base64.b64decode(vector["secret"].removeprefix("whsec_"))
    content = f"{vector['id']}.{vector['timestamp']}.{vector['body']}".encode()
    mac = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    assert vector["signature"] == f"v1,{mac}" == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
