"""What the delivery log keeps of a URL: secrets masked, user info and fragment dropped, the rest as sent."""

from __future__ import annotations

import pytest

from quills.attribution.postbacks.sinks import redact


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        ("https://pb.example.com/p?click=c1&id=42", "https://pb.example.com/p?click=c1&id=42"),
        ("https://pb.example.com/p?id=42#frag", "https://pb.example.com/p?id=42"),
        ("https://pb.example.com/p?api_key=s3cr3t&id=1", "https://pb.example.com/p?api_key=***&id=1"),
        (
            "https://pb.example.com/p?API_TOKEN=t&Sig=x&n=1",
            "https://pb.example.com/p?API_TOKEN=***&Sig=***&n=1",
        ),
        ("https://user:pw@pb.example.com/p?id=1", "https://pb.example.com/p?id=1"),
        ("https://pb.example.com/p?pass%20word=x", "https://pb.example.com/p?pass%20word=***"),
        # a secret word in the path alone: the URL is parsed, and its query kept as it was
        ("https://pb.example.com/hash/p?id=1", "https://pb.example.com/hash/p?id=1"),
        ("https://pb.example.com:bad/p?key=1", "<invalid url>"),
    ],
)
def test_secrets_are_masked_and_the_rest_kept_as_sent(url: str, logged: str) -> None:
    assert redact(url) == logged
