"""`vera-registry base-models register`: uploads a folder (resuming), or names an allowed
external source; a source outside the allow-list is refused."""

from __future__ import annotations

import pytest

from registry.config import Settings

pytest.importorskip("torch")


@pytest.fixture
def shared(tmp_path):
    return tmp_path / "shared"


@pytest.fixture
def settings(db_url, tmp_path, shared):
    return Settings(
        _env_file=None,
        database_url=db_url,
        storage_url=f"file://{tmp_path / 'blobs'}",
        model_sources=[str(shared)],
    )


@pytest.fixture
def tiny_bert(shared):
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=32,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=16,
    )
    path = shared / "tiny-bert"
    BertModel(config).save_pretrained(path)
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hi"]))
    return path


def test_register_uploads_the_folder_and_again_sends_nothing(cli, tiny_bert, app):
    first = cli.json("base-models", "register", str(tiny_bert), "--no-projection")
    model = first["base_model"]
    assert model["source_uri"] is None
    assert {f["path"] for f in model["files"]} == {"config.json", "model.safetensors", "vocab.txt"}
    assert all(app.state.store.exists(f["sha256"]) for f in model["files"])
    again = cli("base-models", "register", str(tiny_bert), "--no-projection")
    assert "uploading 3 files (3 already there)" in again.output  # the bar, on stderr
    assert cli.json("base-models", "list")[0]["id"] == model["id"]
    copy = tiny_bert.parent / "copy"
    done = cli.json("base-models", "download", model["id"], str(copy))
    assert done["files"] == 3
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        assert (copy / name).read_bytes() == (tiny_bert / name).read_bytes()


def test_register_from_an_allowed_source_or_not_at_all(cli, tiny_bert, app):
    result = cli.json(
        "base-models", "register", str(tiny_bert), "--no-projection", "--source", str(tiny_bert)
    )
    assert result["base_model"]["source_uri"] == str(tiny_bert.resolve())
    assert list(app.state.store.list_blobs()) == []  # nothing uploaded
    for source in ("s3://someone-elses-bucket/models", f"{tiny_bert}/../../etc"):
        refused = cli(
            "base-models",
            "register",
            str(tiny_bert),
            "--no-projection",
            "--source",
            source,
            ok=False,
        )
        assert refused.exit_code != 0 and "VERA_MODEL_SOURCES" in refused.output
