"""sign/verify against values computed independently (openssl dgst, Node's crypto)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from circtoolkit import SIGNATURE_HEADER, ConfigurationError, sign, verify

SEED_BODY = (
    b'{"documentId":"e2461c31-9d65-472d-8d85-90bcefbac3f7","event":"documentCompleted",'
    b'"actor":"john.smith@example.com","timestamp":"2023-07-19T12:30:00.152Z"}'
)
SEED_SECRET = "Gh1!f5dFs0dA"
# printf '%s' BODY | openssl dgst -sha256 -hmac SECRET
SEED_SIGNATURE = "411153e31d4d38071a3d13e079afed5c5ea7e006b3efd83de24a782aa9605ef5"
EMPTY_SIGNATURE = "5948f42db1f9acc839db9dc352221da17227f0a250bdaadc9c1f9d6bb227fb29"
UNICODE_BODY = '{"actor":"jiří.novák@příklad.cz","event":"documentSigned"}'
UNICODE_SECRET = "tajné-heslo-€"
# the same by openssl and by node: crypto.createHmac('sha256', secret).update(body)
UNICODE_SIGNATURE = "87806562bd974a3282c81d0f20151aaeab6e248623e5ef496b0e1e96e3ff3f8f"


def test_header_name() -> None:
    assert SIGNATURE_HEADER == "x-circularo-signature"


@pytest.mark.parametrize(
    ("body", "secret", "expected"),
    [
        (SEED_BODY, SEED_SECRET, SEED_SIGNATURE),
        (b"", SEED_SECRET, EMPTY_SIGNATURE),
        (UNICODE_BODY.encode(), UNICODE_SECRET, UNICODE_SIGNATURE),
    ],
)
def test_sign_matches_openssl_vectors(body: bytes, secret: str, expected: str) -> None:
    assert sign(body, secret) == expected
    assert verify(body, expected, secret)


def test_str_body_is_signed_as_utf8() -> None:
    assert sign(UNICODE_BODY, UNICODE_SECRET) == UNICODE_SIGNATURE
    assert sign(memoryview(UNICODE_BODY.encode()), UNICODE_SECRET.encode()) == UNICODE_SIGNATURE


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
@pytest.mark.parametrize("body", [b"", b"x", SEED_BODY, "ünïcødé ✓ 署名".encode(), bytes(range(256))])
def test_sign_agrees_with_openssl_now(body: bytes) -> None:
    secret = "clé-🔑-secret"
    result = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", secret],
        input=body, capture_output=True, check=True,
    )
    expected = result.stdout.decode().split("= ")[-1].strip()
    assert sign(body, secret) == expected


def test_signature_is_lowercase_hex() -> None:
    signature = sign(SEED_BODY, SEED_SECRET)
    assert len(signature) == 64
    assert signature == signature.lower()


def test_upper_case_and_padded_signatures_are_accepted() -> None:
    assert verify(SEED_BODY, SEED_SIGNATURE.upper(), SEED_SECRET)
    assert verify(SEED_BODY, f"  {SEED_SIGNATURE}\t", SEED_SECRET)
    assert verify(SEED_BODY, SEED_SIGNATURE.encode(), SEED_SECRET)


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        SEED_SIGNATURE[:-1],
        SEED_SIGNATURE + "0",
        "sha256=" + SEED_SIGNATURE,
        SEED_SIGNATURE[:-1] + ("0" if SEED_SIGNATURE[-1] != "0" else "1"),
        "g" * 64,
        SEED_SIGNATURE[:32] + " " + SEED_SIGNATURE[33:],
        b"\xff" * 64,
    ],
)
def test_wrong_signatures_are_rejected(signature: str | bytes | None) -> None:
    assert not verify(SEED_BODY, signature, SEED_SECRET)


def test_signature_covers_exact_bytes() -> None:
    reserialised = SEED_BODY.replace(b'","', b'", "')
    assert not verify(reserialised, SEED_SIGNATURE, SEED_SECRET)
    assert not verify(SEED_BODY + b"\n", SEED_SIGNATURE, SEED_SECRET)


def test_wrong_secret_is_rejected() -> None:
    assert not verify(SEED_BODY, SEED_SIGNATURE, "Gh1!f5dFs0dB")


def test_rotation_accepts_any_listed_secret() -> None:
    assert verify(SEED_BODY, SEED_SIGNATURE, ["new-secret", SEED_SECRET])
    assert verify(SEED_BODY, SEED_SIGNATURE, (SEED_SECRET, "new-secret"))
    assert not verify(SEED_BODY, SEED_SIGNATURE, ["new-secret", "other"])


@pytest.mark.parametrize("secrets", [[], "", b"", [""], [SEED_SECRET, ""], [42]])
def test_unusable_secrets_are_a_configuration_error(secrets: object) -> None:
    with pytest.raises(ConfigurationError):
        verify(SEED_BODY, SEED_SIGNATURE, secrets)  # type: ignore[arg-type]


def test_sign_refuses_an_empty_secret() -> None:
    with pytest.raises(ConfigurationError, match="empty"):
        sign(SEED_BODY, "")


def test_verify_uses_constant_time_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert verify(SEED_BODY, SEED_SIGNATURE, [SEED_SECRET, "other"])
    # every secret is compared, even after a match, so timing does not tell which matched
    assert len(calls) == 2
