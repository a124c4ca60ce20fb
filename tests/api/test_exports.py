"""GET .../peft?format=vera|lora|merged: what other servers load gives our logits.

Tiny random BERT (classification, a head), Llama (causal LM) and GPT-2 (Conv1D) are saved as
base model folders, uploaded and registered through the API with real projections; their
VeRA adapters are published as versions; PEFT and transformers load the exports."""

from __future__ import annotations

import io
import json
import warnings
import zipfile

import pytest

from registry.db import session_scope
from tests.api import helpers

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

R = 8
LABELS = ["neg", "pos"]


@pytest.fixture
def db_url(pg_url):
    """Torch-heavy: real PostgreSQL only (the routes' SQL is covered on both elsewhere)."""
    return pg_url


def _bert(folder):
    from transformers import BertForSequenceClassification

    from tests.vera.test_packed import tiny_bert

    tiny_bert().bert.save_pretrained(folder)  # a backbone: the head is the adapter's
    torch.manual_seed(1)
    task_model = BertForSequenceClassification.from_pretrained(folder, num_labels=2)
    return task_model, "sequence-classification", ["query", "value"]


def _llama(folder):
    from transformers import LlamaForCausalLM

    from tests.vera.conftest import tiny_llama

    tiny_llama(seed=3).save_pretrained(folder)
    return LlamaForCausalLM.from_pretrained(folder), "causal-lm", ["q_proj", "v_proj", "down_proj"]


def _gpt2(folder):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=50, n_positions=40)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return GPT2LMHeadModel.from_pretrained(folder), "causal-lm", ["c_attn", "c_proj"]


def _task_class(task: str):
    from registry.vera.describe import task_model_class

    return task_model_class(task)


class Published:
    """A base model registered from `folder`, and one adapter version of random vectors."""

    def __init__(self, app, client, tenant, tmp_path, make) -> None:
        from registry.adapters import service as adapters
        from registry.vera.config import VeraConfig
        from registry.vera.describe import describe_base_model, describe_projection, layers_for
        from registry.vera.inject import inject_vera
        from registry.vera.peft_io import adapter_blob
        from tests.vera.test_layers import randomize_vectors

        self.folder = tmp_path / "base"
        model, self.task, targets = make(self.folder)
        body = describe_base_model(self.folder)
        for file in body["files"]:
            helpers.upload_model_file(
                client, tenant.auth(), (self.folder / file["path"]).read_bytes()
            )
        response = client.post("/v1/base-models", json=body, headers=tenant.auth())
        assert response.status_code == 201, response.text
        base = response.json()
        layers = layers_for(body, self.task)
        projection = describe_projection(layers, targets, 11, R, self.task)
        url = f"/v1/base-models/{base['id']}/projections"
        proj = client.post(url, json=projection, headers=tenant.auth()).json()
        config = VeraConfig(r=R, target_modules=targets, task=self.task, projection_prng_key=11)
        inject_vera(model, config)
        randomize_vectors(model, scale=0.5)
        self.model = model.eval()
        labels = LABELS if self.task == "sequence-classification" else None
        blob = adapter_blob(
            model,
            base_model_hash=base["content_hash"],
            projection_fingerprint=proj["fingerprint"],
            identity={"user_id": "alice", "labels": json.dumps(labels)},
        )
        with session_scope(app.state.session_factory) as session:
            adapter = adapters.get_or_create_adapter(
                session,
                tenant.id,
                user_id="alice",
                name="default",
                base_model_id=base["id"],
                projection_id=proj["id"],
                target_modules=targets,
                task=self.task,
            )
            info = app.state.store.put(blob)
            adapters.create_version(session, adapter, blob_sha256=info.sha256, size_bytes=info.size)
            self.adapter_id = adapter.id
        vocab = 50 if make is _gpt2 else 64 if make is _bert else 96
        self.ids = torch.randint(0, vocab, (2, 9), generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            self.ours = self.model(input_ids=self.ids).logits

    def export(self, client, tenant, target, **params):
        url = f"/v1/adapters/{self.adapter_id}/versions/1/peft"
        response = client.get(url, params=params, headers=tenant.auth("read"))
        assert response.status_code == 200, response.text
        zipfile.ZipFile(io.BytesIO(response.content)).extractall(target)
        return response

    def peft_logits(self, adapter_dir):
        from peft import PeftModel

        base = _task_class(self.task).from_pretrained(self.folder, **self._labels())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = PeftModel.from_pretrained(base, adapter_dir).eval()
        with torch.no_grad():
            return loaded(input_ids=self.ids).logits

    def _labels(self) -> dict:
        return {"num_labels": len(LABELS)} if self.task == "sequence-classification" else {}


@pytest.mark.parametrize("make", [_bert, _llama, _gpt2], ids=["bert", "llama", "gpt2"])
def test_exact_lora_and_merged_exports_give_our_logits(app, client, tenant, tmp_path, make):
    published = Published(app, client, tenant, tmp_path, make)
    lora_dir = tmp_path / "lora"
    response = published.export(
        client, tenant, lora_dir, format="lora", base_model_name_or_path=str(published.folder)
    )
    assert response.headers["x-vera-lora-max-relative-error"] == "0"
    config = json.loads((lora_dir / "adapter_config.json").read_text())
    assert (config["peft_type"], config["r"], config["lora_alpha"]) == ("LORA", R, R)
    assert config["fan_in_fan_out"] is (make is _gpt2)
    torch.testing.assert_close(published.peft_logits(lora_dir), published.ours, rtol=0, atol=1e-5)

    merged_dir = tmp_path / "merged"
    published.export(client, tenant, merged_dir, format="merged")
    merged = _task_class(published.task).from_pretrained(merged_dir).eval()
    with torch.no_grad():
        theirs = merged(input_ids=published.ids).logits
    torch.testing.assert_close(theirs, published.ours, rtol=0, atol=1e-5)
    if published.task == "sequence-classification":
        assert merged.config.id2label == dict(enumerate(LABELS))


def test_truncated_lora_reports_each_layers_true_error(app, client, tenant, tmp_path):
    from safetensors.torch import load_file

    published = Published(app, client, tenant, tmp_path, _llama)
    published.export(client, tenant, tmp_path / "exact", format="lora")
    response = published.export(client, tenant, tmp_path / "cut", format="lora", rank=3)
    exact = load_file(tmp_path / "exact" / "adapter_model.safetensors")
    cut = load_file(tmp_path / "cut" / "adapter_model.safetensors")
    config = json.loads((tmp_path / "cut" / "adapter_config.json").read_text())
    # Stored in the registry, no path asked for: the base model's registered name.
    assert config["base_model_name_or_path"] == "base"
    reported = config["vera_export"]["relative_errors"]
    assert config["r"] == config["lora_alpha"] == 3 and len(reported) == 2 * 3
    for path, error in reported.items():
        prefix = f"base_model.model.{path}"
        full = exact[f"{prefix}.lora_B.weight"].double() @ exact[f"{prefix}.lora_A.weight"].double()
        kept = cut[f"{prefix}.lora_B.weight"].double() @ cut[f"{prefix}.lora_A.weight"].double()
        assert cut[f"{prefix}.lora_A.weight"].shape[0] == 3
        measured = float(torch.linalg.norm(full - kept) / torch.linalg.norm(full))
        assert error == pytest.approx(measured, rel=1e-4, abs=1e-6)
        assert 0 < error < 1
    assert float(response.headers["x-vera-lora-max-relative-error"]) == pytest.approx(
        max(reported.values()), rel=1e-5
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        published.peft_logits(tmp_path / "cut")  # PEFT loads it, its extra keys ignored
    _bad_format_rank_and_size_are_refused_in_our_envelope(app, client, tenant, published)


def _bad_format_rank_and_size_are_refused_in_our_envelope(app, client, tenant, published):
    url = f"/v1/adapters/{published.adapter_id}/versions/1/peft"

    def error(status: int, **params) -> dict:
        response = client.get(url, params=params, headers=tenant.auth("read"))
        assert response.status_code == status, response.text
        return response.json()["error"]

    error(422, format="onnx")
    error(422, format="lora", rank=0)
    assert f"r={R}" in error(422, format="lora", rank=R + 1)["message"]
    error(422, format="vera", rank=2)
    error(422, base_model_name_or_path="x" * 1001)
    error(422, base_model_name_or_path="a\nb")
    app.state.settings = app.state.settings.model_copy(update={"max_merged_export_bytes": 1000})
    big = error(413, format="merged")
    assert "VERA_MAX_MERGED_EXPORT_BYTES" in big["message"]


def test_vera_export_names_a_base_that_exists_and_loads_offline(
    app, client, tenant, tmp_path, monkeypatch
):
    from peft import AutoPeftModelForSequenceClassification

    from registry.client.api import RegistryClient

    published = Published(app, client, tenant, tmp_path, _bert)
    rc = RegistryClient(api_key=tenant.keys["read"], http=client, cache_dir=tmp_path / "cache")
    out = rc.export_peft(published.adapter_id, 1, tmp_path / "vera")
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"}
    assert config["label2id"] == {"neg": 0, "pos": 1}
    base_dir = tmp_path / "cache" / "base-models"
    assert config["base_model_name_or_path"].startswith(str(base_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = AutoPeftModelForSequenceClassification.from_pretrained(out).eval()
    with torch.no_grad():
        theirs = loaded(input_ids=published.ids).logits
    torch.testing.assert_close(theirs, published.ours, rtol=0, atol=1e-5)
    # The caller's own path is written as given (and nothing is downloaded for it).
    given = rc.export_peft(
        published.adapter_id, 1, tmp_path / "given", base_model_name_or_path="org/bert"
    )
    assert (
        json.loads((given / "adapter_config.json").read_text())["base_model_name_or_path"]
        == "org/bert"
    )
