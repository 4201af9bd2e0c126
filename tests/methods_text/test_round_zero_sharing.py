"""Round 0 (every model answers the task prompt) is one request shared by every method through the cache."""

from __future__ import annotations

from collections import Counter

SHARING = [
    ("majority_vote", {}),
    ("multiagent_debate", {"rounds": 2}),
    ("multiagent_refine", {"rounds": 2}),
    ("multiagent_feedback", {"rounds": 2}),
    ("llm_blender", {}),
    ("mixture_of_agents", {}),
    ("slm_mux", {"samples_per_model": 2}),
    ("self_consistency", {"samples": 2}),
]


def test_round_zero_and_dev_answers_are_generated_once_for_all_methods(text):
    models = text.pool({n: (lambda r, n=n: f"A from {n} sample {r.sample}: {r.prompt[:30]}") for n in "abc"})
    data = text.data(n_test=3, n_dev=2)
    for method, params in SHARING:
        text.ok(method, models, params, data=data, out=method)
    for name in "abc":
        plain = Counter(
            (r.prompt, r.sample, r.system_prompt) for r in text.seen[name] if r.prompt.startswith(("test", "dev"))
        )
        assert {(p, s) for p, s, _ in plain} >= {(f"test question {i}", 0) for i in range(3)}
        assert set(plain.values()) == {1}, f"{name} generated a round-0 or dev request twice"
    made = [text.metrics(m)["generations"]["made"] for m, _ in SHARING]
    assert made[0] == 15  # majority vote: 3 models x (3 test + 2 dev) items
    assert text.metrics("multiagent_debate")["generations"]["cached"] == 15  # round 0 and dev answers
    assert made[2] == 0  # multiagent_refine repeats multiagent_debate's requests exactly
