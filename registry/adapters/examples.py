"""Examples of the adapter API's answers, shown in /docs and /redoc (kept true by
tests/api/test_openapi_docs.py, which validates each against its schema)."""

from __future__ import annotations

MANIFEST = {
    "user_id": "alice",
    "adapter_id": "01JA4K7Q3V9X2B6N8M5C1D0F7H",
    "adapter_name": "default",
    "alias": "live",
    "alias_generation": 4,
    "version": 3,
    "task": "causal-lm",
    "target_modules": ["q_proj", "v_proj"],
    "blob_sha256": "d2" * 32,
    "blob_size_bytes": 98432,
    "blob_url": "/v1/adapters/01JA4K7Q3V9X2B6N8M5C1D0F7H/versions/3/blob",
    "peft_url": "/v1/adapters/01JA4K7Q3V9X2B6N8M5C1D0F7H/versions/3/peft",
    "base_model": {
        "id": "01JA3F2M8Q7T6R5P4N3K2J1H0G",
        "name": "llama-3.2-1b",
        "content_hash": "sha256:" + "7a" * 32,
        "weights_hash": "sha256:" + "ab" * 32,
        "architecture": "LlamaForCausalLM",
    },
    "projection": {
        "id": "01JA3F4B6C8D0E2F4G6H8J0K2M",
        "seed": 42,
        "r": 256,
        "max_d_in": 2048,
        "max_d_out": 2048,
        "generator": "kaiming_uniform/torch.Generator",
        "fingerprint": "sha256:" + "5e" * 32,
    },
}
ADAPTER = {
    "id": "01JA4K7Q3V9X2B6N8M5C1D0F7H",
    "user_id": "alice",
    "name": "default",
    "base_model_id": "01JA3F2M8Q7T6R5P4N3K2J1H0G",
    "projection_id": "01JA3F4B6C8D0E2F4G6H8J0K2M",
    "target_modules": ["q_proj", "v_proj"],
    "task": "causal-lm",
    "description": "Alice's support-chat style",
    "tags": ["support"],
    "created_at": "2026-11-30T09:15:02.481Z",
    "updated_at": "2026-11-30T09:21:47.113Z",
}
VERSION = {
    "adapter_id": "01JA4K7Q3V9X2B6N8M5C1D0F7H",
    "number": 3,
    "blob_sha256": "d2" * 32,
    "size_bytes": 98432,
    "metrics": {"eval_loss": 0.41, "train_loss": 0.38},
    "job_id": "01JA4K5T8W2Y6Z0A3B5C7D9E1F",
    "parent_version_id": None,
    "description": None,
    "tags": ["nightly"],
    "created_at": "2026-11-30T09:21:47.113Z",
}
USER = {
    "user_id": "alice",
    "adapters": [
        {
            "id": "01JA4K7Q3V9X2B6N8M5C1D0F7H",
            "name": "default",
            "base_model_id": "01JA3F2M8Q7T6R5P4N3K2J1H0G",
            "task": "causal-lm",
            "description": None,
            "tags": ["support"],
            "live_version": 3,
            "updated_at": "2026-11-30T09:21:47.113Z",
        }
    ],
}
ALIAS = {
    "adapter_id": "01JA4K7Q3V9X2B6N8M5C1D0F7H",
    "alias": "live",
    "version": 3,
    "generation": 4,
    "manifest": MANIFEST,
}
ALIAS_SUMMARY = {
    "alias": "live",
    "version": 3,
    "generation": 4,
    "updated_at": "2026-11-30T09:21:47.113Z",
}
ALIAS_EVENT = {
    "seq": 1812,
    "adapter_id": "01JA4K7Q3V9X2B6N8M5C1D0F7H",
    "user_id": "alice",
    "adapter_name": "default",
    "alias": "live",
    "kind": "set",
    "from_version": 2,
    "to_version": 3,
    "generation": 4,
    "adapter_ids": None,
    "created_at": "2026-11-30T09:21:47.113Z",
    "actor_key_id": "01J9ZZ0K3Y5W7V9T1R3P5N7M9K",
    "reason": "eval loss 0.41 beats v2",
}
FEED = {"events": [ALIAS_EVENT], "last_seq": 1812}
