"""From a request body to batcher rows: which user, which tokens, within which limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from registry import names
from registry.errors import BadRequest, Invalid, NotFound, TooLarge
from registry.serving.batcher import CLASSIFY, GENERATE, Row
from registry.serving.model import LoadedModel
from registry.serving.openai_schemas import ChatIn, ClassifyIn, CompletionIn, Message, SamplingIn


@dataclass(frozen=True)
class Limits:
    max_new_tokens: int = 512  # a request's max_tokens cap
    max_prompt_tokens: int = 4096  # a prompt's length cap (the model's context may be less)


def pick_user(loaded: LoadedModel, model: str, user: str | None) -> str | None:
    """`model: "<base>:<user>"` or `user` selects the user; neither: the base model."""
    for name in loaded.names:
        if model == name:
            selected = None
            break
        if model.startswith(name + ":"):
            selected = model[len(name) + 1 :]
            break
    else:
        served = loaded.base["name"]
        raise NotFound(
            f"model {model!r} is not served here: use {served!r} (the base model) or "
            f"'{served}:<user_id>'",
            code="model_not_found",
        )
    if selected and user and selected != user:
        raise Invalid(
            f"model names user {selected!r} and user says {user!r}: give one",
            details=[{"field": "user", "message": "differs from the user in model"}],
        )
    chosen = selected or user or None
    if chosen is not None:
        names.require(names.UserId, chosen, "user")
    return chosen


def _check_lengths(loaded: LoadedModel, limits: Limits, prompt: list[int], new: int) -> None:
    if new > limits.max_new_tokens:
        message = f"max_tokens is {new}; this server generates {limits.max_new_tokens} at most"
        raise Invalid(message, details=[{"field": "max_tokens", "message": message}])
    if not prompt:
        raise Invalid("the prompt is empty", details=[{"field": "prompt", "message": "empty"}])
    if len(prompt) > limits.max_prompt_tokens:
        raise TooLarge(
            f"the prompt has {len(prompt)} tokens; this server takes "
            f"{limits.max_prompt_tokens} at most",
            details={"prompt_tokens": len(prompt), "limit": limits.max_prompt_tokens},
        )
    context = loaded.max_positions
    if context is not None and len(prompt) + new > context:
        message = (
            f"the prompt's {len(prompt)} tokens plus max_tokens {new} exceed the model's "
            f"context of {context} tokens: shorten the prompt or lower max_tokens"
        )
        raise Invalid(message, details=[{"field": "max_tokens", "message": message}])


def _token_ids(loaded: LoadedModel, prompt: str | list[int]) -> list[int]:
    if isinstance(prompt, str):
        return list(loaded.tokenizer(prompt)["input_ids"])
    vocab = loaded.runtime.model.config.vocab_size
    bad = [t for t in prompt if not 0 <= t < vocab]
    if bad:
        message = f"token ids must lie in [0, {vocab}): got {bad[:5]}"
        raise Invalid(message, details=[{"field": "prompt", "message": message}])
    return prompt


def _sampling(body: SamplingIn, new_tokens: int) -> dict[str, Any]:
    return {
        "max_new_tokens": new_tokens,
        "do_sample": body.temperature > 0,
        "temperature": body.temperature if body.temperature > 0 else 1.0,
        "top_p": body.top_p,
        "top_k": body.top_k,
        "seed": body.seed,
        "stop": body.stops(),
    }


def _require_task(loaded: LoadedModel, kind: str) -> None:
    from registry.vera.config import TASK_SEQUENCE_CLASSIFICATION

    classifier = loaded.manifest.task == TASK_SEQUENCE_CLASSIFICATION
    if classifier and kind == GENERATE:
        raise BadRequest("this server serves a classifier: POST /v1/classify", code="wrong_task")
    if not classifier and kind == CLASSIFY:
        raise BadRequest(
            f"this server serves a {loaded.manifest.task} model: use /v1/completions or "
            "/v1/chat/completions",
            code="wrong_task",
        )


def completion_rows(loaded: LoadedModel, limits: Limits, body: CompletionIn, user) -> list[Row]:
    _require_task(loaded, GENERATE)
    new_tokens = body.max_tokens or 16
    rows = []
    for prompt in body.prompts():
        ids = _token_ids(loaded, prompt)
        _check_lengths(loaded, limits, ids, new_tokens)
        params = _sampling(body, new_tokens)
        rows.append(Row(GENERATE, user, ids, len(ids) + new_tokens, params))
    return rows


def chat_token_ids(tokenizer: Any, messages: list[Message]) -> list[int]:
    """The tokenizer's chat template when it has one (with the assistant's turn opened),
    else each message as a "role: content" line, then "assistant:"."""
    try:
        turns = [{"role": m.role, "content": m.text()} for m in messages]
    except ValueError as exc:
        raise Invalid(str(exc), details=[{"field": "messages", "message": str(exc)}]) from exc
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        return list(ids)
    text = "\n".join(f"{t['role']}: {t['content']}" for t in turns) + "\nassistant:"
    return list(tokenizer(text)["input_ids"])


def chat_row(loaded: LoadedModel, limits: Limits, body: ChatIn, user) -> Row:
    _require_task(loaded, GENERATE)
    new_tokens = body.new_tokens(16)
    ids = chat_token_ids(loaded.tokenizer, body.messages)
    _check_lengths(loaded, limits, ids, new_tokens)
    return Row(GENERATE, user, ids, len(ids) + new_tokens, _sampling(body, new_tokens))


def classify_rows(loaded: LoadedModel, limits: Limits, body: ClassifyIn, user) -> list[Row]:
    _require_task(loaded, CLASSIFY)
    if user is None:
        # The base model has no trained head: its scores would be noise.
        message = "classification needs a user: model '<base>:<user_id>' or the user field"
        raise Invalid(message, details=[{"field": "user", "message": "required"}])
    rows = []
    for text in body.texts():
        ids = loaded.tokenizer(text)["input_ids"]
        _check_lengths(loaded, limits, ids, 0)
        rows.append(Row(CLASSIFY, user, text, len(ids)))
    return rows
