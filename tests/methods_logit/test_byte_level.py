"""Byte-level joint decoding (vocabulary: byte): exact next-byte probabilities (byte-level BPE and
SentencePiece-style tokenizers with a dummy prefix and byte fallback), all weight on one model,
peaked models, batch independence, the CLI across tokenizers and the plan-time refusals."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from moco_core.backends.hf import HFModel, row_seed
from moco_core.cli import app
from moco_core.config import ModelConfig
from moco_core.engines.byte_level import STOP_SYMBOL, ByteJointDecoder, ByteTrie
from moco_core.engines.byte_spelling import Spelling, spelling_problem
from moco_core.engines.vocab_alignment import STOP
from moco_core.errors import MocoError
from moco_core.plugins import get_registry
from moco_core.testing import (
    SPECIAL_TOKENS,
    assert_one_line_error,
    build_other_tokenizer_model,
    build_sentencepiece_model,
)
from moco_core.types import Example, GenerationSettings
from moco_methods_logit.joint import check_vocabulary
from moco_methods_logit.logit_fusion import LogitFusion

from .conftest import fusion_context

pytestmark = pytest.mark.slow

GREEDY = GenerationSettings(max_new_tokens=8, temperature=0.0, top_p=1.0, seed=0)
SAMPLED = GenerationSettings(max_new_tokens=8, temperature=0.8, top_p=0.9, seed=5)
QUESTIONS = ["What is 2 + 3?", "Which model is good at math?", "Put the answer in a box.", "the of and"]
EXAMPLES = [
    Example(index=i, id=str(i), question=q, answer="", task_type="open", prompt=q) for i, q in enumerate(QUESTIONS)
]
MICRO_CORPUS = ["the cat ate the hat at the mat"]


@pytest.fixture(scope="session")
def micro_model(tmp_path_factory) -> Path:
    """A tiny Llama over a 272-token byte-level BPE (the 256 bytes, 4 specials, 12 merges such as ' the')."""
    folder = tmp_path_factory.mktemp("micro")
    return build_other_tokenizer_model(
        folder, seed=3, vocab_size=272, corpus=MICRO_CORPUS, special_tokens=SPECIAL_TOKENS
    )


@pytest.fixture(scope="session")
def sentencepiece_model(tmp_path_factory) -> Path:
    """A tiny Llama over a SentencePiece-style BPE: a "\u2581" marker before the text, byte fallback."""
    return build_sentencepiece_model(tmp_path_factory.mktemp("sentencepiece") / "model")


LEGACY_NORMALIZER = {
    "type": "Sequence",
    "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
    ],
}
"""Llama 2's own form of the dummy prefix: the marker prepended by a normalizer, no pre-tokenizer."""


@pytest.fixture(scope="session")
def legacy_sentencepiece_model(sentencepiece_model, tmp_path_factory) -> Path:
    def edit(content: dict) -> None:
        content.update(normalizer=LEGACY_NORMALIZER, pre_tokenizer=None)

    return edited_tokenizer(sentencepiece_model, tmp_path_factory.mktemp("legacy") / "model", edit)


def sharpened(source: Path, folder: Path, factor: float = 10.0) -> Path:
    """A copy of ``source`` with its output layer scaled, so its next-token distributions are peaked."""
    from transformers import AutoModelForCausalLM

    shutil.copytree(source, folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    with torch.no_grad():
        model.lm_head.weight.mul_(factor)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def peaked_paths(tiny_pool_paths, other_tokenizer_model, sentencepiece_model, tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("peaked")
    sources = [tiny_pool_paths[0], tiny_pool_paths[1], other_tokenizer_model, sentencepiece_model]
    return [sharpened(p, root / f"p{i}") for i, p in enumerate(sources)]


def context(paths: list[Path], tmp_path: Path, settings: GenerationSettings, batch_size: int = 4, **params):
    members = [ModelConfig(name=f"m{i}", path=str(p)) for i, p in enumerate(paths)]
    return fusion_context(members, tmp_path / "g.sqlite", settings, EXAMPLES, batch_size, **params)


def test_the_trie_ranges_are_the_tokens_with_each_prefix(micro_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(micro_model)
    trie = ByteTrie(tokenizer, {tokenizer.eos_token_id})
    order = trie.order.tolist()
    for prefix in [b"", b"t", b"th", b" ", b" th", b"at", b"\xc3", b"zzz"]:
        lo, hi = trie.span(prefix)
        assert sorted(order[lo:hi]) == sorted(
            i for i, key in enumerate(trie.bytes_of) if i in order and key.startswith(prefix)
        )
        children = trie.children(prefix).tolist()
        for byte in (ord("a"), ord("e"), ord("h"), 0xA9):
            assert all(
                trie.bytes_of[i].startswith(prefix + bytes([byte])) for i in order[children[byte] : children[byte + 1]]
            )
        assert children[-1] == hi and all(trie.bytes_of[i] == prefix for i in order[lo : children[0]])
    assert trie.longest_match(b"the mat") == [tokenizer.convert_tokens_to_ids(t) for t in ["the", "Ġmat"]]


def restricted_encoding(spelling: Spelling, trie: ByteTrie, data: bytes) -> list[int]:
    """The covers' rule for the tokens before the last (``data`` a prefix of a model's stream): the
    marker-free encoding of the longest valid UTF-8 prefix, then longest-match tokens of a character
    cut short."""
    try:
        data.decode("utf-8")
        valid = len(data)
    except UnicodeDecodeError as error:
        valid = error.start
    text = data[:valid].decode("utf-8")
    return (spelling.encode(text) if text else []) + trie.longest_match(data[valid:])


def brute_force(model, spelling: Spelling, trie: ByteTrie, prompt: list[int], data: bytes, end: bool = False) -> float:
    """P(data) as the sum, over the split points j of the model's stream of data (its marker, if any,
    then data), of the probability of the rule's leading tokens for the stream's first j bytes (when
    they spell them) times that of a next token starting with the rest; each scored by a fresh forward
    pass of the whole sequence (no cache).  With ``end``, P(data, EOS)."""
    vocab = [(i, key) for i, key in enumerate(trie.bytes_of) if i in set(trie.order.tolist())]
    stream = spelling.stream(data)
    eos = trie.bytes_of.index(STOP)
    total = 0.0
    for split in [len(stream)] if end else range(len(stream)):
        leading = restricted_encoding(spelling, trie, stream[:split])
        if b"".join(trie.bytes_of[t] for t in leading) != stream[:split]:
            continue
        with torch.no_grad():
            logits = model(torch.tensor([prompt + leading])).logits[0].double().log_softmax(-1)
        log_prob = sum(float(logits[len(prompt) - 1 + k, t]) for k, t in enumerate(leading))
        last = logits[-1].exp()
        if end:
            total += math.exp(log_prob) * float(last[eos])
        else:
            total += math.exp(log_prob) * sum(float(last[t]) for t, key in vocab if key.startswith(stream[split:]))
    return total


@pytest.mark.parametrize("kind", ["byte_bpe", "sentencepiece", "legacy_sentencepiece"])
@torch.inference_mode()
def test_next_byte_probabilities_multiply_to_the_sum_over_covers(
    micro_model, sentencepiece_model, legacy_sentencepiece_model, kind
):
    """Strings with multi-byte tokens (' the', ' cat'), a prefix ending inside a token (' c' of ' cat'),
    a commit half-way, a two-byte character the vocabulary splits ('\u00e9' = c3 a9; byte-fallback
    tokens in the SentencePiece vocabulary) and, there, the marker before the first byte (a text
    with and without a leading space, and 'H', which only a byte token spells), with the marker
    prepended by the pre-tokenizer (Metaspace) or, as in Llama 2, by a normalizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = {"byte_bpe": micro_model, "sentencepiece": sentencepiece_model}.get(kind, legacy_sentencepiece_model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float64).eval()
    decoder = ByteJointDecoder([HFModel(model=model, tokenizer=tokenizer, device=torch.device("cpu"))])
    trie, spelling = decoder.tries[0], decoder.spellings[0]
    assert spelling.lead == (b"" if kind == "byte_bpe" else b" ")
    targets = [b" the c", b"at the ma", "a\u00e9 t".encode(), b"He at"]
    prompts = decoder.render(["Say it:", "Another prompt", "And a third one here", "A fourth"], [None])[0]
    stream = decoder.streams([prompts])[0]
    text = [b""] * len(targets)
    done = [False] * len(targets)
    products = [0.0] * len(targets)
    for _ in range(max(len(t) for t in targets) + 1):
        stream.open_covers(text, done)
        ratios, known = stream.log_ratios(text, done)
        for r, target in enumerate(targets):
            if done[r]:
                continue
            assert known[r]
            prompt = tokenizer(prompts[r], add_special_tokens=False)["input_ids"]
            if len(text[r]) == len(target):
                expected = brute_force(model, spelling, trie, prompt, target, end=True)
                assert math.exp(products[r] + float(ratios[r, STOP_SYMBOL])) == pytest.approx(expected, rel=1e-6)
                done[r] = True
                continue
            products[r] += float(ratios[r, target[len(text[r])]])
            text[r] += target[len(text[r]) : len(text[r]) + 1]
            expected = brute_force(model, spelling, trie, prompt, text[r])
            assert math.exp(products[r]) == pytest.approx(expected, rel=1e-6), text[r]
        if all(done):
            break
        stream.append(text, done)
    assert all(done)
    assert stream.rows[1].committed > 0  # the text was read across at least one commit


@torch.inference_mode()
def test_text_naming_a_special_token_is_read_as_plain_bytes(tiny_pool_paths):
    """A partner may spell '<|im_end|>' byte by byte; the model keeps covering it as ordinary text."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_pool_paths[0]
    hf = HFModel(AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path), torch.device("cpu"))
    decoder = ByteJointDecoder([hf])
    stream = decoder.streams(decoder.render(["Hi"], [None]))[0]
    text, done = [b""], [False]
    for byte in b"a <|im_end|> b":
        stream.open_covers(text, done)
        ratios, known = stream.log_ratios(text, done)
        assert bool(known[0]) and math.isfinite(float(ratios[0, byte]))
        text = [text[0] + bytes([byte])]
        stream.append(text, done)
    assert stream.rows[0].committed > 0 and not stream.rows[0].lost
    (ids,) = stream._encode([text[0]])  # even with the whole name since the last commit
    assert ids is not None and b"".join(stream.trie.bytes_of[i] for i in ids) == text[0]


@torch.inference_mode()
def test_a_model_that_cannot_spell_the_text_is_re_anchored_and_goes_on(tiny_pool_paths):
    """With 'Q' made a special token the model cannot spell 'aQb'; after the 'b' that kills its last
    cover it reads the text with its own tokenizer and predicts the next bytes again."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_pool_paths[0]
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.add_special_tokens({"additional_special_tokens": ["Q"]})
    hf = HFModel(AutoModelForCausalLM.from_pretrained(path), tokenizer, torch.device("cpu"))
    decoder = ByteJointDecoder([hf])
    stream = decoder.streams(decoder.render(["Hi"], [None]))[0]
    text, done = [b""], [False]
    for byte in b"aQb c":
        stream.open_covers(text, done)
        ratios, known = stream.log_ratios(text, done)
        assert bool(known[0])
        assert math.isfinite(float(ratios[0, byte])) == (text[0] != b"aQ"), text[0]
        text = [text[0] + bytes([byte])]
        stream.append(text, done)
        assert stream.rows[0].lost == (text[0] == b"aQb")
    assert stream.rows[0].boundary >= 3 and stream.rows[0].committed >= 3


@pytest.mark.parametrize("settings", [GREEDY, SAMPLED])
@pytest.mark.parametrize("pair", ["shared", "cross", "cross_reversed", "sentencepiece", "sentencepiece_partner"])
def test_all_weight_on_one_model_is_its_own_byte_decoding(
    tiny_pool_paths, other_tokenizer_model, sentencepiece_model, tmp_path, settings, pair
):
    paths = {
        "shared": [tiny_pool_paths[0], tiny_pool_paths[1]],
        "cross": [tiny_pool_paths[0], other_tokenizer_model],
        "cross_reversed": [other_tokenizer_model, tiny_pool_paths[0]],
        "sentencepiece": [sentencepiece_model, other_tokenizer_model],
        "sentencepiece_partner": [tiny_pool_paths[0], sentencepiece_model],
    }[pair]
    ctx = context(paths, tmp_path, settings, weights=[1.0, 0.0], vocabulary="byte")
    fused = [p.output for p in LogitFusion(ctx).predict(EXAMPLES)]
    alone = ByteJointDecoder([ctx.pool.load("m0").handle], batch_size=4)
    seeds = [row_seed(settings.seed, ctx.pool.request("m0", q)) for q in QUESTIONS]
    assert fused == alone.decode(alone.render(QUESTIONS, [None]), lambda lps: lps[0], settings, seeds)
    assert any(fused)


@pytest.mark.parametrize("partner", [1, 2, 3])
def test_on_peaked_models_byte_greedy_is_the_models_own_greedy_text(peaked_paths, tmp_path, partner):
    """Byte-greedy picks the most likely next byte summed over tokens, so it can leave the token-greedy
    path of a flat model; a peaked model's greedy tokens carry nearly all the mass of their bytes, and
    there the byte mode with weights (1, 0) writes exactly the model's own greedy text (shared and
    other tokenizer partners alike, SentencePiece-style too)."""
    paths = [peaked_paths[0], peaked_paths[partner]]
    ctx = context(paths, tmp_path, GREEDY, weights=[1.0, 0.0], vocabulary="byte")
    fused = [p.output for p in LogitFusion(ctx).predict(EXAMPLES)]
    assert fused == [g.text for g in ctx.pool.generate("m0", QUESTIONS, GREEDY)]
    assert all(fused)


def test_a_rows_text_does_not_depend_on_its_batch(tiny_pool_paths, other_tokenizer_model, tmp_path):
    paths = [tiny_pool_paths[0], other_tokenizer_model]
    batched = context(paths, tmp_path / "a", SAMPLED, batch_size=4, vocabulary="byte", space="logit")
    single = context(paths, tmp_path / "b", SAMPLED, batch_size=1, vocabulary="byte", space="logit")
    together = [p.output for p in LogitFusion(batched).predict(EXAMPLES)]
    assert together == [p.output for p in LogitFusion(single).predict(EXAMPLES)]
    assert len(set(together)) > 1


def run_config(tmp_path: Path, paths: list[Path], method: str, params: dict) -> dict:
    item = {"question": "Which is 2?", "choices": {"A": "1", "B": "2"}, "answer": "B"}
    data = {"name": "t", "task_type": "multiple_choice", "dev": [{"id": "d", **item}], "test": [{"id": "t", **item}]}
    (tmp_path / "data.json").write_text(json.dumps(data))
    return {
        "method": method,
        "params": params,
        "models": [{"name": f"m{i}", "path": str(p)} for i, p in enumerate(paths)],
        "dataset": {"path": str(tmp_path / "data.json")},
        "generation": {"max_new_tokens": 6, "temperature": 0.0, "seed": 1, "batch_size": 4},
        "hardware": {"device": "cpu"},
        "output_dir": str(tmp_path / "run"),
    }


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("logit_fusion", {"vocabulary": "byte", "space": "prob", "weights": [2, 1]}),
        ("logit_fusion", {"vocabulary": "byte", "space": "logit"}),
        ("logit_contrastive", {"vocabulary": "byte", "k": 1, "alpha": 0.3, "space": "logit"}),
        ("logit_contrastive", {"vocabulary": "byte", "k": 1, "alpha": 0.3, "space": "prob"}),
    ],
)
def test_runs_through_the_cli_across_tokenizers(
    tiny_pool_paths, other_tokenizer_model, tmp_path, fresh_cache_dir, method, params
):
    if "multiple_choice" not in get_registry().scorers:
        pytest.skip("moco-evals is not installed")
    body = run_config(tmp_path, [tiny_pool_paths[0], other_tokenizer_model], method, params)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(body))
    result = CliRunner().invoke(app, ["run", str(tmp_path / "c.yaml")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["score"]["count"] == 1


def test_a_sentencepiece_model_runs_through_the_cli_with_a_byte_level_bpe_model(
    tiny_pool_paths, sentencepiece_model, tmp_path, fresh_cache_dir
):
    if "multiple_choice" not in get_registry().scorers:
        pytest.skip("moco-evals is not installed")
    params = {"vocabulary": "byte", "space": "prob", "weights": [1, 1]}
    body = run_config(tmp_path, [sentencepiece_model, tiny_pool_paths[0]], "logit_fusion", params)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(body))
    assert CliRunner().invoke(app, ["validate", str(tmp_path / "c.yaml")]).exit_code == 0
    result = CliRunner().invoke(app, ["run", str(tmp_path / "c.yaml")])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["score"]["count"] == 1


def edited_tokenizer(source: Path, folder: Path, edit) -> Path:
    """A copy of the model at ``source`` whose ``tokenizer.json`` content ``edit`` changed."""
    shutil.copytree(source, folder)
    content = json.loads((folder / "tokenizer.json").read_text())
    edit(content)
    (folder / "tokenizer.json").write_text(json.dumps(content))
    return folder


def test_a_tokenizer_that_does_not_spell_its_text_is_refused_before_loading(tiny_pool_paths, tmp_path):
    lowercasing = edited_tokenizer(
        tiny_pool_paths[1], tmp_path / "lower", lambda c: c.update(normalizer={"type": "Lowercase"})
    )
    body = run_config(tmp_path, [tiny_pool_paths[0], lowercasing], "logit_fusion", {"vocabulary": "byte"})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(body))
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "c.yaml")])
    assert_one_line_error(result, "models[1].path: logit_fusion with params.vocabulary: byte", "Lowercase")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = AutoModelForCausalLM.from_pretrained(lowercasing), AutoTokenizer.from_pretrained(lowercasing)
    loaded = HFModel(model=model, tokenizer=tokenizer, device=torch.device("cpu"))
    with pytest.raises(MocoError, match=r"^params.vocabulary: byte re-encodes text, .* \(pool model 0\)$"):
        ByteJointDecoder([loaded])


@torch.inference_mode()
def test_a_byte_level_bpe_with_a_prefix_space_reads_its_text_after_the_space(tiny_pool_paths, tmp_path):
    """``add_prefix_space`` is the byte-level BPE's dummy prefix: the model's stream of a text is a space
    then the text, so its next-byte probabilities after a text are those of the same model without
    the prefix after a space and the text (before the first byte: up to the factor P(space))."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = edited_tokenizer(
        tiny_pool_paths[1], tmp_path / "prefix", lambda c: c["pre_tokenizer"].update(add_prefix_space=True)
    )
    model = AutoModelForCausalLM.from_pretrained(path)
    prefixed, plain = (
        ByteJointDecoder([HFModel(model, AutoTokenizer.from_pretrained(p), torch.device("cpu"))])
        for p in (path, tiny_pool_paths[1])
    )
    assert prefixed.spellings[0].lead == b" " and plain.spellings[0].lead == b""
    assert check_vocabulary("logit_fusion", [ModelConfig(name="p", path=str(path))], "byte", "prob") is None
    prompts = [["<|im_start|>"]]  # no text: a prefix space would change the prompt's tokens
    streams = [prefixed.streams(prompts)[0], plain.streams(prompts)[0]]
    assert torch.equal(streams[0].stream.logits, streams[1].stream.logits)
    target, done = b"the cat is", [False]
    for size in range(len(target) + 1):
        texts = [[target[:size]], [b" " + target[:size]]]
        if size == 0:
            streams[1].open_covers([b""], done)
            streams[1].append(texts[1], done)
        ratios = []
        for stream, text in zip(streams, texts, strict=True):
            stream.open_covers(text, done)
            ratios.append(stream.log_ratios(text, done)[0][0])
        if size == 0:
            ratios = [r[:256] - torch.logsumexp(r[:256], dim=0) for r in ratios]
        assert torch.allclose(ratios[0], ratios[1], atol=1e-9), target[:size]
        if size < len(target):
            for stream, text in zip(streams, texts, strict=True):
                stream.append([text[0] + target[size : size + 1]], done)


def test_spelling_rules_and_byte_pools_in_either_space(tiny_pool_paths, other_tokenizer_model, sentencepiece_model):
    assert "WordPiece" in spelling_problem({"model": {"type": "WordPiece"}})
    metaspace = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first"}
    assert spelling_problem({"model": {"type": "BPE"}, "pre_tokenizer": metaspace}) is None
    legacy = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"}, {"type": "NFC"}]}
    assert spelling_problem({"model": {"type": "BPE"}, "normalizer": legacy}) is None
    nested = {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]}
    assert "lowercases" in spelling_problem({"model": {"type": "BPE"}, "normalizer": nested})
    assert "NFKC" in spelling_problem({"model": {"type": "Unigram"}, "normalizer": {"type": "NFKC"}})
    models = [
        ModelConfig(name="a", path=str(tiny_pool_paths[0])),
        ModelConfig(name="b", path=str(other_tokenizer_model)),
        ModelConfig(name="c", path=str(sentencepiece_model)),
    ]
    for space in ("prob", "logit"):
        check_vocabulary("logit_fusion", models, "byte", space)
