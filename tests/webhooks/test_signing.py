"""The signature receivers check: what the sender signs verifies; anything changed, or too
old, does not."""

import json

import pytest

from registry.webhooks import InvalidSignature, verify
from registry.webhooks.signing import sign

SECRET = "whsec_test"
BODY = json.dumps({"id": "e1", "type": "job.succeeded", "data": {"job_id": "j"}}).encode()


def test_a_fresh_signature_verifies_and_returns_the_event() -> None:
    header = sign(SECRET, BODY, timestamp=1_000_000)
    assert verify(SECRET, BODY, header, now=1_000_010)["id"] == "e1"


@pytest.mark.parametrize(
    ("secret", "body"),
    [("whsec_other", BODY), (SECRET, BODY + b" "), (SECRET, BODY.replace(b"j", b"k"))],
)
def test_another_secret_or_a_changed_body_is_refused(secret: str, body: bytes) -> None:
    header = sign(SECRET, BODY, timestamp=1_000_000)
    with pytest.raises(InvalidSignature, match="no v1 signature matches"):
        verify(secret, body, header, now=1_000_000)


def test_a_replay_after_the_tolerance_is_refused() -> None:
    header = sign(SECRET, BODY, timestamp=1_000_000)
    assert verify(SECRET, BODY, header, tolerance_s=300, now=1_000_300)
    with pytest.raises(InvalidSignature, match="replay"):
        verify(SECRET, BODY, header, tolerance_s=300, now=1_000_301)
    with pytest.raises(InvalidSignature, match="replay"):  # from the future: a clock off
        verify(SECRET, BODY, header, tolerance_s=300, now=999_000)


def test_a_timestamp_changed_to_look_fresh_breaks_the_signature() -> None:
    old = sign(SECRET, BODY, timestamp=1_000_000)
    forged = old.replace("t=1000000", "t=2000000")
    with pytest.raises(InvalidSignature, match="no v1 signature matches"):
        verify(SECRET, BODY, forged, now=2_000_000)


@pytest.mark.parametrize("header", [None, "", "v1=abc", "t=12", "t=x,v1=ab", "garbage"])
def test_a_missing_or_malformed_header_is_refused(header) -> None:
    with pytest.raises(InvalidSignature):
        verify(SECRET, BODY, header, now=12)


def test_any_of_several_signatures_may_match() -> None:
    right = sign(SECRET, BODY, timestamp=5).split(",")[1]
    assert verify(SECRET, BODY, f"t=5,v1={'0' * 64},{right}", now=5)


def test_the_body_may_be_given_as_text() -> None:
    header = sign(SECRET, BODY, timestamp=7)
    assert verify(SECRET, BODY.decode(), header, now=7)["id"] == "e1"
