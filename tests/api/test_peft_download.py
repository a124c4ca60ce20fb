"""The PEFT zip served by the API loads with PeftModel.from_pretrained and gives our logits."""

import io
import warnings
import zipfile

import pytest

from tests.api import helpers

torch = pytest.importorskip("torch")


def test_peft_zip_loads_with_peft_and_matches_our_logits(client, app, tenant, tmp_path):
    from peft import PeftModel

    from registry.vera.config import VeraConfig
    from registry.vera.inject import inject_vera
    from registry.vera.peft_io import adapter_blob
    from tests.vera.conftest import tiny_llama
    from tests.vera.test_layers import randomize_vectors

    model = tiny_llama(seed=3)
    config = VeraConfig(
        r=8, target_modules=["q_proj", "v_proj"], task="causal-lm", projection_prng_key=11
    )
    inject_vera(model, config)
    randomize_vectors(model, scale=0.5)
    ids = torch.randint(0, 96, (2, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model(input_ids=ids).logits
    blob = adapter_blob(
        model,
        base_model_hash="sha256:" + "0" * 64,
        projection_fingerprint=model.vera_projection.fingerprint,
        identity={"user_id": "alice"},
    )
    adapter_id = helpers.adapter_with_versions(app, tenant.id, [blob])
    response = client.get(f"/v1/adapters/{adapter_id}/versions/1/peft", headers=tenant.auth())
    assert response.status_code == 200
    zipfile.ZipFile(io.BytesIO(response.content)).extractall(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peft_model = PeftModel.from_pretrained(tiny_llama(seed=3), tmp_path).eval()
    with torch.no_grad():
        theirs = peft_model(input_ids=ids).logits
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-5)
