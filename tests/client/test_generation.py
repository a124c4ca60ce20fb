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


def test_a_seeded_row_samples_the_same_whatever_its_batch_mates(gpt2):
    runtime = gpt2.runtime
    settings = dict(do_sample=True, temperature=0.9, top_k=40, top_p=0.95, max_new_tokens=8)
    prompt = [5, 6, 7]
    batch = runtime.generate(
        ["alice", "bob", "alice"], [prompt, [9, 8], prompt], seed=[11, 12, 13], **settings
    )
    alone = runtime.generate(["alice"], [prompt], seed=11, **settings)[0]
    mates = runtime.generate(
        ["bob", None, "alice"], [[1], [2, 3], prompt], seed=[1, 2, 11], **settings
    )
    assert batch[0].token_ids == alone.token_ids == mates[2].token_ids
    assert batch[0].token_ids != batch[2].token_ids  # another seed, other draws
    # top_k=1 leaves one token: sampling is greedy then.
    greedy = runtime.generate(["alice"], [prompt], max_new_tokens=8)[0]
    one = runtime.generate(["alice"], [prompt], do_sample=True, top_k=1, max_new_tokens=8)[0]
    assert one.token_ids == greedy.token_ids


def test_stop_sequences_max_new_tokens_eos_and_streamed_deltas(llama):
    runtime = llama.runtime
    prompt = "w5 w6 w7"
    full = runtime.generate(["alice"], [prompt], max_new_tokens=8)[0]
    assert (full.finish_reason, full.completion_tokens, full.prompt_tokens) == ("length", 8, 3)
    # Decoded in context: a continuation's text, the space before each word included.
    words = [runtime.tokenizer.decode([t]) for t in full.token_ids]
    assert full.text == "".join(f" {word}" for word in words)
    stop = f"{words[2]} {words[3]}"  # spans two tokens
    streamed: dict[int, list[str]] = {0: [], 1: []}
    out = runtime.generate(
        ["alice", "bob"],
        [prompt, prompt],
        max_new_tokens=[8, 3],
        stop=[[stop, "never"], []],
        on_token=lambda row, text: streamed[row].append(text),
    )
    cut = full.text.index(stop)
    assert out[0].text == full.text[:cut] and out[0].finish_reason == "stop"
    # Generation ends on the token completing the stop: its tokens count, their text not.
    ends = min(k for k in range(9) if stop in "".join(f" {word}" for word in words[:k]))
    assert out[0].token_ids == full.token_ids[:ends] and out[0].completion_tokens == ends
    assert (out[1].finish_reason, out[1].completion_tokens) == ("length", 3)
    for row in (0, 1):
        assert "".join(streamed[row]) == out[row].text
    assert all(stop not in piece for piece in streamed[0])
    # eos: the model's end-of-sequence token ends a row as "stop", the token counted.
    config = runtime.model.generation_config
    saved, config.eos_token_id = config.eos_token_id, full.token_ids[1]
    try:
        ended = runtime.generate(["alice"], [prompt], max_new_tokens=8)[0]
    finally:
        config.eos_token_id = saved
    assert ended.token_ids == full.token_ids[:2] and ended.finish_reason == "stop"
    nothing = runtime.generate([None], [prompt], max_new_tokens=0)[0]
    assert (nothing.text, nothing.token_ids, nothing.finish_reason) == ("", [], "length")


def test_streamed_text_holds_back_what_may_start_a_stop_sequence(llama):
    from registry.client.textstream import RowText

    tokenizer = llama.runtime.tokenizer
    text = RowText(tokenizer, [5], ["w9 w10"])
    pieces = []
    for token in (3, 9, 4, 9, 10, 11):
        text.add(token)
        pieces.append(text.delta())
    assert pieces == [" w3", " ", "w9 w4", " ", "", ""]  # "w9" waits for what follows
    assert text.stopped and text.text == " w3 w9 w4 "


def test_bad_requests_are_refused_with_a_clear_error(llama, gpt2):
    from registry.client.runtime import RuntimeMismatch

    runtime = llama.runtime
    with pytest.raises(ValueError, match="row 1: top_p"):
        runtime.generate([None, None], ["w3", "w4"], top_p=[1.0, 0.0])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        runtime.generate([None], [[5, 96]])
    with pytest.raises(ValueError, match="context of 64"):
        runtime.generate([None], [[5] * 60], max_new_tokens=5)
    with pytest.raises(ValueError, match="empty"):
        runtime.generate([None], [[]])
    with pytest.raises(ValueError, match="one user per row"):
        runtime.generate([None], ["w3", "w4"])
    with pytest.raises(KeyError, match="carol"):
        runtime.generate(["carol"], ["w3"])
    with pytest.raises(ValueError, match="need a tokenizer"):
        gpt2.runtime.generate([None], ["some text"])
    with pytest.raises(RuntimeMismatch, match="classify needs a sequence-classification"):
        runtime.classify(["alice"], ["w3 w4"])


@pytest.fixture
def db_url(pg_url):
    """One backend: the registry only hands out the adapters; classify is under test."""
    return pg_url


def test_classify_names_labels_per_user_and_refuses_rows_without_one(app, registry):
    from registry.client.runtime import RuntimeMismatch, ServingRuntime
    from tests.client.test_runtime import (
        TEXTS,
        Registry,
        fresh_model,
        minilm,
        random_vectors,
        reference_logits,
        tokens,
    )

    reg = Registry(app, registry)
    reg.add_version("alice", random_vectors(1), labels=["no", "yes"])
    reg.add_version("bob", random_vectors(2))
    runtime = ServingRuntime.for_manifest(
        registry, fresh_model(), registry.resolve("alice"), tokenizer=minilm()[1]
    )
    runtime.load_user("alice")
    runtime.load_user("bob")
    users = ["alice", "bob", "bob", "alice"]
    out = runtime.classify(users, TEXTS)
    expected = {
        u: reference_logits(random_vectors(s), tokens(TEXTS)) for u, s in [("alice", 1), ("bob", 2)]
    }
    for row, user in enumerate(users):
        probs = expected[user][row].softmax(-1)
        names = ["no", "yes"] if user == "alice" else ["0", "1"]
        assert out[row].index == int(probs.argmax())
        assert out[row].label == names[out[row].index]
        assert list(out[row].scores) == names
        assert list(out[row].scores.values()) == pytest.approx(probs.tolist(), abs=1e-5)
    with pytest.raises(RuntimeMismatch, match="a user per row"):
        runtime.classify(["alice", None], TEXTS[:2])
    with pytest.raises(RuntimeMismatch, match="generate needs a causal-lm runtime"):
        runtime.generate(["alice"], ["the sky"])
