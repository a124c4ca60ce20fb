"""What bench/serve_http.py serves: a tiny random Llama with a word-level tokenizer, a
registry API process over SQLite holding it, and users with published random adapters.

Adapters get there the way a finished job leaves them (a version row and its blob, written
straight into the registry's database and store), then go live through the HTTP API.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from registry.cli.local import free_port  # noqa: E402
from registry.client.api import RegistryClient  # noqa: E402
from registry.db import make_engine, make_sessionmaker, session_scope  # noqa: E402
from registry.migrate import upgrade  # noqa: E402
from registry.storage import LocalBlobStore  # noqa: E402
from registry.vera.config import TASK_CAUSAL_LM, VeraConfig  # noqa: E402
from tests import factories  # noqa: E402

TARGETS = ["q_proj", "v_proj"]
SEED = 7
VOCAB = 512


def build_model(directory: Path, hidden: int, layers: int) -> Path:
    """A random LlamaForCausalLM saved with a word-level tokenizer (w0 … w511; eos w1)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        intermediate_size=hidden * 8 // 3,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        num_key_value_heads=max(1, hidden // 64),
        max_position_embeddings=512,
        tie_word_embeddings=False,
        bos_token_id=2,
        eos_token_id=1,
        pad_token_id=0,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    vocab = {f"w{i}": i for i in range(VOCAB)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="w3"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="w1", pad_token="w0", bos_token="w2", unk_token="w3"
    )
    fast.save_pretrained(directory)
    return directory


def wait_http(url: str, process: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what}: {url} did not answer 200 within {timeout:.0f} s")


def stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass
class Registry:
    """A registry API process over SQLite, with an admin key of one tenant."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    api_key: str = ""
    tenant_id: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.workdir / 'registry.db'}"

    def start(self) -> Registry:
        upgrade(self.database_url)
        engine = make_engine(self.database_url)
        with session_scope(make_sessionmaker(engine)) as session:
            tenant = factories.tenant(session, "bench")
            self.tenant_id = tenant.id
            self.api_key = factories.api_key(session, tenant.id, ["admin"])[1]
        engine.dispose()
        env = {k: v for k, v in os.environ.items() if not k.startswith("VERA_")}
        env.update(
            PYTHONPATH=str(ROOT),
            VERA_HOME=str(self.workdir),
            VERA_DATABASE_URL=self.database_url,
            VERA_STORAGE_URL=f"file://{self.workdir / 'blobs'}",
        )
        argv = [sys.executable, "-m", "uvicorn", "registry.main:create_app", "--factory"]
        self.process = subprocess.Popen(
            [*argv, "--port", str(self.port), "--log-level", "warning", "--no-access-log"],
            cwd=self.workdir,
            env=env,
        )
        wait_http(f"{self.url}/healthz", self.process, 60, "the registry API")
        return self

    def client(self, **kwargs) -> RegistryClient:
        return RegistryClient(self.url, self.api_key, **kwargs)


@dataclass
class Seeded:
    base_model_id: str
    users: list[str]
    adapters: dict[str, str]  # user -> adapter id
    config: VeraConfig


class Seeder:
    """Registers the base model and projection; writes adapter versions as jobs do."""

    def __init__(self, registry: Registry, model_dir: Path, r: int) -> None:
        from registry.vera.describe import describe_base_model, describe_projection

        self.registry = registry
        self.rc = registry.client()
        description = describe_base_model(model_dir)
        self.base = self.rc.upload_base_model(model_dir, description)
        body = describe_projection(description["layers"], TARGETS, SEED, r)
        self.projection = self.rc.register_projection(self.base["id"], body)
        self.config = VeraConfig(
            r=r, target_modules=TARGETS, projection_prng_key=SEED, task=TASK_CAUSAL_LM
        )
        self.shapes = self._shapes(model_dir)
        self.factory = make_sessionmaker(make_engine(registry.database_url))
        self.store = LocalBlobStore(registry.workdir / "blobs", 1 << 30)
        self.adapters: dict[str, str] = {}

    def _shapes(self, model_dir: Path) -> dict[str, tuple[int, ...]]:
        from transformers import LlamaForCausalLM

        from registry.vera.inject import adapter_state_dict, inject_vera

        model = LlamaForCausalLM.from_pretrained(model_dir)
        inject_vera(model, self.config)
        return {k: tuple(v.shape) for k, v in adapter_state_dict(model).items()}

    def vectors(self, seed: int, scale: float) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        return {k: torch.randn(s, generator=generator) * scale for k, s in self.shapes.items()}

    def add_version(self, user: str, vectors: dict[str, torch.Tensor]) -> int:
        """A new version of the user's `default` adapter (not published)."""
        from registry.adapters import service
        from registry.vera.peft_io import adapter_blob

        blob = adapter_blob(
            vectors,
            base_model_hash=self.base["content_hash"],
            projection_fingerprint=self.projection["fingerprint"],
            identity={"user_id": user},
            config=self.config,
        )
        with session_scope(self.factory) as session:
            adapter = service.get_or_create_adapter(
                session,
                self.registry.tenant_id,
                user_id=user,
                name="default",
                base_model_id=self.base["id"],
                projection_id=self.projection["id"],
                target_modules=TARGETS,
                task=TASK_CAUSAL_LM,
            )
            info = self.store.put(blob)
            version = service.create_version(
                session, adapter, blob_sha256=info.sha256, size_bytes=info.size
            )
            self.adapters[user] = adapter.id
            return version.number

    def seed(self, users: list[str], scale: float) -> Seeded:
        """Version 1 of every user, published to `live` over HTTP."""
        for index, user in enumerate(users):
            number = self.add_version(user, self.vectors(1000 + index, scale))
            self.rc.publish(self.adapters[user], "live", number)
        return Seeded(self.base["id"], users, self.adapters, self.config)


def serve_model_argv(
    registry: Registry, base_model_id: str, model_dir: Path, port: int, device: str, extra: list
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "registry.cli",
        "serve-model",
        "--base-model",
        base_model_id,
        "--registry",
        registry.url,
        "--model-path",
        str(model_dir),
        "--port",
        str(port),
        "--device",
        device,
        "--cache-dir",
        str(registry.workdir / "serve-cache"),
        *extra,
    ]


def child_env(threads: int, api_key: str) -> dict[str, str]:
    """Servers see no VERA_* settings of ours but the key, and `threads` torch threads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VERA_")}
    env.update(
        PYTHONPATH=str(ROOT),
        VERA_API_KEY=api_key,
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        TOKENIZERS_PARALLELISM="false",
    )
    return env
