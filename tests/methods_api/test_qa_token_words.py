"""Word boundaries of SentencePiece models: a continuation's first "\u2581word" keeps its space.

A SentencePiece decoder drops the space of a text's first token, so a span decoded on its own
glues its first word to the text before it ("The" + "\u2581answer" -> "Theanswer").
"""

from __future__ import annotations

import pytest
import torch

from moco_core.backends.hf import HFBackend, HFModel, row_seed
from moco_core.engines.text_exchange import Choice, ExchangeView, TextExchangeDecoder
from moco_core.testing import build_sentencepiece_model
from moco_core.types import GenerationRequest, GenerationSettings
from moco_methods_api.mentor_collab import MentorPolicy

PROMPTS = ["The answer is", "What is 2 + 3?", "Model 1 is good at math."]


class Settings:
    settings = GenerationSettings(max_new_tokens=24, temperature=0.0, top_p=1.0, seed=0)


@pytest.fixture(scope="module")
def sentencepiece_pair(tmp_path_factory) -> list[HFModel]:
    root = tmp_path_factory.mktemp("sp-pair")
    return [
        HFBackend().load(str(build_sentencepiece_model(root / f"sp{seed}", seed=seed)), "cpu", "float32")
        for seed in (11, 13)
    ]


def decode(models, factory, settings=Settings.settings, starts=None):
    decoder = TextExchangeDecoder(models, batch_size=3)
    rendered = decoder.render(PROMPTS, [None] * len(models))
    seeds = [row_seed(settings.seed, GenerationRequest(p)) for p in PROMPTS]
    return decoder.decode(rendered, factory, settings, seeds, starts)


def test_mentor_collab_words_keep_their_spaces(sentencepiece_pair):
    """Words end where a "▁word" token starts the next one, and word-by-word writing (the mentor never
    consulted) gives the text token-by-token writing gives."""
    generator = sentencepiece_pair[0]
    assert generator.tokenizer.get_vocab() == sentencepiece_pair[1].tokenizer.get_vocab()

    def token_by_token():
        return lambda view: {
            p: Choice(0, lp) for p, lp in zip(view.active, view.log_probs(0, view.active), strict=True)
        }

    written: list[str] = []

    def spied():
        policy = MentorPolicy(Settings(), "g", PROMPTS, 0.0, 4)

        def step(view: ExchangeView) -> dict[int, Choice]:
            choices = policy(view)
            written.extend(c.text for c in choices.values() if view.step and c.text)
            return choices

        return step

    plain = decode(sentencepiece_pair, token_by_token)
    words = decode(sentencepiece_pair, spied)
    assert [r.text for r in words] == [r.text for r in plain]
    assert any(word.startswith(" ") for word in written), "words were not cut where a new word starts"
    assert [r.tokens_by_model for r in words] == [r.tokens_by_model for r in plain]


def test_mentor_collab_stays_within_max_new_tokens(sentencepiece_pair):
    settings = GenerationSettings(max_new_tokens=5, temperature=1.0, top_p=1.0, seed=2)

    class Tight:
        pass

    Tight.settings = settings
    judge = lambda hidden: torch.zeros((hidden.shape[0], 1))  # noqa: E731  (score 0.5: the mentor wins)
    factory = lambda: MentorPolicy(Tight(), "g", PROMPTS, 1.0, 16, classifier=judge)  # noqa: E731
    decoder = TextExchangeDecoder(sentencepiece_pair, batch_size=3, hidden_states=[0])
    rendered = decoder.render(PROMPTS, [None, None])
    seeds = [row_seed(settings.seed, GenerationRequest(p)) for p in PROMPTS]
    results = decoder.decode(rendered, factory, settings, seeds)
    assert all(sum(r.tokens_by_model) <= 5 for r in results), [r.tokens_by_model for r in results]
    assert any(r.tokens_by_model[1] for r in results), "the mentor never wrote: nothing was tested"


def test_a_sentencepiece_span_after_another_models_text_keeps_its_space(sentencepiece_pair, tiny_pool_paths):
    tiny = HFBackend().load(str(tiny_pool_paths[0]), "cpu", "float32")
    sp = sentencepiece_pair[0]
    word = sp.tokenizer.convert_tokens_to_ids("\u2581answer")
    assert word != sp.tokenizer.unk_token_id

    def factory():
        def policy(view: ExchangeView) -> dict[int, Choice]:
            if view.step == 0:
                return {p: Choice(0, text="The", tokens=1) for p in view.active}
            width = view.log_probs(1, view.active).shape[-1]
            forced = torch.full((width,), -torch.inf)
            forced[word] = 0.0
            return {p: Choice(1, forced) for p in view.active}

        return policy

    settings = GenerationSettings(max_new_tokens=2, temperature=0.0, top_p=1.0, seed=0)
    results = decode([tiny, sp], factory, settings)
    assert [r.text for r in results] == ["The answer"] * len(PROMPTS)


def test_exchange_distributions_cover_the_tokenizer_only(tiny_pool_paths, tmp_path):
    from transformers import AutoTokenizer, LlamaForCausalLM

    from moco_core.testing import tiny_llama_config

    tokenizer = AutoTokenizer.from_pretrained(tiny_pool_paths[0])
    tokenizer.save_pretrained(tmp_path)
    torch.manual_seed(0)
    config = tiny_llama_config(tokenizer, tie_word_embeddings=False)
    config.vocab_size = len(tokenizer) + 64  # padded for alignment
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    padded = HFBackend().load(str(tmp_path), "cpu", "float32")
    tiny = HFBackend().load(str(tiny_pool_paths[1]), "cpu", "float32")
    widths: set[int] = set()

    def factory():
        def policy(view: ExchangeView) -> dict[int, Choice]:
            log_probs = view.log_probs(0, view.active)
            widths.add(log_probs.shape[-1])
            return {p: Choice(0, lp) for p, lp in zip(view.active, log_probs, strict=True)}

        return policy

    decode([padded, tiny], factory, GenerationSettings(max_new_tokens=2, temperature=0.0, top_p=1.0, seed=0))
    assert widths == {len(tokenizer)}


def test_co_llm_spans_join_to_the_decoded_stream_even_inside_a_character(tiny_pool_paths):
    from transformers import AutoTokenizer

    from moco_methods_api.token_level import token_spans

    tokenizer = AutoTokenizer.from_pretrained(tiny_pool_paths[0])
    ids = tokenizer("The é 日本 answer", add_special_tokens=False)["input_ids"]
    assert sum("\ufffd" in tokenizer.decode([i]) for i in ids) >= 4  # characters spread over byte tokens
    for writers in ([i % 2 for i in range(len(ids))], [int(i >= 3) for i in range(len(ids))], [0] * len(ids)):
        spans = token_spans(tokenizer, ids, writers, ["gen", "asst"])
        assert "".join(s["text"] for s in spans) == tokenizer.decode(ids)
        assert sum(s["tokens"] for s in spans) == len(ids)
        assert [s["model"] for s in spans] == [
            ["gen", "asst"][w] for k, w in enumerate(writers) if not k or w != writers[k - 1]
        ]
        assert "\ufffd" not in "".join(s["text"] for s in spans)


def test_co_llm_counts_no_stop_token_and_its_spans_make_the_text(tiny_pool_paths):
    """A row the assistant ends: its stop token is neither a generated token nor a deferral."""
    from moco_core.engines.decoding import JointDecoder
    from moco_methods_api.co_llm import DeferHook, row_result

    models = [HFBackend().load(str(p), "cpu", "float32") for p in tiny_pool_paths[:2]]
    decoder = JointDecoder(models, batch_size=2)
    stop = decoder.tokenizer.eos_token_id

    class StopsRowZeroAtStepThree(DeferHook):
        def __call__(self, step):
            out = super().__call__(step)
            if step.index == 3:
                out[step.rows.index(0)] = torch.full_like(out[0], -torch.inf).index_fill_(0, torch.tensor([stop]), 0.0)
            return out

    hook = StopsRowZeroAtStepThree(torch.zeros(64), torch.tensor([5.0]), 0.5, "none", "defer")  # always defers
    prompts = decoder.render(["first prompt", "second prompt"], [None, None])
    settings = GenerationSettings(max_new_tokens=6, temperature=0.0, top_p=1.0, seed=0)
    ids = decoder.decode_ids(prompts, lambda lp: lp[0], settings, [1, 2], step_hook=hook, hidden_states=[0])
    ended, full = (row_result(decoder, hook, i, ids[i], ["gen", "asst"]) for i in (0, 1))
    assert ended["tokens_by_model"] == {"gen": 0, "asst": 3} and ended["log"] == [0, 1, 2]
    assert full["tokens_by_model"] == {"gen": 0, "asst": 6}
    for result in (ended, full):
        assert "".join(s["text"] for s in result["spans"]).strip() == result["text"]
