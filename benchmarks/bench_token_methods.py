"""Token-level collaboration: moco's engines against the original's per-token full recompute.

For nudging (text exchange engine) and co_llm (joint decoder with a defer head), runs the same
greedy decoding (a) with moco's engine, batched, each model keeping its KV cache, and (b) with
a reference loop that, one prompt at a time, re-encodes and recomputes the whole prefix for
every token (as the original implementations did), and checks both give the same texts.  It
prints tokens per second of both and their ratio (target >= 15x), and the engine's time per
generated token against the sum of the two models' plain batched ``generate`` times per token
(target <= 1.3x).  The engines and the plain ``generate`` calls run in turn, best of
``--repeats`` rounds, so a machine whose speed drifts during the run moves both sides of a ratio.

The original nudging runs both models on the whole prefix at every step; the reference does the
same.  A second, leaner reference line runs only the models the hand-over rule reads that step
(the base at every step, the nudging model where it may write), for comparison.

    python benchmarks/bench_token_methods.py                 # two tiny random models, CPU
    python benchmarks/bench_token_methods.py --device cuda --prompts 64
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from moco_core.backends.hf import HFBackend, HFModel, adds_special_tokens, eos_ids, row_seed
from moco_core.engines.decoding import JointDecoder
from moco_core.engines.full_recompute import ReferenceExchange
from moco_core.engines.text_exchange import TextExchangeDecoder
from moco_core.testing import build_tiny_pool
from moco_core.types import GenerationRequest, GenerationSettings
from moco_methods_api.co_llm import DeferHook
from moco_methods_api.nudging import NudgingPolicy

GAMMA = 0.05
"""Low enough that the tiny random models' base keeps the pen for stretches, so both models write."""

SENTENCE = "the answer is a number between one and ten so think step by step and then write it down"


def make_prompts(count: int) -> list[str]:
    words = SENTENCE.split()
    return [f"Question {i}: " + " ".join(words[: 3 + (i * 7) % len(words)]) + "?" for i in range(count)]


def timed(run: Callable[[], Any], repeats: int = 1) -> tuple[Any, float, float]:
    """The result and the best wall and CPU times of ``repeats`` runs (shared machines swing by
    several x; CPU time swings less, so it is printed alongside)."""
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start, cpu = time.perf_counter(), time.process_time()
        result = run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best, best_cpu = min(best, time.perf_counter() - start), min(best_cpu, time.process_time() - cpu)
    return result, best, best_cpu


class EveryModelEveryStep(NudgingPolicy):
    """The original's per-step work: the nudging model also reads the rows the base keeps writing."""

    def __call__(self, view: Any) -> dict:
        base_mode = [p for p in view.active if not self.nudging.get(p, True)]
        choices = super().__call__(view)
        unread = [p for p in base_mode if not self.nudging.get(p, True) and choices[p].model == self.base]
        view.log_probs(self.nudger, unread)
        return choices


def interleaved(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[Any, float, float]]:
    """Per run, its result and best wall and CPU times over ``repeats`` rounds that take every run
    in turn, so a machine that speeds up or slows down meanwhile moves all of them alike and the
    ratios between them stay put."""
    best: dict[str, tuple[Any, float, float]] = {}
    for _ in range(repeats):
        for name, run in runs.items():
            result, seconds, cpu = timed(run)
            _, best_seconds, best_cpu = best.get(name, (None, float("inf"), float("inf")))
            best[name] = (result, min(seconds, best_seconds), min(cpu, best_cpu))
    return best


def nudging(models: list[HFModel], prompts: list[str], settings: GenerationSettings, reference: str = "") -> list[Any]:
    """``reference``: "" (the engine), "original" (both models every step) or "lean"."""
    decoder = ReferenceExchange(models, 1) if reference else TextExchangeDecoder(models, len(prompts))
    rendered = decoder.render(prompts, [None, None])
    seeds = [row_seed(settings.seed, GenerationRequest(p)) for p in prompts]
    policy = EveryModelEveryStep if reference == "original" else NudgingPolicy
    with torch.inference_mode():
        return decoder.decode(rendered, lambda: policy(0, 1, GAMMA), settings, seeds)


def co_llm_engine(models: list[HFModel], prompts: list[str], settings: GenerationSettings, head: Any) -> tuple:
    decoder = JointDecoder(models, len(prompts))
    rendered = decoder.render(prompts, [None, None])
    seeds = [row_seed(settings.seed, GenerationRequest(p)) for p in prompts]
    hook = DeferHook(head[0], head[1], 0.5, "none", "defer")
    texts = decoder.decode(rendered, lambda lp: lp[0], settings, seeds, step_hook=hook, hidden_states=[0])
    return texts, sum(hook.steps.values())


@torch.inference_mode()
def co_llm_reference(models: list[HFModel], prompts: list[str], settings: GenerationSettings, head: Any) -> tuple:
    """Per prompt, per token: full forward of both models on the whole prefix, no cache."""
    generator, assistant = models
    tokenizer = generator.tokenizer
    stop = eos_ids(generator) | eos_ids(assistant)
    texts, steps = [], 0
    for prompt in JointDecoder(models, 1).render(prompts, [None, None])[0]:
        ids = tokenizer(prompt, add_special_tokens=adds_special_tokens(tokenizer))["input_ids"]
        new: list[int] = []
        for _ in range(settings.max_new_tokens):
            batch = torch.tensor([ids + new], device=generator.device)
            out = generator.model(input_ids=batch, output_hidden_states=True)
            p = torch.sigmoid(out.hidden_states[-1][0, -1].float() @ head[0] + head[1])
            logits = assistant.model(input_ids=batch).logits[0, -1] if p > 0.5 else out.logits[0, -1]
            token = int(logits[: len(tokenizer)].argmax())
            steps += 1
            if token in stop:
                break
            new.append(token)
        texts.append(tokenizer.decode(new, skip_special_tokens=True).strip())
    return texts, steps


@torch.inference_mode()
def plain_generate(model: HFModel, prompts: list[str], settings: GenerationSettings) -> int:
    """One batched greedy ``generate``; returns the generated tokens (up to and including EOS)."""
    tokenizer = model.tokenizer
    texts = JointDecoder([model], 1).render(prompts, [None])[0]
    encoded = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    output = model.model.generate(
        **encoded.to(model.device),
        max_new_tokens=settings.max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    new = output[:, encoded["input_ids"].shape[1] :]
    return int((new != tokenizer.pad_token_id).sum())


def report(
    name: str, engine: tuple[int, float, float], reference: tuple[int, float, float], plain: tuple, target: str = ""
) -> None:
    """Speed-up over the reference and time per token against plain generate, by wall time (the
    targets) and by CPU time (in brackets: steadier on a shared machine)."""
    target = target or "(target >= 15x)"
    (tokens, seconds, cpu), (ref_tokens, ref_seconds, ref_cpu) = engine, reference
    speed, ref_speed = tokens / seconds, ref_tokens / ref_seconds
    cpu_speedup = (tokens / cpu) / (ref_tokens / ref_cpu)
    print(
        f"{name}: engine {tokens} tokens in {seconds:.2f}s = {speed:.0f} tok/s; "
        f"reference {ref_tokens} tokens in {ref_seconds:.2f}s = {ref_speed:.0f} tok/s; "
        f"speed-up {speed / ref_speed:.1f}x [CPU {cpu_speedup:.1f}x] {target}"
    )
    print(
        f"{name}: engine time per token / (sum of the two models' batched generate time per token) = "
        f"{(seconds / tokens) / plain[0]:.2f}x [CPU {(cpu / tokens) / plain[1]:.2f}x] (target <= 1.3x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--repeats", type=int, default=7, help="best of this many interleaved runs (engines and plain generate)"
    )
    parser.add_argument("--reference-repeats", type=int, default=1, help="best of this many reference runs (slow)")
    parser.add_argument("--models", nargs=2, default=None, help="two model folders sharing a tokenizer")
    args = parser.parse_args()
    torch.manual_seed(0)
    paths = args.models or [str(p) for p in build_tiny_pool(Path(tempfile.mkdtemp()) / "models", 2)]
    backend = HFBackend()
    models = [backend.load(str(p), args.device, "float32") for p in paths]
    prompts = make_prompts(args.prompts)
    settings = GenerationSettings(max_new_tokens=args.new_tokens, temperature=0.0, top_p=1.0, seed=0)
    hidden = models[0].model.config.hidden_size
    head = (torch.randn(hidden, device=models[0].device) * 0.5, torch.zeros(1, device=models[0].device))

    plain_generate(models[0], prompts[:2], settings)  # warm-up
    nudging(models, prompts[:2], settings)
    runs = {
        "plain 0": lambda: plain_generate(models[0], prompts, settings),
        "plain 1": lambda: plain_generate(models[1], prompts, settings),
        "nudging": lambda: nudging(models, prompts, settings),
        "co_llm": lambda: co_llm_engine(models, prompts, settings, head),
    }
    best = interleaved(runs, args.repeats)
    plain = [0.0, 0.0]
    for i, model in enumerate(models):
        tokens, seconds, cpu = best[f"plain {i}"]
        plain = [plain[0] + seconds / tokens, plain[1] + cpu / tokens]
        print(f"plain batched generate {Path(model.model.name_or_path).name}: {tokens} tokens in {seconds:.2f}s")

    fast, seconds, cpu = best["nudging"]
    count = sum(sum(r.tokens_by_model) for r in fast)
    shares = [sum(r.tokens_by_model[m] for r in fast) / count for m in range(2)]
    print(f"nudging: base wrote {shares[0]:.0%} of the tokens, the nudging model {shares[1]:.0%}")
    for reference, name in (("original", "nudging"), ("lean", "nudging vs lean reference")):
        slow, ref_seconds, ref_cpu = timed(
            lambda r=reference: nudging(models, prompts, settings, r), args.reference_repeats
        )
        assert [r.text for r in fast] == [r.text for r in slow], "nudging: engine and reference texts differ"
        ref_count = sum(sum(r.tokens_by_model) for r in slow)
        lean = "(for comparison: the target is against the original's reference)" if reference == "lean" else ""
        report(name, (count, seconds, cpu), (ref_count, ref_seconds, ref_cpu), plain, lean)

    (texts, steps), seconds, cpu = best["co_llm"]
    (ref_texts, ref_steps), ref_seconds, ref_cpu = timed(
        lambda: co_llm_reference(models, prompts, settings, head), args.reference_repeats
    )
    assert texts == ref_texts, "co_llm: engine and reference texts differ"
    report("co_llm", (steps, seconds, cpu), (ref_steps, ref_seconds, ref_cpu), plain)


if __name__ == "__main__":
    main()
