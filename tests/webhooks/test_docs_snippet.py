"""The standard-library verification snippet of docs/operations.md works as written."""

import json
import re
from pathlib import Path

import pytest

from registry.webhooks.signing import sign

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def _snippet():
    text = DOC.read_text()
    code = re.search(r"<!-- webhook-verify-snippet -->\n```python\n(.*?)```", text, re.S)
    namespace: dict = {}
    exec(compile(code.group(1), str(DOC), "exec"), namespace)
    return namespace["verify_vera_signature"]


def test_the_documented_snippet_checks_what_the_sender_signs() -> None:
    verify = _snippet()
    body = json.dumps({"id": "e", "type": "job.failed", "data": {}}).encode()
    assert verify("whsec_s", body, sign("whsec_s", body))["id"] == "e"
    with pytest.raises(ValueError, match="does not match"):
        verify("whsec_other", body, sign("whsec_s", body))
    with pytest.raises(ValueError, match="replay"):
        verify("whsec_s", body, sign("whsec_s", body, timestamp=1_000))
    with pytest.raises(ValueError, match="malformed"):
        verify("whsec_s", body, "")
