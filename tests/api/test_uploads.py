"""Dataset uploads against a real API process: bounded memory, slow clients, aborts."""

from __future__ import annotations

import json
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from registry.config import Settings
from tests.api.live_api import LiveApi, read_response

MAX_BYTES = Settings.model_fields["max_dataset_bytes"].default  # 64 MiB, the default
PARALLEL = 5
ALLOWED_GROWTH = 150 * 1024 * 1024


@pytest.fixture
def live(tmp_path, request):
    api = LiveApi(tmp_path, **getattr(request, "param", {})).start()
    yield api
    api.stop()


def _dataset(size: int, seed: int) -> bytes:
    """A valid classification dataset of just under `size` bytes, in ~1.5 KB rows."""
    text = f"seed {seed} " + "lorem ipsum dolor sit amet " * 55
    lines = [json.dumps({"text": text, "label": i % 2}).encode() for i in range(2)]
    line_bytes = len(lines[0]) + 1
    rows = [lines[i % 2] for i in range(size // line_bytes)]
    return b"\n".join(rows) + b"\n"


def _upload(api: LiveApi, body: bytes) -> tuple[int, bytes]:
    with api.connect() as sock:
        sock.sendall(api.upload_head(len(body), task="sequence-classification") + body)
        response = read_response(sock)
    return int(response.split(b" ", 2)[1]), response


def test_parallel_max_size_uploads_stay_in_bounded_memory(live):
    status, response = _upload(live, _dataset(64 * 1024, 0))  # warms every code path up
    assert status == 201, response
    bodies = [_dataset(MAX_BYTES - 1024, seed) for seed in range(1, PARALLEL + 1)]
    before = live.peak_rss_bytes()
    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(lambda body: _upload(live, body), bodies))
    growth = live.peak_rss_bytes() - before
    assert [status for status, _ in results] == [201] * PARALLEL, results[0][1][-300:]
    print(f"peak RSS grew by {growth / 2**20:.0f} MiB")
    assert growth < ALLOWED_GROWTH, f"peak RSS grew by {growth / 2**20:.0f} MiB"
    stored = live.stored()
    assert len(stored["datasets"]) == PARALLEL + 1 and stored["spool"] == []


@pytest.mark.parametrize("live", [{"upload_idle_timeout_s": "1"}], indirect=True)
def test_a_silent_client_gets_408_and_the_connection_closed(live):
    with live.connect() as sock:
        sock.sendall(live.upload_head(10_000) + b'{"text": "a')
        started = time.monotonic()
        response = read_response(sock)  # returns once the server closes the connection
    assert response.startswith(b"HTTP/1.1 408"), response
    assert b"connection: close" in response.lower()
    assert json.loads(response.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"
    assert 0.9 < time.monotonic() - started < 10
    assert live.stored() == {"blobs": [], "spool": [], "datasets": []}


@pytest.mark.parametrize(
    "live", [{"upload_idle_timeout_s": "1", "upload_timeout_s": "3"}], indirect=True
)
def test_a_trickling_client_gets_408_at_the_upload_deadline(live):
    with live.connect() as sock:
        sock.sendall(live.upload_head(10_000))
        started = time.monotonic()
        sock.settimeout(0.3)
        response = b""
        while time.monotonic() - started < 15:  # a byte every 0.3 s: never idle for 1 s
            try:
                sock.sendall(b" ")
                response += sock.recv(65536)
                break
            except TimeoutError:
                continue
            except OSError:
                break
        sock.settimeout(10)
        response += read_response(sock)
    elapsed = time.monotonic() - started
    assert response.startswith(b"HTTP/1.1 408"), response
    assert b"longer than 3 s" in response and 2.5 < elapsed < 10
    assert live.stored() == {"blobs": [], "spool": [], "datasets": []}


def test_a_client_abort_is_no_server_error_and_stores_nothing(live):
    before = live.metric("vera_http_requests_total", route="/v1/datasets")
    sock = live.connect()
    sock.sendall(live.upload_head(8 * 1024 * 1024) + b'{"text": "abc", "label": 1}\n' * 40_000)
    # An abrupt close (RST), as a killed client leaves it.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    deadline = time.monotonic() + 10
    while live.metric("vera_http_requests_total", route="/v1/datasets") == before:
        assert time.monotonic() < deadline, "the aborted request was never counted"
        time.sleep(0.1)
    assert live.metric("vera_http_requests_total", route="/v1/datasets", status="499") == 1
    assert live.metric("vera_http_requests_total", status="500") == 0
    assert live.stored() == {"blobs": [], "spool": [], "datasets": []}


@pytest.mark.parametrize("live", [{"upload_idle_timeout_s": "1"}], indirect=True)
def test_the_timeouts_end_with_the_body_a_long_poll_runs_its_course(live):
    with live.connect() as sock:
        sock.sendall(
            b"GET /v1/feed?after=0&wait=3 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {live.api_key}\r\nConnection: close\r\n\r\n".encode()
        )
        started = time.monotonic()
        response = read_response(sock)
    assert response.startswith(b"HTTP/1.1 200"), response
    assert time.monotonic() - started > 2.5
