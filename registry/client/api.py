"""A typed, torch-free client for the registry's HTTP API (docs/api.md).

    client = RegistryClient("https://registry", api_key, cache_dir="~/.cache/vera")
    manifest = client.resolve("alice")
    blob = client.download_blob(manifest)          # sha256-verified, content-addressed cache
    for event in client.follow_feed(state_file="feed.seq"):
        ...                                        # resumes after a restart

Connection errors and 5xx answers are retried with exponential backoff, but only for
requests that repeating cannot apply twice (`may_retry`): GET, HEAD, DELETE, a PUT with
If-Match, a POST with an Idempotency-Key (`submit_job` sends one by itself). A request that
never left (the connection could not be made) is retried whatever its method; 4xx never
are. Every failed answer raises `ClientError(status, code, message, details)` from the
registry's `{"error": {...}}` body.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

# The server's own response schema (pydantic, torch-free); unknown fields a newer server
# adds are ignored.
from pydantic import ConfigDict

from registry.adapters.schemas import AliasEventOut, BaseModelRef, Manifest, ProjectionRef
from registry.base_models.schemas import PRESIGNED_PUT_MAX_BYTES
from registry.client.audit import AuditClient
from registry.client.common import ClientError, IntegrityError, _atomic_write, _segment
from registry.client.exports import ExportsMixin
from registry.client.metadata import MetadataMixin

__all__ = [
    "BaseModelRef",
    "ClientError",
    "FeedEvent",
    "IntegrityError",
    "Manifest",
    "ProjectionRef",
    "RegistryClient",
]


WRITES_REMEMBERED = 10_000  # aliases whose last own write a client keeps reading back


class FeedEvent(AliasEventOut):
    """One event from /v1/feed: an alias move (kind "set" for a publish, or "rollback") or
    a deletion ("version_deleted", "adapter_deleted", "user_deleted" with `adapter_ids`):
    the server's own schema, read-only here."""

    model_config = ConfigDict(frozen=True)


# Failures that happen before a byte of the request was sent: always safe to retry.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def may_retry(method: str, headers: dict[str, str]) -> bool:
    """Whether sending this request again after a lost or failed answer cannot apply it twice
    (a second job, key or dataset)."""
    names = {name.lower() for name in headers}
    method = method.upper()
    if method in ("GET", "HEAD", "OPTIONS", "DELETE"):
        return True
    if method == "PUT":
        return "if-match" in names  # the generation check turns a repeat into a 412
    return method == "POST" and "idempotency-key" in names


def _retry_after(response: httpx.Response) -> float:
    """A 429's Retry-After in seconds (integer form; 1 when absent or a date)."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


class _FileChunks:
    """A file as a request body that can be sent again on a retry (a generator could not)."""

    def __init__(self, path: Path, progress: Callable[[int], None] | None) -> None:
        self.path, self.progress = path, progress

    def __iter__(self) -> Iterator[bytes]:
        with open(self.path, "rb") as handle:
            while chunk := handle.read(1024 * 1024):
                yield chunk
                if self.progress:
                    self.progress(len(chunk))


class RegistryClient(MetadataMixin, AuditClient, ExportsMixin):
    """Sync client. Pass `http=` an existing httpx.Client (e.g. FastAPI's TestClient) or
    `transport=` an httpx transport; otherwise one is made for `base_url`."""

    def __init__(
        self,
        base_url: str = "",
        api_key: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        http: httpx.Client | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.25,
        max_backoff: float = 8.0,
        cache_dir: str | Path | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._owns_http = http is None
        self.http = http or httpx.Client(base_url=base_url, transport=transport, timeout=timeout)
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self._presign_uploads = True  # until the registry answers presign_unavailable
        self._sleep = sleep
        # (user, adapter name, alias) -> the generation this client moved it to
        self._written: dict[tuple[str, str, str], int] = {}

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- transport ---------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...] = (),
        timeout: float | None = None,
        idempotent: bool | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """One call with retries on connection errors and 5xx where `may_retry` allows (or
        `idempotent` says, for a request the route makes safe to repeat); raises ClientError
        on 4xx, and on a failure it may not retry. `stream`: the body is left unread (the
        caller iterates and closes the response); error bodies are still read."""
        headers = {**self.headers, **(kwargs.pop("headers", None) or {})}
        retriable = may_retry(method, headers) if idempotent is None else idempotent
        attempt = 0
        while True:
            try:
                if self._owns_http:  # a caller's client keeps its own timeouts
                    kwargs["timeout"] = timeout if timeout is not None else self.timeout
                response = self._send(method, path, headers, stream, kwargs)
            except httpx.TransportError as exc:
                if attempt >= self.retries or not (retriable or isinstance(exc, NOT_SENT)):
                    raise self._transport_error(exc, retriable) from exc
            else:
                if response.status_code < 400 or response.status_code in ok:
                    return response
                if stream:
                    response.read()  # an error body is small, and from_response reads it
                    response.close()
                if response.status_code == 429 and attempt < self.retries:
                    # Refused before anything ran (rate limit): any method may go again.
                    self._sleep(min(self.max_backoff, _retry_after(response)))
                    attempt += 1
                    continue
                if response.status_code < 500 or attempt >= self.retries or not retriable:
                    raise ClientError.from_response(response)
            self._sleep(min(self.max_backoff, self.backoff * 2**attempt))
            attempt += 1

    def _send(
        self, method: str, path: str, headers: dict, stream: bool, kwargs: dict
    ) -> httpx.Response:
        if not stream:
            return self.http.request(method, path, headers=headers, **kwargs)
        args = {k: v for k, v in kwargs.items() if k != "follow_redirects"}
        request = self.http.build_request(method, path, headers=headers, **args)
        follow = kwargs.get("follow_redirects", False)
        return self.http.send(request, stream=True, follow_redirects=follow)

    def _transport_error(self, exc: httpx.TransportError, retriable: bool) -> ClientError:
        where = self.base_url or "the registry"
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, NOT_SENT):
            return ClientError(0, "connection_error", f"cannot reach {where}: {reason}")
        message = f"lost the answer from {where}: {reason}"
        if not retriable:
            message += "; the request may have been applied: check before sending it again"
        return ClientError(0, "connection_error", message)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def pages(self, path: str, params: dict | None = None) -> Iterator[dict]:
        """Every item of a list route, following `next_cursor` (docs/api.md, "Pagination")."""
        params = dict(params or {})
        while True:
            page = self._json("GET", path, params=params)
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    # -- resolve and blobs ---------------------------------------------------------------

    def resolve(
        self,
        user_id: str,
        adapter: str = "default",
        alias: str = "live",
        *,
        min_generation: int | None = None,
    ) -> Manifest:
        """The alias's manifest, at `min_generation` or later (e.g. a feed event's
        `generation`) and never older than a move this client made: any API process,
        however its cache stands, answers with this client's own writes."""
        params: dict[str, Any] = {"user_id": user_id, "adapter": adapter, "alias": alias}
        wanted = max(min_generation or 0, self._written.get((user_id, adapter, alias), 0))
        if wanted:
            params["min_generation"] = wanted
        attempt = 0
        while True:
            try:
                return Manifest.model_validate(self._json("GET", "/v1/resolve", params=params))
            except ClientError as exc:
                # A database replica behind its primary catches up within moments.
                if exc.code != "generation_not_visible" or attempt >= self.retries:
                    raise
            self._sleep(min(self.max_backoff, self.backoff * 2**attempt))
            attempt += 1

    def _remember(self, answer: dict) -> dict:
        """Note the generation a publish or rollback answer says this client wrote."""
        manifest = answer.get("manifest")
        if manifest:
            if len(self._written) >= WRITES_REMEMBERED:
                self._written.clear()
            key = (manifest["user_id"], manifest["adapter_name"], manifest["alias"])
            generation = manifest["alias_generation"]
            self._written[key] = max(self._written.get(key, 0), generation)
        return answer

    def cache_path(self, sha256: str) -> Path:
        if self.cache_dir is None:
            raise ValueError("this client has no cache_dir")
        return self.cache_dir / "sha256" / sha256[:2] / sha256

    def download_blob(
        self, manifest: Manifest | None = None, *, sha256: str | None = None, url: str | None = None
    ) -> bytes:
        """The blob's bytes, verified against its sha256; cached by content when cache_dir
        is set (a cached file is re-hashed on read, and fetched again if it is corrupt)."""
        if manifest is not None:
            sha256, url = manifest.blob_sha256, manifest.blob_url
        if not sha256 or not url:
            raise ValueError("download_blob needs a manifest, or sha256 and url")
        path = self.cache_path(sha256) if self.cache_dir else None
        if path is not None and path.is_file():
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() == sha256:
                return data
            path.unlink(missing_ok=True)  # corrupt: fetch it again
        data = self.request("GET", url, follow_redirects=True).content
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise IntegrityError(sha256, actual)
        if path is not None:
            _atomic_write(path, data)
        return data

    # -- feed -----------------------------------------------------------------------------

    def feed(
        self, after: int = 0, wait: float = 0, limit: int = 100
    ) -> tuple[list[FeedEvent], int]:
        params = {"after": after, "wait": wait, "limit": limit}
        body = self._json("GET", "/v1/feed", params=params, timeout=self.timeout + wait)
        return [FeedEvent.model_validate(e) for e in body["events"]], body["last_seq"]

    def follow_feed(
        self,
        after: int | None = None,
        wait: float = 30,
        *,
        state_file: str | Path | None = None,
        limit: int = 100,
        stop: Callable[[], bool] | None = None,
    ) -> Iterator[FeedEvent]:
        """Yield alias events forever (or until `stop()`), long-polling with `wait`.

        With `state_file`, the seq of each event is persisted once the consumer asks for the
        next one (i.e. after it was handled), and a new follower starts after it. `after`
        overrides the file.
        """
        state = Path(state_file) if state_file else None
        if after is None:
            after = int(state.read_text().strip() or 0) if state and state.is_file() else 0
        while not (stop and stop()):
            events, last = self.feed(after, wait, limit)
            for event in events:
                yield event
                after = event.seq
                if state:
                    _atomic_write(state, str(after).encode())
            if not events and last > after:
                after = last

    # -- jobs and datasets ------------------------------------------------------------------

    def upload_dataset(self, user_id: str, task: str, data: bytes | str | Path) -> dict:
        if isinstance(data, Path):
            data = data.read_bytes()
        if isinstance(data, str):
            data = data.encode()
        return self._json(
            "POST",
            "/v1/datasets",
            params={"user_id": user_id, "task": task},
            content=data,
            headers={"Content-Type": "application/x-ndjson"},
        )

    def get_dataset(self, dataset_id: str) -> dict:
        return self._json("GET", f"/v1/datasets/{_segment(dataset_id)}")

    def submit_job(self, body: dict, idempotency_key: str | None = None) -> dict:
        """Submit a job. Without a key, one is made for this call, so that its retries
        (after a lost answer or a 5xx) return the same job instead of a second one."""
        headers = {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}
        return self._json("POST", "/v1/jobs", json=body, headers=headers)

    def get_job(self, job_id: str) -> dict:
        return self._json("GET", f"/v1/jobs/{_segment(job_id)}")

    def list_jobs(
        self,
        user_id: str | None = None,
        status: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> dict:
        params = {"user_id": user_id, "status": status, "cursor": cursor, "limit": limit}
        return self._json("GET", "/v1/jobs", params={k: v for k, v in params.items() if v})

    def cancel_job(self, job_id: str) -> dict:
        return self._json("POST", f"/v1/jobs/{_segment(job_id)}/cancel")

    def job_events(self, job_id: str, after: int = 0, limit: int = 200) -> list[dict]:
        return self._json(
            "GET", f"/v1/jobs/{_segment(job_id)}/events", params={"after": after, "limit": limit}
        )

    # -- adapters and aliases -----------------------------------------------------------

    def list_adapters(self, user_id: str, tag: str | None = None) -> list[dict]:
        """Every adapter of a user (with `tag`, if given), by name."""
        params = {"tag": tag} if tag else {}
        return list(self.pages(f"/v1/users/{_segment(user_id)}/adapters", params))

    def get_adapter(self, adapter_id: str) -> dict:
        return self._json("GET", f"/v1/adapters/{_segment(adapter_id)}")

    def list_versions(self, adapter_id: str, tag: str | None = None) -> list[dict]:
        """Every version (with `tag`, if given), oldest first."""
        params = {"tag": tag} if tag else {}
        return list(self.pages(f"/v1/adapters/{_segment(adapter_id)}/versions", params))

    def get_version(self, adapter_id: str, version: int) -> dict:
        return self._json("GET", f"/v1/adapters/{_segment(adapter_id)}/versions/{version}")

    def publish(
        self,
        adapter_id: str,
        alias: str,
        version: int,
        if_match: int | None = None,
        reason: str | None = None,
    ) -> dict:
        """Point `alias` at `version`; `reason` goes to the history and the audit log."""
        headers = {"If-Match": f'"{if_match}"'} if if_match is not None else {}
        body: dict[str, Any] = {"version": version}
        if reason is not None:
            body["reason"] = reason
        answer = self._json(
            "PUT",
            f"/v1/adapters/{_segment(adapter_id)}/aliases/{_segment(alias)}",
            json=body,
            headers=headers,
        )
        return self._remember(answer)

    def get_alias(self, adapter_id: str, alias: str) -> dict:
        return self._json("GET", f"/v1/adapters/{_segment(adapter_id)}/aliases/{_segment(alias)}")

    def rollback(
        self,
        adapter_id: str,
        alias: str,
        to_version: int | None = None,
        if_match: int | None = None,
        reason: str | None = None,
    ) -> dict:
        headers = {"If-Match": f'"{if_match}"'} if if_match is not None else {}
        body = {"to_version": to_version, "reason": reason}
        body = {k: v for k, v in body.items() if v is not None}
        answer = self._json(
            "POST",
            f"/v1/adapters/{_segment(adapter_id)}/aliases/{_segment(alias)}/rollback",
            json=body or None,
            headers=headers,
        )
        return self._remember(answer)

    def history(self, adapter_id: str, alias: str) -> list[dict]:
        """Every move of the alias, oldest first."""
        path = f"/v1/adapters/{_segment(adapter_id)}/aliases/{_segment(alias)}/history"
        return list(self.pages(path))

    # -- base models and projections ----------------------------------------------------

    def register_base_model(self, body: dict) -> dict:
        """body: name, architecture, layers, weights_hash, files, content_hash, capabilities
        and optionally source_uri (see registry.vera.describe.describe_base_model). Without
        source_uri, every file must be uploaded first: `upload_base_model` does both."""
        return self._json("POST", "/v1/base-models", json=body)

    def has_model_file(self, sha256: str) -> bool:
        """Whether this tenant already uploaded the file (it need not be sent again)."""
        response = self.request("GET", f"/v1/base-models/files/{sha256}", ok=(404,))
        return response.status_code == 200

    def upload_model_file(
        self, path: str | Path, sha256: str, progress: Callable[[int], None] | None = None
    ) -> dict:
        """Stream one file to the registry's store; `progress(n)` after each chunk sent.
        Where the registry hands out presigned S3 URLs the bytes go straight to S3 and the
        registry then verifies what landed; otherwise through the API."""
        path = Path(path)
        size = path.stat().st_size
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        body = _FileChunks(path, progress)
        url = f"/v1/base-models/files/{sha256}"
        if self._presign_uploads and size <= PRESIGNED_PUT_MAX_BYTES:
            try:
                ticket = self._json("POST", f"{url}/presign", json={"size": size})
            except ClientError as exc:
                if exc.code != "presign_unavailable":
                    raise
                self._presign_uploads = False  # this registry says so: don't ask again
            else:
                with httpx.Client(timeout=self.timeout) as direct:
                    answer = direct.put(ticket["url"], content=body, headers=headers)
                if answer.status_code >= 300:
                    raise ClientError.from_response(answer)
                return self._json(
                    "POST", f"{url}/complete", json={"upload_id": ticket["upload_id"]}
                )
        # Content-addressed: storing the same bytes under their sha256 twice is one file.
        return self._json("PUT", url, content=body, headers=headers, idempotent=True)

    def upload_base_model(
        self,
        folder: str | Path,
        body: dict,
        progress: Callable[[str, int], None] | None = None,
    ) -> dict:
        """Upload the files of `body["files"]` from `folder` that the registry does not hold
        yet (so an interrupted upload resumes), then register the base model.
        `progress(event, n)`: ("skip", size) for a file already there, ("sent", n) per chunk."""
        folder = Path(folder)
        for file in body["files"]:
            if self.has_model_file(file["sha256"]):
                if progress:
                    progress("skip", file["size"])
                continue
            sent = (lambda n: progress("sent", n)) if progress else None
            self.upload_model_file(folder / file["path"], file["sha256"], sent)
        return self.register_base_model(body)

    def list_base_models(self, cursor: str | None = None, limit: int = 50) -> dict:
        """One page of base models (`pages("/v1/base-models")` for all)."""
        params = {"cursor": cursor, "limit": limit} if cursor else {"limit": limit}
        return self._json("GET", "/v1/base-models", params=params)

    def get_base_model(self, base_model_id: str) -> dict:
        return self._json("GET", f"/v1/base-models/{_segment(base_model_id)}")

    def register_projection(self, base_model_id: str, body: dict) -> dict:
        """body: seed, r, max_d_in, max_d_out, generator, fingerprint, torch_version."""
        return self._json(
            "POST", f"/v1/base-models/{_segment(base_model_id)}/projections", json=body
        )

    def list_projections(self, base_model_id: str) -> list[dict]:
        return list(self.pages(f"/v1/base-models/{_segment(base_model_id)}/projections"))

    # -- API keys -------------------------------------------------------------------------

    def me(self) -> dict:
        """The calling key: tenant_id, tenant_name, key_id, key_name, scopes, granted."""
        return self._json("GET", "/v1/me")

    def list_keys(self) -> list[dict]:
        return list(self.pages("/v1/keys"))

    def create_key(self, name: str, scopes: list[str]) -> dict:
        """A new key of this tenant; `api_key` in the answer is its only showing."""
        return self._json("POST", "/v1/keys", json={"name": name, "scopes": scopes})

    def revoke_key(self, key_id: str) -> dict:
        return self._json("DELETE", f"/v1/keys/{_segment(key_id)}")
