"""The S3 backend of BlobStore (boto3): any S3-compatible store by endpoint URL."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from registry.config import Settings
from registry.errors import BlobNotFound, StorageError
from registry.storage import CHUNK, SHA256, BlobInfo, BlobStore, CheckedStream, blob_key

log = logging.getLogger(__name__)
EXISTS_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
UNSUPPORTED_CODES = {"NotImplemented", "501"}


def make_client(
    settings: Settings,
    *,
    connect_timeout: float = 5,
    read_timeout: float = 30,
    max_attempts: int = 3,
):
    """One client per store: explicit timeouts, standard retries, any endpoint."""
    checksum = "when_supported" if settings.s3_checksums else "when_required"
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "max_attempts": max_attempts},
        request_checksum_calculation=checksum,
        response_checksum_validation=checksum,
        signature_version="s3v4",
    )
    key_id, secret = settings.s3_access_key_id, settings.s3_secret_access_key
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region or "us-east-1",
        aws_access_key_id=key_id.get_secret_value() if key_id else None,
        aws_secret_access_key=secret.get_secret_value() if secret else None,
        config=config,
    )


def _code(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))


class S3BlobStore(BlobStore):
    def __init__(self, bucket: str, prefix: str, settings: Settings, client=None) -> None:
        super().__init__(settings.max_blob_bytes)
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.checksums = settings.s3_checksums
        self.conditional = settings.s3_conditional_writes
        self.part_bytes = settings.s3_part_bytes
        self.where = f"s3://{bucket}/{self.prefix} at {settings.s3_endpoint_url or 'AWS'}"
        self.client = client or make_client(settings)

    def _key(self, sha256: str) -> str:
        return blob_key(self.prefix, sha256)

    def _fail(self, action: str, exc: Exception) -> StorageError:
        return StorageError(
            f"S3 {action} failed on {self.where}: {exc}. Check VERA_S3_ENDPOINT_URL, the "
            "credentials and that the bucket exists",
            details={"bucket": self.bucket},
        )

    def _write(self, sha256: str, data: bytes) -> None:
        self._put(sha256, data)

    def _write_file(self, sha256: str, path: Path, size: int) -> None:
        with open(path, "rb") as body:
            self._put(sha256, body)

    def _write_stream(self, sha256: str, checked: CheckedStream) -> None:
        """A multipart upload, one part in memory at a time; completed only once the whole
        body hashed right, aborted otherwise (nothing is visible under the key before)."""
        key, buffer, parts, upload_id = self._key(sha256), bytearray(), [], None
        try:
            for chunk in checked:
                buffer += chunk
                while len(buffer) >= self.part_bytes:
                    if upload_id is None:
                        upload_id = self._call(
                            "upload", "create_multipart_upload", Bucket=self.bucket, Key=key
                        )["UploadId"]
                    parts.append(self._part(key, upload_id, len(parts) + 1, buffer))
                    del buffer[: self.part_bytes]
            checked.verify()
            if upload_id is None:
                self._put(sha256, bytes(buffer))
                return
            if buffer:
                parts.append(self._part(key, upload_id, len(parts) + 1, buffer))
            self._call(
                "upload",
                "complete_multipart_upload",
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            if upload_id is not None:
                try:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=key, UploadId=upload_id
                    )
                except (ClientError, BotoCoreError):
                    log.warning("could not abort multipart upload of %s", key, exc_info=True)
            raise

    def _part(self, key: str, upload_id: str, number: int, buffer: bytearray) -> dict:
        body = bytes(buffer[: self.part_bytes])
        answer = self._call(
            "upload",
            "upload_part",
            Bucket=self.bucket,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
        )
        # Whatever checksum the client library added to the part must be repeated at the end.
        return {
            "PartNumber": number,
            **{
                k: v
                for k, v in answer.items()
                if k == "ETag" or (k.startswith("Checksum") and k != "ChecksumType")
            },
        }

    def _call(self, action: str, method: str, **args) -> dict:
        try:
            return getattr(self.client, method)(**args)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(action, exc) from exc

    def _put(self, sha256: str, body) -> None:
        args = {"Bucket": self.bucket, "Key": self._key(sha256), "Body": body}
        if self.checksums:
            args.update(
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=base64.b64encode(bytes.fromhex(sha256)).decode(),
            )
        if self.conditional:
            args["IfNoneMatch"] = "*"
        try:
            self.client.put_object(**args)
        except ClientError as exc:
            code = _code(exc)
            if code in EXISTS_CODES:
                # Already stored (content-addressed, and reads verify it): refresh its age,
                # so that GC's grace period counts from this write.
                if self._touch(sha256):
                    return
                if hasattr(body, "seek"):  # GC took it just now: store it again
                    body.seek(0)
                self._put(sha256, body)
                return
            if code in UNSUPPORTED_CODES and self.conditional:
                log.warning(
                    "%s rejects conditional writes; set VERA_S3_CONDITIONAL_WRITES="
                    "false to stop trying",
                    self.where,
                )
                self.conditional = False
                if hasattr(body, "seek"):
                    body.seek(0)
                self._put(sha256, body)
                return
            raise self._fail("upload", exc) from exc
        except BotoCoreError as exc:
            raise self._fail("upload", exc) from exc

    def _touch(self, sha256: str) -> bool:
        """Copy the object onto itself: a new LastModified, the same bytes. False if gone."""
        key = self._key(sha256)
        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=key,
                CopySource={"Bucket": self.bucket, "Key": key},
                MetadataDirective="REPLACE",
            )
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return False
            raise self._fail("refresh", exc) from exc
        except BotoCoreError as exc:
            raise self._fail("refresh", exc) from exc
        return True

    def _read(self, sha256, start, end, chunk_size=CHUNK) -> Iterator[bytes]:
        args = {"Bucket": self.bucket, "Key": self._key(sha256)}
        if start or end is not None:
            if end is not None and end <= start:
                return
            args["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            body = self.client.get_object(**args)["Body"]
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise BlobNotFound(f"blob {sha256} not found in {self.where}") from None
            if _code(exc) in ("InvalidRange", "416"):
                return
            raise self._fail("download", exc) from exc
        except BotoCoreError as exc:
            raise self._fail("download", exc) from exc
        with body:
            yield from body.iter_chunks(chunk_size)

    def stat(self, sha256: str) -> BlobInfo:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(sha256))
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise BlobNotFound(f"blob {sha256} not found in {self.where}") from None
            raise self._fail("head", exc) from exc
        except BotoCoreError as exc:
            raise self._fail("head", exc) from exc
        return BlobInfo(sha256, head["ContentLength"], head.get("LastModified"))

    def delete(self, sha256: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(sha256))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("delete", exc) from exc

    def list_blobs(self) -> Iterator[BlobInfo]:
        prefix = "/".join(p for p in (self.prefix, "sha256", "") if p)
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    name = item["Key"].rsplit("/", 1)[-1]
                    if SHA256.match(name):
                        yield BlobInfo(name, item["Size"], item.get("LastModified"))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("list", exc) from exc

    def presigned_get_url(self, sha256: str, ttl_s: int) -> str | None:
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self._key(sha256)},
            ExpiresIn=ttl_s,
        )

    # -- presigned uploads: the client PUTs to a staging key, the registry verifies and adopts

    def _staging_key(self, owner: str, token: str) -> str:
        return "/".join(p for p in (self.prefix, "staging", owner, token) if p)

    def presigned_put_url(self, owner: str, token: str, ttl_s: int) -> str | None:
        return self.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": self._staging_key(owner, token)},
            ExpiresIn=ttl_s,
        )

    def adopt_staged(self, owner: str, token: str, sha256: str, max_bytes: int) -> BlobInfo:
        """Read what the client put under the staging key back (hashing it: the store may
        not check checksums), copy it under its content address, and delete the staging key."""
        staging = self._staging_key(owner, token)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=staging)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                raise BlobNotFound(
                    "nothing was uploaded to the presigned URL (or it expired): ask for a new "
                    "one and PUT the file to it"
                ) from None
            raise self._fail("head", exc) from exc
        try:
            checked = CheckedStream(
                self._call("download", "get_object", Bucket=self.bucket, Key=staging)[
                    "Body"
                ].iter_chunks(CHUNK),
                sha256,
                max_bytes,
            )
            for _ in checked:
                pass
            checked.verify()
            if not self.exists(sha256):
                transfer = TransferConfig(
                    multipart_threshold=self.part_bytes, multipart_chunksize=self.part_bytes
                )
                source = {"Bucket": self.bucket, "Key": staging}
                try:
                    self.client.copy(source, self.bucket, self._key(sha256), Config=transfer)
                except (ClientError, BotoCoreError) as exc:
                    raise self._fail("copy", exc) from exc
        finally:
            self.client.delete_object(Bucket=self.bucket, Key=staging)
        return BlobInfo(sha256, head["ContentLength"])

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("bucket check", exc) from exc
