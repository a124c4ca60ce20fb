"""Many users in one batch: each row equals the single-adapter output for its user."""

from __future__ import annotations

import pytest
import torch

from registry.vera.bank import AdapterBank
from registry.vera.config import VeraConfig
from registry.vera.inject import adapter_state_dict, inject_vera, load_adapter_state_dict

from .conftest import tiny_llama
from .test_layers import randomize_vectors

TARGETS = ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]


def user_vectors(model, seed: int) -> dict[str, torch.Tensor]:
    randomize_vectors(model, seed=seed, scale=0.5)
    return adapter_state_dict(model)


def single_user_logits(model, vectors, ids):
    load_adapter_state_dict(model, vectors)
    with torch.no_grad():
        return model(ids).logits


def test_mixed_batch_rows_match_single_adapter() -> None:
    model = tiny_llama()
    inject_vera(model, VeraConfig(r=16, target_modules=TARGETS))
    users = {name: user_vectors(model, seed) for seed, name in enumerate("abcde")}
    bank = AdapterBank(model, capacity=2)  # forces growth
    for name, vectors in users.items():
        bank.put(name, vectors)
    assert len(bank) == 5
    rows = ["c", "a", "e", "a", "b", "d"]
    ids = torch.randint(0, 96, (len(rows), 8))
    with torch.no_grad(), bank.users(rows):
        mixed = model(ids).logits
    for i, name in enumerate(rows):
        expected = single_user_logits(model, users[name], ids[i : i + 1])
        torch.testing.assert_close(mixed[i : i + 1], expected, rtol=1e-5, atol=1e-5)


def test_hot_swap_and_drop_leave_base_and_others_alone() -> None:
    model = tiny_llama()
    inject_vera(model, VeraConfig(r=8, target_modules=["q_proj", "v_proj"]))
    base_weights = {k: v.clone() for k, v in model.state_dict().items() if "base_layer" in k}
    first, second, third = (user_vectors(model, seed) for seed in (1, 2, 3))
    bank = AdapterBank(model)
    bank.put("alice", first)
    bank.put("bob", second)
    ids = torch.randint(0, 96, (2, 5))
    with torch.no_grad(), bank.users(["alice", "bob"]):
        before = model(ids).logits
    slot = bank.slots["alice"]
    assert bank.put("alice", third) == slot  # replaced in place
    with torch.no_grad(), bank.users(["alice", "bob"]):
        after = model(ids).logits
    torch.testing.assert_close(after[1], before[1])
    torch.testing.assert_close(after[0:1], single_user_logits(model, third, ids[0:1]))
    bob_slot = bank.slots["bob"]
    bank.drop("bob")
    assert "bob" not in bank
    with pytest.raises(KeyError, match="bob"), bank.users(["bob"]):
        pass
    assert bank.put("carol", second) == bob_slot  # the freed slot is reused
    for key, value in model.state_dict().items():
        if "base_layer" in key:
            assert torch.equal(value, base_weights[key])


def test_bank_outside_context_uses_single_adapter_and_checks_batch() -> None:
    model = tiny_llama()
    inject_vera(model, VeraConfig(r=8, target_modules=["q_proj"]))
    bank = AdapterBank(model)
    bank.put("alice", user_vectors(model, 1))
    with pytest.raises(ValueError, match="2 entries but the batch has 3 rows"):  # noqa: SIM117
        with torch.no_grad(), bank.users(["alice", "alice"]):
            model(torch.randint(0, 96, (3, 4)))
    with pytest.raises(ValueError, match=r"shape \(7,\)"):
        bad = adapter_state_dict(model)
        key = next(k for k in bad if k.endswith("vera_lambda_d"))
        bank.put("eve", {**bad, key: torch.zeros(7)})
