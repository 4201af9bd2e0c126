"""How much moco's generation path costs over plain transformers, and what its cache saves.

Runs the same greedy prompts through (a) a per-prompt ``model.generate`` loop, (b) batched
``model.generate`` with left padding, (c) ``ModelPool.generate`` with the cache off, (d) the
same call served from a warm cache, and (e) the joint decoder over the one model, then prints
tokens per second and the ratios.  Greedy decoding makes every path produce the same tokens,
so (c)-(e) are credited with the token count the plain paths actually generated (up to and
including EOS), and their texts are checked against (b).  Every path is warmed up on one
batch first and timed as the best of ``--repeats`` runs (single GPU timings of a tiny model
swing by 2x); (b) keeps prompt order while moco's backend and engine group prompts by length.

Then fusion of two models (uniform weights, probability space): (f) two models sharing one
tokenizer through the joint decoder, (g) the same pair through the union-vocabulary decoder
(the alignment layer's own cost), (h) the first model with a model of another tokenizer
through the union vocabulary, and the byte level (exact next-byte distributions, Phan et al.
2024): (i) on the same pair, (j) across the two tokenizers, (k) the first model with a
SentencePiece-style model (a "\u2581" marker before the text, byte fallback).  Their outputs
differ, so each is credited with the tokens its texts take in the first model's tokenizer (and
bytes/s is shown).

    python benchmarks/bench_generation.py                       # tiny random models, CPU
    python benchmarks/bench_generation.py --model PATH --device cuda --prompts 256 \
        --partner PATH_SAME_TOKENIZER --other PATH_OTHER_TOKENIZER --sentencepiece PATH_LLAMA2_LIKE
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from moco_core.backends.hf import HFModel, eos_ids, render_prompt, row_seed
from moco_core.cache import GenerationCache
from moco_core.config import HardwareConfig, ModelConfig
from moco_core.engines.byte_level import ByteJointDecoder
from moco_core.engines.decoding import JointDecoder
from moco_core.engines.vocab_alignment import AlignedJointDecoder
from moco_core.plugins import get_plugin_manager, get_registry
from moco_core.pool import ModelPool
from moco_core.types import GenerationSettings

SENTENCE = "the answer is a number between one and ten so think step by step and then write it down"


def make_prompts(count: int) -> list[str]:
    """Prompts of varied length, so batches really are padded."""
    words = SENTENCE.split()
    return [f"Question {i}: " + " ".join(words[: 3 + (i * 7) % len(words)]) + "?" for i in range(count)]


def count_forwards(model: Any) -> list[int]:
    """Count the model's forward passes: throughput is only comparable at equal pass counts."""
    calls = [0]
    original = model.forward

    @functools.wraps(original)
    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    model.forward = counted
    return calls


def timed(device: torch.device, calls: list[int], repeats: int, work: Callable[[], Any]) -> tuple[Any, float, int]:
    """The work's result, its best time over ``repeats`` runs and the forward passes of one run."""
    best = float("inf")
    before = calls[0]
    result = None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        result = work()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return result, best, (calls[0] - before) // repeats


def generated_tokens(rows: list[list[int]], stop: set[int]) -> list[list[int]]:
    """Each row's new tokens up to and including its first stop token."""
    return [next((row[: i + 1] for i, t in enumerate(row) if t in stop), row) for row in rows]


def decode(hf: HFModel, rows: list[list[int]], stop: set[int]) -> list[str]:
    return [hf.tokenizer.decode([t for t in r if t not in stop], skip_special_tokens=True).strip() for r in rows]


@torch.inference_mode()
def plain_generate(hf: HFModel, texts: list[str], max_new_tokens: int, stop: set[int]) -> list[list[int]]:
    encoded = hf.tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    encoded = encoded.to(hf.device)
    output = hf.model.generate(
        **encoded,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        temperature=None,
        top_p=None,
        top_k=None,
        pad_token_id=hf.tokenizer.pad_token_id,
        eos_token_id=sorted(stop),
    )
    return generated_tokens(output[:, encoded["input_ids"].shape[1] :].tolist(), stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder or hub id (default: a tiny random Llama built in a temp dir)")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per path; the best counts")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])
    parser.add_argument("--partner", help="fusion partner sharing --model's tokenizer (default: tiny, or --model)")
    parser.add_argument("--other", help="fusion partner with another tokenizer (default: a tiny random Llama)")
    parser.add_argument("--sentencepiece", help="byte-level partner, SentencePiece-style tokenizer (default: tiny)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="moco-bench-") as scratch:
        from moco_core.testing import build_other_tokenizer_model, build_sentencepiece_model, build_tiny_model

        model_path = args.model
        if model_path is None:
            model_path = str(build_tiny_model(Path(scratch) / "tiny"))
            args.partner = args.partner or str(build_tiny_model(Path(scratch) / "tiny-1", 1, model_path))
        args.partner = args.partner or model_path
        args.other = args.other or str(build_other_tokenizer_model(Path(scratch) / "other"))
        args.sentencepiece = args.sentencepiece or str(build_sentencepiece_model(Path(scratch) / "sentencepiece"))
        run(args, model_path, Path(scratch))
        run_fusion(args, model_path)


def run_fusion(args: argparse.Namespace, model_path: str) -> None:
    """Tokens/s of uniform fusion: shared tokenizer, the union layer on it, and across tokenizers."""
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=0.0, top_p=1.0, seed=0)
    paths = {"a": model_path, "b": args.partner, "c": args.other, "d": args.sentencepiece}
    pool = ModelPool(
        [ModelConfig(name=n, path=p) for n, p in paths.items()],
        hardware=HardwareConfig(device=args.device, dtype=args.dtype),
        batch_size=args.batch_size,
        cache=GenerationCache(enabled=False),
        backends=get_registry().backends,
        hook=get_plugin_manager().hook,
    )
    handles = {n: pool.load(n).handle for n in paths}
    device = handles["a"].device
    calls = count_forwards(handles["a"].model)
    prompts = make_prompts(args.prompts)
    seeds = [row_seed(settings.seed, pool.request("a", p)) for p in prompts]

    def fuse(log_probs: list[torch.Tensor]) -> torch.Tensor:
        return torch.logsumexp(torch.stack(log_probs), dim=0) - torch.log(torch.tensor(float(len(log_probs))))

    decoders = [
        ("(f) fusion, shared tokenizer", JointDecoder([handles["a"], handles["b"]], args.batch_size)),
        ("(g) union vocabulary, same pair", AlignedJointDecoder([handles["a"], handles["b"]], args.batch_size)),
        ("(h) union vocabulary, two tokenizers", AlignedJointDecoder([handles["a"], handles["c"]], args.batch_size)),
        ("(i) byte level, same pair", ByteJointDecoder([handles["a"], handles["b"]], args.batch_size)),
        ("(j) byte level, two tokenizers", ByteJointDecoder([handles["a"], handles["c"]], args.batch_size)),
        ("(k) byte level, with SentencePiece-style", ByteJointDecoder([handles["a"], handles["d"]], args.batch_size)),
    ]
    results = []
    for label, decoder in decoders:
        rendered = decoder.render(prompts, [None, None])
        warm = [texts[: args.batch_size] for texts in rendered]
        decoder.decode(warm, fuse, settings, seeds[: args.batch_size])
        texts, seconds, passes = timed(
            device, calls, args.repeats, lambda d=decoder, r=rendered: d.decode(r, fuse, settings, seeds)
        )
        tokens = sum(len(handles["a"].tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
        size = sum(len(t.encode("utf-8")) for t in texts)
        results.append((label, texts, tokens / seconds, seconds, passes, size / seconds))
    print(
        f"fusion of {model_path} with {args.partner} (same tokenizer), {args.other} (another tokenizer) "
        f"and {args.sentencepiece} (SentencePiece-style)"
    )
    for label, _, rate, seconds, passes, byte_rate in results:
        print(
            f"  {label:<40} {rate:>12.1f} tokens/s {byte_rate:>12.1f} bytes/s  {seconds:8.3f} s  "
            f"{passes:>6} forward passes of the first model"
        )
    same = sum(x == y for x, y in zip(results[0][1], results[1][1], strict=True))
    print(f"union/shared on one tokenizer    {results[1][2] / results[0][2]:.3f}  (texts equal: {same}/{len(prompts)})")
    print(f"cross-tokenizer/shared           {results[2][2] / results[0][2]:.3f}")
    print(f"byte level/shared, same pair     {results[3][2] / results[0][2]:.3f}  (tokens/s)")
    print(f"byte level/shared, two tokenizers {results[4][2] / results[0][2]:.3f}  (tokens/s)")
    print(f"byte level/shared, SentencePiece  {results[5][2] / results[0][2]:.3f}  (tokens/s)")


def run(args: argparse.Namespace, model_path: str, scratch: Path) -> None:
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=0.0, top_p=1.0, seed=0)
    hardware = HardwareConfig(device=args.device, dtype=args.dtype)
    member = ModelConfig(name="m", path=model_path)

    def pool_with(cache: GenerationCache) -> ModelPool:
        return ModelPool(
            [member],
            hardware=hardware,
            batch_size=args.batch_size,
            cache=cache,
            backends=get_registry().backends,
            hook=get_plugin_manager().hook,
        )

    uncached = pool_with(GenerationCache(enabled=False))
    hf: HFModel = uncached.load("m").handle
    device = hf.device
    stop = eos_ids(hf)
    calls = count_forwards(hf.model)
    prompts = make_prompts(args.prompts)
    texts = [render_prompt(hf.tokenizer, p, None) for p in prompts]
    decoder = JointDecoder([hf], batch_size=args.batch_size)
    seeds = [row_seed(settings.seed, uncached.request("m", p)) for p in prompts]

    def per_prompt_loop(rows: slice) -> list[list[int]]:
        return [plain_generate(hf, [t], args.max_new_tokens, stop)[0] for t in texts[rows]]

    def plain_batched(rows: slice) -> list[list[int]]:
        chunk = texts[rows]
        return [
            row
            for start in range(0, len(chunk), args.batch_size)
            for row in plain_generate(hf, chunk[start : start + args.batch_size], args.max_new_tokens, stop)
        ]

    def moco_pool(rows: slice) -> list[str]:
        return [g.text for g in uncached.generate("m", prompts[rows], settings)]

    def joint_decoder(rows: slice) -> list[str]:
        return decoder.decode([texts[rows]], lambda lps: lps[0], settings, seeds[rows])

    warm = slice(0, min(args.batch_size, len(prompts)))
    for path in (per_prompt_loop, plain_batched, moco_pool, joint_decoder):
        path(warm)
    everything = slice(None)
    per_prompt, time_a, passes_a = timed(device, calls, args.repeats, lambda: per_prompt_loop(everything))
    batched, time_b, passes_b = timed(device, calls, args.repeats, lambda: plain_batched(everything))
    moco, time_c, passes_c = timed(device, calls, args.repeats, lambda: moco_pool(everything))

    cached_pool = pool_with(GenerationCache(scratch / "cache.sqlite"))
    cached_pool.load("m")
    cached_pool.generate("m", prompts, settings)
    made_before = cached_pool.stats.made
    served, time_d, passes_d = timed(device, calls, args.repeats, lambda: cached_pool.generate("m", prompts, settings))
    rerun_made = cached_pool.stats.made - made_before
    joint, time_e, passes_e = timed(device, calls, args.repeats, lambda: joint_decoder(everything))

    tokens_a = sum(len(r) for r in per_prompt)
    tokens_b = sum(len(r) for r in batched)
    reference = decode(hf, batched, stop)
    labels = [
        "(a) per-prompt model.generate",
        "(b) batched model.generate",
        "(c) moco ModelPool.generate, no cache",
        "(d) moco re-run from cache",
        "(e) moco JointDecoder, one model",
    ]
    seconds = [time_a, time_b, time_c, time_d, time_e]
    passes = [passes_a, passes_b, passes_c, passes_d, passes_e]
    rates = [tokens_a / time_a] + [tokens_b / s for s in seconds[1:]]
    print(f"model {model_path} on {device} ({uncached.dtype()}), {len(prompts)} prompts, batch {args.batch_size}")
    print(f"greedy, max_new_tokens {args.max_new_tokens}; generated tokens: per-prompt {tokens_a}, batched {tokens_b}")
    for label, rate, elapsed, count in zip(labels, rates, seconds, passes, strict=True):
        print(f"  {label:<40} {rate:>12.1f} tokens/s  {elapsed:8.3f} s  {count:>6} forward passes")
    print(f"moco/plain-batched  {rates[2] / rates[1]:.3f}")
    print(f"moco/per-prompt     {rates[2] / rates[0]:.3f}")
    print(f"joint/plain-batched {rates[4] / rates[1]:.3f}")
    print(f"cache re-run: {rerun_made} generations made, {len(served)} served")
    same_moco = sum(x == y for x, y in zip(moco, reference, strict=True))
    same_joint = sum(x == y for x, y in zip(joint, reference, strict=True))
    print(f"texts equal to plain batched (bf16 can flip near ties): moco {same_moco}, joint {same_joint}")


if __name__ == "__main__":
    main()
