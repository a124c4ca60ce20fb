"""Request bodies of the OpenAI-compatible routes, and the answers' shapes.

Fields OpenAI has and this server does not act on (`logprobs`, `presence_penalty`, …) are
accepted and ignored when they ask for nothing (null, 0, false), refused otherwise, so a
client never silently gets less than it asked for.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Text = Annotated[str, Field(max_length=1_000_000)]
Stop = Annotated[str, Field(min_length=1, max_length=200)]


class SamplingIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(
        min_length=1,
        max_length=400,
        description="The base model's name or id, or '<name or id>:<user_id>' for a user.",
    )
    user: str | None = Field(None, max_length=200, description="The user whose adapter to use.")
    max_tokens: int | None = Field(None, ge=1, description="New tokens at most.")
    temperature: float = Field(1.0, ge=0, le=2, description="0: greedy decoding.")
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0, le=1000, description="0: no top-k cut (an extension).")
    stop: Stop | list[Stop] | None = Field(None, description="Up to 4 stop sequences.")
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    stream: bool = False
    n: int = Field(1, ge=1, le=1, description="One choice per prompt.")
    # Accepted only when they ask for nothing.
    logprobs: Any = None
    echo: bool = False
    presence_penalty: float = 0
    frequency_penalty: float = 0
    logit_bias: dict | None = None
    best_of: int | None = Field(None, ge=1, le=1)

    @model_validator(mode="after")
    def _supported(self) -> SamplingIn:
        unsupported = {
            "logprobs": self.logprobs not in (None, False, 0),
            "echo": self.echo,
            "presence_penalty": self.presence_penalty != 0,
            "frequency_penalty": self.frequency_penalty != 0,
            "logit_bias": bool(self.logit_bias),
        }
        wanted = [name for name, asked in unsupported.items() if asked]
        if wanted:
            raise ValueError(f"not supported by this server: {', '.join(wanted)}")
        if isinstance(self.stop, list) and len(self.stop) > 4:
            raise ValueError("stop: 4 sequences at most")
        return self

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class CompletionIn(SamplingIn):
    prompt: Text | Annotated[list[Text], Field(min_length=1, max_length=64)] | list[int] = Field(
        description="A prompt, a list of prompts (one choice each), or token ids."
    )
    max_tokens: int | None = Field(16, ge=1)

    def prompts(self) -> list[str | list[int]]:
        if isinstance(self.prompt, str):
            return [self.prompt]
        if self.prompt and all(isinstance(p, int) for p in self.prompt):
            return [list(self.prompt)]
        return list(self.prompt)


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: Text | list[dict[str, Any]]

    def text(self) -> str:
        """Plain text; a list of content parts may hold text parts only."""
        if isinstance(self.content, str):
            return self.content
        if any(part.get("type") != "text" for part in self.content):
            raise ValueError("only text content parts are supported")
        return "".join(str(part.get("text", "")) for part in self.content)


class ChatIn(SamplingIn):
    messages: list[Message] = Field(min_length=1, max_length=1000)
    max_completion_tokens: int | None = Field(None, ge=1)

    def new_tokens(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default


class ClassifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=400)
    user: str | None = Field(None, max_length=200)
    input: Text | Annotated[list[Text], Field(min_length=1, max_length=256)]

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def usage(results: list[Any]) -> dict[str, int]:
    prompt = sum(r.prompt_tokens for r in results)
    completion = sum(r.completion_tokens for r in results)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def completion_out(request_id: str, model: str, results: list[Any]) -> dict:
    choices = [
        {"index": i, "text": r.text, "logprobs": None, "finish_reason": r.finish_reason}
        for i, r in enumerate(results)
    ]
    return {
        "id": request_id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage(results),
    }


def chat_out(request_id: str, model: str, result: Any) -> dict:
    message = {"role": "assistant", "content": result.text}
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": result.finish_reason}],
        "usage": usage([result]),
    }


def completion_chunk(request_id: str, model: str, index: int, text: str, finish=None) -> dict:
    choice = {"index": index, "text": text, "logprobs": None, "finish_reason": finish}
    return {
        "id": request_id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
    }


def chat_chunk(request_id: str, model: str, delta: dict, finish=None) -> dict:
    return {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
