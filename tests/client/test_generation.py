"""ServingRuntime.generate / classify: a user per row, each row as if decoded alone.

Greedy rows are checked against a plain decode without any cache on a model holding that
user's vectors alone (the single-adapter path), so a wrong bank row, padding, position id
or KV cache entry changes tokens and fails the test.
"""

from __future__ import annotations

import pytest

from registry.vera.config import TASK_CAUSAL_LM, VeraConfig
from tests.cores import threads_per_worker

torch = pytest.importorskip("torch")
torch.set_num_threads(threads_per_worker())

SEED, R = 7, 8


def random_user(runtime, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(v.shape, generator=generator) for k, v in runtime._zero_vectors().items()
    }


class Kind:
    """A tiny causal LM, how to build it again, and its runtime with two users."""

    def __init__(self, name, build, targets, tokenizer=None, path=None):
        from registry.client.runtime import ServingRuntime

        self.name, self.build, self.targets = name, build, targets
        model = path if path is not None else build()
        self.runtime = ServingRuntime(
            None,
            model,
            seed=SEED,
            r=R,
            target_modules=targets,
            task=TASK_CAUSAL_LM,
            tokenizer=tokenizer,
        )
        self.models: dict = {}  # reference models, built on first use
        self.vectors = {"alice": random_user(self.runtime, 1), "bob": random_user(self.runtime, 2)}
        for user, vectors in self.vectors.items():
            self.runtime.put_vectors(user, vectors)

    def reference(self, user, prompt: list[int], max_new_tokens: int) -> list[int]:
        """Greedy without a cache on a fresh model: the plain base (None) or the user's
        vectors loaded alone."""
        from registry.client.sampling import eos_token_ids
        from registry.vera.inject import inject_vera, load_adapter_state_dict

        model = self.models.get(user)
        if model is None:
            model = self.models[user] = self.build()
            if user is not None:
                config = VeraConfig(
                    r=R, target_modules=self.targets, projection_prng_key=SEED, task=TASK_CAUSAL_LM
                )
                inject_vera(model, config)
                load_adapter_state_dict(model, self.vectors[user])
        eos = eos_token_ids(model, self.runtime.tokenizer)
        ids, out = list(prompt), []
        with torch.no_grad():
            while len(out) < max_new_tokens and not (out and out[-1] in eos):
                token = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
                ids.append(token)
                out.append(token)
        return out


def build_llama():
    from tests.vera.conftest import tiny_llama

    return tiny_llama()  # the weights tiny_llama_with_tokenizer saved


def build_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=96, n_positions=40)
    return GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    from tests.workers.test_job_fit import tiny_llama_with_tokenizer

    folder = tiny_llama_with_tokenizer(tmp_path_factory.mktemp("llama"))
    # From the folder: the runtime loads the model and its tokenizer.
    return Kind("llama", build_llama, ["q_proj", "v_proj", "lm_head"], path=folder)


@pytest.fixture(scope="module")
def gpt2():
    return Kind("gpt2", build_gpt2, ["c_attn"])


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_greedy_rows_equal_their_user_alone_and_an_uncached_decode(kind, request):
    kind = request.getfixturevalue(kind)
    runtime = kind.runtime
    users = ["alice", None, "bob", "alice", "bob"]
    prompts = [[5, 6, 7], [9, 3, 4, 8, 10], [11], [20, 21, 22, 23, 24, 25, 26], [5, 6, 7]]
    news = [6, 5, 6, 4, 6]
    out = runtime.generate(users, prompts, max_new_tokens=news)
    for row, (user, prompt, new) in enumerate(zip(users, prompts, news, strict=True)):
        want = kind.reference(user, prompt, new)
        assert out[row].token_ids == want, (kind.name, row, user)
        alone = runtime.generate([user], [prompt], max_new_tokens=new)[0]
        assert alone.token_ids == want
        assert out[row].prompt_tokens == len(prompt)
        assert out[row].completion_tokens == len(want)
    # Users really differ from each other and from the base on the same prompt.
    assert out[0].token_ids != out[4].token_ids
    assert runtime.generate([None], [prompts[0]], max_new_tokens=6)[0].token_ids not in (
        out[0].token_ids,
        out[4].token_ids,
    )
