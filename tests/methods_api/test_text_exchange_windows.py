"""The text exchange on architectures other than Llama (``other_architectures``), above all those
whose attention sees only a window of recent tokens (BLOOM runs on the padded cache).

The engine's caches must give exactly the distributions a model reading the whole text from
scratch gives (which applies the windows itself), and models whose layers keep a state that
cannot drop a token (recurrent, linear attention) are refused before anything loads.
"""

from __future__ import annotations

import json

import pytest
import torch
import transformers

from moco_core.backends.hf import HFBackend, row_seed
from moco_core.engines.attention_masks import attention_windows
from moco_core.engines.full_recompute import ReferenceExchange
from moco_core.engines.text_exchange import TextExchangeDecoder
from moco_core.errors import MocoError
from moco_core.testing import TINY_SHAPE, assert_one_line_error, build_tiny_model_of, other_architectures
from moco_core.types import GenerationRequest, GenerationSettings
from moco_methods_api.nudging import NudgingPolicy

pytestmark = pytest.mark.slow

WINDOW = 4
PROMPTS = ["What is 2 + 3?", "Model 1 is good at math.", "history question", "The answer is", "Why?"]
GREEDY = GenerationSettings(max_new_tokens=20, temperature=0.0, top_p=1.0, seed=0)
CONFIGS = other_architectures(WINDOW)


class Recording(NudgingPolicy):
    """Nudging that records the base's distribution of every row at every step."""

    def __init__(self, seen: dict) -> None:
        super().__init__(0, 1, 0.1)
        self.seen = seen

    def __call__(self, view):
        for position, row in zip(view.active, view.log_probs(0, view.active), strict=True):
            self.seen[(view.prompt_index(position), view.step)] = row
        return super().__call__(view)


def decode(decoder, seen: dict):
    rendered = decoder.render(PROMPTS, [None, None])
    seeds = [row_seed(GREEDY.seed, GenerationRequest(p)) for p in PROMPTS]
    return [r.text for r in decoder.decode(rendered, lambda: Recording(seen), GREEDY, seeds)]


@pytest.mark.parametrize(
    ("architecture", "cache", "attention"),
    [
        *((a, cache, "default") for a in sorted(CONFIGS) for cache in ("rows", "padded")),
        *((a, cache, "eager") for a in ("mistral", "qwen2") for cache in ("rows", "padded")),
    ],
)
def test_the_engine_gives_the_distributions_of_a_full_recompute(
    tmp_path, tiny_pool_paths, monkeypatch, architecture, cache, attention
):
    """Row cache and padded cache (gaps masked, where no row cache serves); sdpa's boolean masks and
    eager attention's additive ones (Gemma 2 runs eager by default)."""
    if cache == "padded":
        monkeypatch.setattr("moco_core.engines.text_exchange.RowCache.over", lambda *args, **kwargs: None)
    folder = build_tiny_model_of(tmp_path / architecture, CONFIGS[architecture], tiny_pool_paths[0])
    backend = HFBackend()
    models = [backend.load(str(folder), "cpu", "float32"), backend.load(str(tiny_pool_paths[1]), "cpu", "float32")]
    for model in models if attention == "eager" else []:
        model.model.set_attn_implementation("eager")
    fast, slow = {}, {}
    fast_texts = decode(TextExchangeDecoder(models, batch_size=3), fast)
    slow_texts = decode(ReferenceExchange(models, batch_size=1), slow)
    assert fast_texts == slow_texts
    assert fast.keys() == slow.keys()
    assert max(step for _, step in fast) >= 3 * WINDOW, "too short for the window to matter"
    for key, row in fast.items():
        torch.testing.assert_close(row, slow[key], atol=1e-4, rtol=1e-4)


def test_windows_come_from_the_layer_types():
    assert attention_windows(transformers.LlamaConfig(**TINY_SHAPE)) is None
    assert attention_windows(CONFIGS["mistral"]) == WINDOW
    assert attention_windows(CONFIGS["gemma2"]) == {"sliding_attention": WINDOW, "full_attention": None}
    unsliding = transformers.Qwen2Config(num_key_value_heads=2, use_sliding_window=False, sliding_window=WINDOW)
    assert attention_windows(unsliding) is None


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        (lambda: transformers.MambaConfig(num_hidden_layers=2), "linear_attention"),
        (lambda: transformers.JambaConfig(num_hidden_layers=2), "linear_attention"),
        (lambda: transformers.Llama4TextConfig(num_hidden_layers=4), "chunked_attention"),
    ],
)
def test_layers_that_cannot_drop_a_token_are_refused(config, kind):
    with pytest.raises(MocoError, match=kind):
        attention_windows(config())


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("nudging", {}),
        ("switch_generation", {"selector_model": "selector"}),
        ("mentor_collab", {"patch_size": 2}),
        ("logit_fusion", {"vocabulary": "union"}),
        ("logit_fusion", {"vocabulary": "byte"}),
    ],
)
def test_a_recurrent_member_is_refused_before_loading(api, tiny_pool_paths, monkeypatch, tmp_path, method, params):
    """Every engine that feeds rows unevenly: the text exchange (nudging, switch_generation,
    mentor_collab's lookahead), the union and byte vocabularies."""
    hybrid = tmp_path / "hybrid"
    build_tiny_model_of(hybrid, transformers.LlamaConfig(**TINY_SHAPE), tiny_pool_paths[0])
    config = json.loads((hybrid / "config.json").read_text())
    config["layer_types"] = ["full_attention", "linear_attention"]
    (hybrid / "config.json").write_text(json.dumps(config))

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("moco_core.backends.hf.HFBackend.load", no_loading)
    models = [{"name": "a", "path": str(tiny_pool_paths[0])}, {"name": "b", "path": str(hybrid)}]
    params = {k: str(tiny_pool_paths[2]) if v == "selector" else v for k, v in params.items()}
    result, _ = api.run(method, models, api.data([("dev q", "x")], [("q", "x")]), params)
    assert_one_line_error(result, "models[1].path", "linear_attention")
