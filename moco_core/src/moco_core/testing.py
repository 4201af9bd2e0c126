"""Test helpers for moco and its plugins: tiny offline models, a scripted backend, plugin fixtures.

Tiny models are real architectures (Llama, hidden size 64, 2 layers) with a BPE tokenizer
trained offline, so every code path of the hf backend runs without network or GPU.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from moco_core.hookspecs import hookimpl
from moco_core.registry import BackendSpec, ScorerSpec
from moco_core.types import Generation, GenerationRequest, GenerationSettings

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<pad>", "<|im_start|>", "<|im_end|>", "<unk>"]
CORPUS = [
    "The answer is (A). The answer is (B). The answer is (C). The answer is (D).",
    "Answer with the letter of the correct option. Question: what is 2 + 3? A) 5 B) 6",
    "Put the final answer in \\boxed{}. \\boxed{42} \\boxed{1/2} 0 1 2 3 4 5 6 7 8 9 10 100",
    "You are a helpful assistant. system user assistant model choose one of the models below.",
    "Model 1 Model 2 Model 3 is good at math, science, history, coding and reasoning.",
    "the of and to in is that it for on with as was be by at this from or an are not",
]


def build_tiny_tokenizer(
    folder: str | Path,
    vocab_size: int = 400,
    corpus: Sequence[str] = CORPUS,
    special_tokens: Sequence[str] = SPECIAL_TOKENS,
    repeats: int = 4,
) -> Any:
    """A byte-level BPE tokenizer trained on a few sentences, with a ChatML template.

    ``corpus`` (seen ``repeats`` times), ``vocab_size`` and the order of ``special_tokens``
    (which fixes their ids) choose the vocabulary; the defaults give the tiny pool's tokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(corpus) * repeats, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    return fast


def tiny_llama_config(tokenizer: Any, **overrides: Any) -> Any:
    """Llama with hidden size 64 and 2 layers over ``tokenizer``'s vocabulary and special tokens."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **overrides,
    )


def _randomise(model: Any, std: float) -> None:
    """Wide random weights, so tiny models of different seeds answer differently."""
    import torch

    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, std)


def _save_tiny_llama(folder: Path, tokenizer: Any, seed: int) -> Path:
    """Save a random tiny Llama over ``tokenizer`` (already saved in ``folder``) into ``folder``."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_llama_config(tokenizer, tie_word_embeddings=False))
    _randomise(model, 0.5)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    return folder


def build_tiny_model(folder: str | Path, seed: int = 0, tokenizer_from: str | Path | None = None) -> Path:
    """Save a random tiny Llama (hidden 64, 2 layers) with a tokenizer into ``folder``.

    ``tokenizer_from`` reuses another tiny model's tokenizer so several models share a
    vocabulary (needed by logit- and weight-level methods).
    """
    from transformers import AutoTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if tokenizer_from is not None:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
        tokenizer.save_pretrained(folder)
    else:
        tokenizer = build_tiny_tokenizer(folder)
    return _save_tiny_llama(folder, tokenizer, seed)


TINY_SHAPE = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}
"""The tiny models' size, for configs of other architectures (``build_tiny_model_of``)."""


def other_architectures(window: int = 4) -> dict[str, Any]:
    """Tiny configs of architectures other than Llama, each with something Llama lacks: Mistral slides
    every layer's attention window (``window`` tokens); Qwen 2 (``use_sliding_window``) and Gemma 2
    mix full and sliding layers; GPT-2 learns absolute positions; BLOOM derives ALiBi biases from
    the attention mask."""
    import transformers

    return {
        "mistral": transformers.MistralConfig(num_key_value_heads=2, sliding_window=window, **TINY_SHAPE),
        "qwen2": transformers.Qwen2Config(
            num_key_value_heads=2, use_sliding_window=True, sliding_window=window, max_window_layers=1, **TINY_SHAPE
        ),
        "gemma2": transformers.Gemma2Config(
            num_key_value_heads=2, head_dim=16, sliding_window=window, tie_word_embeddings=False, **TINY_SHAPE
        ),
        "gpt2": transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=1024),
        "bloom": transformers.BloomConfig(hidden_size=64, n_layer=2, n_head=4),
    }


def build_tiny_model_of(folder: str | Path, config: Any, tokenizer_from: str | Path, seed: int = 1) -> Path:
    """Save a random tiny causal LM of ``config``'s architecture (GPT-2, Mistral, Gemma 2, ...) over the
    tokenizer of the tiny model in ``tokenizer_from``, for tests that must hold beyond Llama."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
    config = copy.deepcopy(config)
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        setattr(config, key, getattr(tokenizer, key))
    config.vocab_size = len(tokenizer)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    _randomise(model, 0.5)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


OTHER_SPECIAL_TOKENS = ["<|im_end|>", "<unk>", "<|im_start|>", "<pad>"]


def build_other_tokenizer_model(
    folder: str | Path,
    seed: int = 9,
    vocab_size: int = 300,
    corpus: Sequence[str] = CORPUS[::-1],
    special_tokens: Sequence[str] = OTHER_SPECIAL_TOKENS,
    repeats: int = 4,
) -> Path:
    """A tiny Llama whose tokenizer differs from ``build_tiny_tokenizer``'s, for cross-tokenizer tests.

    The defaults give a byte-level BPE with fewer merges (``vocab_size`` 300, the reversed
    ``CORPUS``) and other special-token ids (``OTHER_SPECIAL_TOKENS``); the arguments are
    those of ``build_tiny_tokenizer``, and ``seed`` picks the random weights.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(folder, vocab_size, corpus, special_tokens, repeats)
    return _save_tiny_llama(folder, tokenizer, seed)


def build_sentencepiece_model(
    folder: str | Path,
    seed: int = 11,
    vocab_size: int = 360,
    corpus: Sequence[str] = CORPUS,
    prepend_scheme: str = "first",
    repeats: int = 4,
) -> Path:
    """A tiny Llama over a SentencePiece-style tokenizer, as Llama 2 and Mistral 7B have.

    A BPE over "\u2581"-marked words (a Metaspace pre-tokenizer that prepends the marker to a
    text, ``prepend_scheme``) with byte fallback: the 256 ``<0xNN>`` tokens spell what the
    merges do not; its decoder drops the leading space again.  ``vocab_size`` counts the
    special tokens (``SPECIAL_TOKENS``, ids 0-3) and the byte tokens (ids 4-259).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    metaspace = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme=prepend_scheme)
    trained = Tokenizer(models.BPE(unk_token="<unk>"))
    trained.pre_tokenizer = metaspace
    size = vocab_size - 256 - len(SPECIAL_TOKENS)
    trainer = trainers.BpeTrainer(vocab_size=size, special_tokens=[], show_progress=False)
    trained.train_from_iterator(list(corpus) * repeats, trainer=trainer)
    content = json.loads(trained.to_str())["model"]
    pieces = sorted(content["vocab"], key=content["vocab"].get)
    vocab = {n: i for i, n in enumerate([*SPECIAL_TOKENS, *(f"<0x{b:02X}>" for b in range(256)), *pieces])}
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in content["merges"]]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True))
    tokenizer.pre_tokenizer = metaspace
    tokenizer.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    names = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<pad>", "unk_token": "<unk>"}
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **names)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    return _save_tiny_llama(folder, fast, seed)


def build_tiny_pool(root: str | Path, count: int = 3) -> list[Path]:
    """``count`` tiny models with different weights and one shared tokenizer."""
    root = Path(root)
    first = build_tiny_model(root / "tiny-0", seed=0)
    return [first] + [build_tiny_model(root / f"tiny-{i}", seed=i, tokenizer_from=first) for i in range(1, count)]


def build_tiny_reward_model(folder: Path, chat_template: bool = True, architecture: str = "llama") -> Path:
    """A random one-label sequence classifier (a tiny reward model) whose tokenizer pads on the left.

    The left padding side is deliberate: the scorer must override it (left padding shifts
    positions, which changes rewards of models with absolute position embeddings).
    """
    import torch
    from transformers import GPT2Config, GPT2ForSequenceClassification, LlamaForSequenceClassification

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(folder / "tokenizer")
    tokenizer.padding_side = "left"
    if not chat_template:
        tokenizer.chat_template = None
    tokenizer.save_pretrained(folder)
    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    torch.manual_seed(0)
    if architecture == "gpt2":  # absolute position embeddings: wrong padding would show
        config = GPT2Config(vocab_size=len(tokenizer), n_embd=64, n_layer=2, n_head=4, n_positions=1024, **special)
        config.num_labels = 1
        model = GPT2ForSequenceClassification(config)
    else:
        model = LlamaForSequenceClassification(tiny_llama_config(tokenizer, num_labels=1))
    _randomise(model, 0.3)
    model.save_pretrained(folder)
    return folder


Responder = Callable[[GenerationRequest], "str | Generation"]
_responders: dict[str, Responder] = {}


def set_responder(path: str, responder: Responder | str) -> None:
    """Make the scripted model at ``path`` answer with ``responder(request)`` (or a fixed text); a
    responder may return a whole ``Generation`` (e.g. ``with_confidence``) instead of a text."""
    _responders[path] = responder if callable(responder) else (lambda _request, text=responder: text)


def with_confidence(text: str, probabilities: Sequence[float] | None) -> Generation:
    """A scripted answer whose tokens had these top-1 probabilities (None: a backend that returns
    no log-probabilities), for methods that read confidence (cascade)."""
    logs = None if probabilities is None else [math.log(p) for p in probabilities]
    return Generation(text=text, token_logprobs=logs, top_logprobs=logs)


class RecordingTraining:
    """A training plugin that records every job and returns ``folder`` (a model) as its result;
    pass to ``registered_plugin`` to see what a method trains without training."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.jobs: list[Any] = []

    @hookimpl
    def moco_train(self, job: Any) -> str:
        self.jobs.append(job)
        return self.folder


class ScriptedBackend:
    """A backend whose "models" are Python functions: for testing method logic exactly."""

    calls: list[tuple[str, int]] = []  # noqa: RUF012 - shared log of (path, batch size) across instances

    def load(self, path: str, device: str, dtype: str, device_map: str | None = None) -> str:
        if path not in _responders:
            raise OSError(f"no scripted responder for {path}")
        return path

    def unload(self, handle: str) -> None:
        return None

    def generate(
        self, handle: str, requests: list[GenerationRequest], settings: GenerationSettings, batch_size: int
    ) -> list[Generation]:
        ScriptedBackend.calls.append((handle, len(requests)))
        responder = _responders[handle]
        answers = [responder(r) for r in requests]
        return [
            a if isinstance(a, Generation) else Generation(text=a, token_logprobs=[-0.1], top_logprobs=[-0.1])
            for a in answers
        ]


class ScriptedBackendPlugin:
    """Registers the ``scripted`` backend; pass to ``registered_plugin``."""

    @hookimpl
    def moco_register_backends(self, register: Callable[..., None]) -> None:
        register(
            BackendSpec(
                key="scripted",
                implementation="moco_core.testing:ScriptedBackend",
                summary="test backend answering with Python functions",
                local_paths=False,
            )
        )


def first_letter(example: Any, output: str) -> str | None:
    """The test extractor: the answer is the response's first letter, if it is an option key."""
    stripped = output.strip()
    return stripped[:1] if stripped[:1] in (example.choices or {}) else None


class ScriptedTaskTypesPlugin:
    """Two task types for tests: ``letter`` (first letter is the answer) and ``free`` (exact text).

    They make scores of scripted responses obvious, so tests assert method logic, not scorers.
    """

    @hookimpl
    def moco_register_scorers(self, register: Callable[..., None]) -> None:
        register(
            ScorerSpec(
                task_type="letter",
                prompt=lambda e: e.question,
                extract=first_letter,
                score=lambda examples, outputs, options=None: [
                    float(first_letter(e, o) == e.answer) for e, o in zip(examples, outputs, strict=True)
                ],
            )
        )
        register(
            ScorerSpec(
                task_type="free",
                prompt=lambda e: e.question,
                score=lambda examples, outputs, options=None: [
                    float(o == e.answer) for e, o in zip(examples, outputs, strict=True)
                ],
            )
        )


@contextlib.contextmanager
def registered_plugin(plugin: Any, name: str | None = None) -> Iterator[Any]:
    """Register ``plugin`` with the plugin manager for the block, always unregistering it."""
    from moco_core.plugins import get_plugin_manager, refresh_registry

    pm = get_plugin_manager()
    pm.register(plugin, name=name)
    try:
        yield refresh_registry()
    finally:
        pm.unregister(plugin)
        refresh_registry()


@contextlib.contextmanager
def scripted_plugins(task_type_name: str = "letter") -> Iterator[None]:
    """The ``scripted`` backend and the ``letter``/``free`` task types for a block, with a clean call log."""
    with (
        registered_plugin(ScriptedBackendPlugin(), "scripted"),
        registered_plugin(ScriptedTaskTypesPlugin(), task_type_name),
    ):
        ScriptedBackend.calls.clear()
        yield


def write_letters_dataset(folder: str | Path, n_test: int = 6, n_dev: int = 3, name: str = "letters") -> Path:
    """A ``letter`` dataset file whose every gold answer is A: scripted models score 1 or 0 at a glance."""

    def item(i: int, split: str) -> dict[str, Any]:
        return {"id": f"q{i}", "question": f"{split} question {i}", "choices": {"A": "x", "B": "y"}, "answer": "A"}

    data = {"name": name, "task_type": "letter", "dev": [item(i, "dev") for i in range(n_dev)]}
    data["test"] = [item(i, "test") for i in range(n_test)]
    path = Path(folder) / f"{name}.json"
    path.write_text(json.dumps(data))
    return path


def write_choice_dataset(path: str | Path, n_dev: int, n_test: int, name: str = "tiny_mc") -> Path:
    """A four-option ``multiple_choice`` dataset file (gold cycles A..D), for runs on tiny models."""

    def item(i: int, split: str) -> dict[str, Any]:
        return {
            "id": f"{split}-{i}",
            "question": f"In {split} question {i}, which number is {i % 4 + 1}?",
            "choices": {"A": "1", "B": "2", "C": "3", "D": "4"},
            "answer": "ABCD"[i % 4],
        }

    data = {"name": name, "task_type": "multiple_choice"}
    data["dev"] = [item(i, "dev") for i in range(n_dev)]
    data["test"] = [item(i, "test") for i in range(n_test)]
    target = Path(path)
    target.write_text(json.dumps(data))
    return target


def assert_one_line_error(result: Any, *fragments: str) -> None:
    """A CLI result (typer's CliRunner) failed as bad input must: exit 2, one ``error:`` line naming each fragment."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
