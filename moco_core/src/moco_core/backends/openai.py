"""Generation through any OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, Ollama, OpenAI).

A model's ``path`` is the name the server knows it by; ``backend_options`` say where the server
is and how to talk to it. The API key is read from an environment variable at load time and
lives only in the client, so it never reaches a run file, a log line or a cache key. Requests run
concurrently up to ``max_concurrency``; the official client retries connection errors, timeouts,
429 and 5xx answers with exponential backoff (honouring ``Retry-After``), and each request carries
the row's seed, so servers that honour seeds sample the same text a rerun would.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from moco_core.backends.hf import row_seed
from moco_core.errors import MocoError
from moco_core.types import Generation, GenerationRequest, GenerationSettings

DEFAULT_KEY_ENV = "OPENAI_API_KEY"


class OpenAIOptions(BaseModel):
    """``backend_options`` of an ``openai`` model; only ``base_url`` and ``api`` change what is generated."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(default=None, description="e.g. http://localhost:8000/v1; default $OPENAI_BASE_URL")
    api_key_env: str | None = Field(
        default=None, description=f"environment variable holding the key; default {DEFAULT_KEY_ENV} (optional)"
    )
    api_key: str | None = Field(default=None, description="refused: name an environment variable in api_key_env")
    api: Literal["chat", "completions"] = "chat"
    max_concurrency: int = Field(default=8, ge=1, description="requests in flight at once")
    max_retries: int = Field(default=5, ge=0, description="retries of a failed request (429, 5xx, timeouts)")
    timeout_s: float = Field(default=120.0, gt=0, description="per request")

    @field_validator("api_key")
    @classmethod
    def _no_literal_key(cls, value: str | None) -> None:
        raise ValueError(
            "a key in the config would be written into the run's config.yaml; put it in an environment "
            "variable and name that with api_key_env"
        )

    @field_validator("api_key_env")
    @classmethod
    def _key_is_set(cls, value: str | None) -> str | None:
        if value is not None and not os.environ.get(value):
            raise ValueError(f"environment variable {value} is not set")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _somewhere_to_send(self) -> OpenAIOptions:
        """Without a server URL requests go to api.openai.com, which refuses every request without a key."""
        if not (self.base_url or os.environ.get("OPENAI_BASE_URL")) and not (
            self.api_key_env or os.environ.get(DEFAULT_KEY_ENV)
        ):
            raise ValueError(
                f"base_url: not given and $OPENAI_BASE_URL is unset, so requests would go to api.openai.com, "
                f"which needs a key: give base_url, or set {DEFAULT_KEY_ENV} (or name a variable in api_key_env)"
            )
        return self


@dataclass
class OpenAIModel:
    """A client bound to one served model."""

    client: Any
    model: str
    options: OpenAIOptions


def _api_key(options: OpenAIOptions) -> str:
    if options.api_key_env is not None:
        key = os.environ.get(options.api_key_env)
        if not key:
            raise MocoError(f"backend_options.api_key_env: environment variable {options.api_key_env} is not set")
        return key
    return os.environ.get(DEFAULT_KEY_ENV) or "EMPTY"  # local servers accept any key


TOP_LOGPROBS = 2
"""Alternatives asked for per token: vLLM lists the sampled token among them even when it is not
the most likely, so one alternative would hide the true top token whenever a sample is not greedy."""


def _text_tokens(tokens: list[str] | None, text: str, finish_reason: str | None) -> int | None:
    """How many leading tokens made ``text`` (None: all). vLLM also scores the end token (or stop string)
    it stopped on, which the hf backend and OpenAI leave out; it is dropped when ``text`` does not end with it
    (or it renders as nothing)."""
    if finish_reason == "stop" and tokens and not (tokens[-1] and text.endswith(tokens[-1])):
        return len(tokens) - 1
    return None


def _usage(response: Any) -> tuple[int | None, int | None]:
    """The server's (completion, prompt) token counts; None where it sends no ``usage``."""
    usage = getattr(response, "usage", None)
    if usage is None:
        return None, None
    completion, prompt = getattr(usage, "completion_tokens", None), getattr(usage, "prompt_tokens", None)
    return (int(completion) if completion is not None else None, int(prompt) if prompt is not None else None)


def _chosen_and_top(entries: list[Any]) -> tuple[list[float], list[float]]:
    """Per generated token: log p(chosen) and log p(most likely), from the chat API's logprobs."""
    chosen, top = [], []
    for entry in entries:
        chosen.append(float(entry.logprob))
        alternatives = [float(t.logprob) for t in (entry.top_logprobs or [])]
        top.append(max([chosen[-1], *alternatives]))
    return chosen, top


class OpenAIBackend:
    """Text generation over HTTP: no weights here, so no per-step logits, merging or training."""

    def identity(self, path: str, options: dict[str, Any]) -> dict[str, Any]:
        """What keys this model's cache entries: the server and model name, never the key or transport knobs."""
        parsed = OpenAIOptions.model_validate(options)
        base_url = parsed.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        return {"path": path, "base_url": base_url.rstrip("/"), "api": parsed.api}

    def load(
        self, path: str, device: str, dtype: str, device_map: str | None = None, options: dict[str, Any] | None = None
    ) -> OpenAIModel:
        from openai import OpenAI

        parsed = OpenAIOptions.model_validate(options or {})
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
        client = OpenAI(
            base_url=parsed.base_url, api_key=_api_key(parsed), timeout=parsed.timeout_s, max_retries=parsed.max_retries
        )
        return OpenAIModel(client, path, parsed)

    def unload(self, handle: OpenAIModel) -> None:
        handle.client.close()

    def generate(
        self, handle: OpenAIModel, requests: list[GenerationRequest], settings: GenerationSettings, batch_size: int
    ) -> list[Generation]:
        import openai

        one = self._chat if handle.options.api == "chat" else self._completion
        try:
            with ThreadPoolExecutor(max_workers=handle.options.max_concurrency) as pool:
                return list(pool.map(lambda r: one(handle, r, settings), requests))
        except openai.APIError as exc:
            detail = str(getattr(exc, "message", "") or exc).strip().splitlines()
            raise MocoError(
                f"openai backend: model {handle.model} at {handle.client.base_url}: {type(exc).__name__}: "
                f"{detail[0] if detail else ''}"
            ) from None

    def _sampling(self, request: GenerationRequest, settings: GenerationSettings) -> dict[str, Any]:
        return {
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
            "top_p": settings.top_p if settings.temperature > 0 else 1.0,
            "seed": row_seed(settings.seed, request) % (2**31),
        }

    def _chat(self, handle: OpenAIModel, request: GenerationRequest, settings: GenerationSettings) -> Generation:
        messages = [{"role": "user", "content": request.prompt}]
        if request.system_prompt:
            messages.insert(0, {"role": "system", "content": request.system_prompt})
        extra = {"logprobs": True, "top_logprobs": TOP_LOGPROBS} if request.logprobs else {}
        response = handle.client.chat.completions.create(
            model=handle.model, messages=messages, n=1, **self._sampling(request, settings), **extra
        )
        choice = response.choices[0]
        content = choice.message.content or ""
        generation = Generation(text=content.strip())
        generation.tokens, generation.prompt_tokens = _usage(response)
        if request.logprobs and choice.logprobs is not None and choice.logprobs.content:
            entries = choice.logprobs.content
            kept = _text_tokens([e.token for e in entries], content, choice.finish_reason)
            generation.token_logprobs, generation.top_logprobs = _chosen_and_top(entries[:kept])
        return generation

    def _completion(self, handle: OpenAIModel, request: GenerationRequest, settings: GenerationSettings) -> Generation:
        prompt = f"{request.system_prompt}\n\n{request.prompt}" if request.system_prompt else request.prompt
        extra = {"logprobs": TOP_LOGPROBS} if request.logprobs else {}
        response = handle.client.completions.create(
            model=handle.model, prompt=prompt, n=1, **self._sampling(request, settings), **extra
        )
        choice = response.choices[0]
        generation = Generation(text=(choice.text or "").strip())
        generation.tokens, generation.prompt_tokens = _usage(response)
        if request.logprobs and choice.logprobs is not None and choice.logprobs.token_logprobs:
            kept = _text_tokens(choice.logprobs.tokens, choice.text or "", choice.finish_reason)
            generation.token_logprobs = [float(v) for v in choice.logprobs.token_logprobs[:kept]]
            tops = (choice.logprobs.top_logprobs or [{} for _ in generation.token_logprobs])[:kept]
            generation.top_logprobs = [
                max([v, *(float(x) for x in (alternatives or {}).values())])
                for v, alternatives in zip(generation.token_logprobs, tops, strict=False)
            ]
        return generation
