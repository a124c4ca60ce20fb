"""Files out of the registry: a base model's folder, and an adapter version as a folder that
other servers load (PEFT VeRA, exact or truncated LoRA, or the base model with the adapter
merged in). docs/client.md, "Export to vLLM / LoRAX"."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from registry.adapters.peft_export import BASE_MODEL_HEADER
from registry.base_models.manifest import file_sha256, path_inside
from registry.client.common import ClientError, IntegrityError, _atomic_write, _segment
from registry.errors import Invalid

Progress = Callable[[str, int], None]
EXPORT_FORMATS = ("vera", "lora", "merged")


def _inside(directory: Path, relative: str) -> Path:
    try:
        return path_inside(directory, relative)
    except Invalid as exc:
        raise ClientError(0, "bad_path", exc.message) from None


def _write_stream(path: Path, chunks: Iterator[bytes], progress: Progress | None) -> str:
    """Write chunks to a temporary file beside `path`, then move it there; the sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                digest.update(chunk)
                handle.write(chunk)
                if progress:
                    progress("received", len(chunk))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        Path(temp).unlink(missing_ok=True)
    return digest.hexdigest()


class ExportsMixin:
    """`RegistryClient` methods that write folders: base models and adapter exports."""

    def _download(
        self,
        url: str,
        path: Path,
        *,
        sha256: str | None = None,
        params: dict | None = None,
        progress: Progress | None = None,
    ) -> httpx.Headers:
        """GET `url` into `path` in bounded memory (atomically; verified when `sha256`);
        a connection lost mid-body starts the file again, `retries` times."""
        attempt = 0
        while True:
            response = self.request("GET", url, params=params, stream=True, follow_redirects=True)
            try:
                actual = _write_stream(path, response.iter_bytes(1024 * 1024), progress)
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise self._transport_error(exc, True) from exc
                attempt += 1
                continue
            finally:
                response.close()
            if sha256 is not None and actual != sha256:
                path.unlink(missing_ok=True)
                raise IntegrityError(sha256, actual)
            return response.headers

    def download_base_model(
        self, base_model_id: str, directory: str | Path, progress: Progress | None = None
    ) -> Path:
        """Every file of the base model's manifest into `directory`, each sha256-verified
        and written atomically; files already there and intact are not fetched again.
        `progress(event, n)`: ("skip", size) per intact file, ("received", n) per chunk."""
        model = self._json("GET", f"/v1/base-models/{_segment(base_model_id)}")
        directory = Path(directory).expanduser()
        directory.mkdir(parents=True, exist_ok=True)
        for file in model["files"]:
            target = _inside(directory, file["path"])
            if target.is_file() and file_sha256(target) == (file["sha256"], file["size"]):
                if progress:
                    progress("skip", file["size"])
                continue
            url = f"/v1/base-models/{_segment(base_model_id)}/files/{quote(file['path'])}"
            self._download(url, target, sha256=file["sha256"], progress=progress)
        return directory

    def export_peft(
        self,
        adapter_id: str,
        version: int,
        directory: str | Path,
        format: str = "vera",
        rank: int | None = None,
        base_model_name_or_path: str | None = None,
        progress: Progress | None = None,
    ) -> Path:
        """The version as a folder other servers load: `vera` (PEFT VeRA), `lora` (exact, or
        truncated to `rank` by SVD) or `merged` (the base model with the adapter in its
        weights). An adapter folder names a base model folder that exists: the caller's
        `base_model_name_or_path`, else the registry's recorded source when it is a folder
        here, else the base model downloaded into the client's cache_dir (or beside
        `directory`) with `download_base_model`."""
        params: dict[str, Any] = {"format": format}
        if rank is not None:
            params["rank"] = rank
        if base_model_name_or_path is not None:
            params["base_model_name_or_path"] = base_model_name_or_path
        directory = Path(directory).expanduser()
        directory.mkdir(parents=True, exist_ok=True)
        archive_path = directory / ".export.zip"
        url = f"/v1/adapters/{_segment(adapter_id)}/versions/{int(version)}/peft"
        try:
            headers = self._download(url, archive_path, params=params, progress=progress)
            _unzip(archive_path, directory)
        finally:
            archive_path.unlink(missing_ok=True)
        if format != "merged" and base_model_name_or_path is None:
            self._point_at_local_base(directory, headers.get(BASE_MODEL_HEADER), progress)
        return directory

    def _point_at_local_base(
        self, directory: Path, base_model_id: str | None, progress: Progress | None
    ) -> None:
        config_path = directory / "adapter_config.json"
        config = json.loads(config_path.read_text())
        named = config.get("base_model_name_or_path")
        if named and Path(named).is_dir():
            return
        if not base_model_id:
            raise ClientError(0, "no_base_model", f"the export does not say {BASE_MODEL_HEADER}")
        model = self._json("GET", f"/v1/base-models/{_segment(base_model_id)}")
        name = model["content_hash"].removeprefix("sha256:")[:16]
        root = self.cache_dir / "base-models" if self.cache_dir else directory.parent
        base_dir = self.download_base_model(base_model_id, root / f"base-model-{name}", progress)
        config["base_model_name_or_path"] = str(base_dir.resolve())
        _atomic_write(config_path, json.dumps(config, indent=2, sort_keys=True).encode())


def _unzip(archive_path: Path, directory: Path) -> None:
    with zipfile.ZipFile(archive_path) as archive:
        for member in archive.infolist():
            _inside(directory, member.filename.rstrip("/"))
        archive.extractall(directory)
