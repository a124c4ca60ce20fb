"""The worker reads a dataset's rows by the same line rule its upload was validated with."""

from __future__ import annotations

from registry.config import Settings
from registry.jobs.datasets import validate_jsonl
from registry.jobs.models import Dataset
from registry.storage import open_store
from workers import job_io


def test_worker_rows_match_the_validated_rows(tmp_path):
    settings = Settings(_env_file=None, storage_url=f"file://{tmp_path / 'blobs'}")
    store = open_store(settings)
    data = '{"text": "a\u2028b", "label": "x"}\r\n\n{"text": "c\u0085d", "label": "y"}\n'.encode()
    stats = validate_jsonl(data, "sequence-classification", 10)
    dataset = Dataset(
        task="sequence-classification", labels=stats.labels, blob_sha256=store.put(data).sha256
    )
    spec = job_io.JobSpec(None, dataset, None, None, None, None)
    rows = job_io.examples(store, spec, settings)
    assert rows == [{"text": "a\u2028b", "label": 0}, {"text": "c\u0085d", "label": 1}]
    assert len(rows) == stats.rows
