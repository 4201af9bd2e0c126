"""mentor_collab's ``mlp`` judge: a classifier read from ``params.mlp_path``, checked before generation.

Two formats.  The published MentorCollab MLPs (github.com/haojinw0027/Mentorcollab,
``BranchPredictionMLP``; weights on the Hub as SeanWang0027/MentorCollab-MLP) are a plain
``torch.save`` state dict (``.pth``; a ``.safetensors`` file of the same tensors works too) of
``mlp`` = torchvision's ``MLP(d, [2d, d, d/2], norm_layer=BatchNorm1d, activation=ReLU)`` then
``linear`` (d/2 -> 1) and a sigmoid; ``d`` is the hidden size of the model it reads.  The layer
widths are read back from the tensors, so other widths of the same shape of network load too.
A TorchScript module mapping hidden states ``(n, d)`` to one logit each is the other format.

The input, as in the original, is the generator's last-layer hidden state at the end of its
text followed by the consultation sentence naming both candidates (``decision_text``); the
score is the sigmoid of the classifier's logit, and the generator's candidate is kept when the
score exceeds ``mlp_threshold``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import torch

from moco_core.errors import MocoError

Classifier = Callable[[torch.Tensor], torch.Tensor]
"""Hidden states ``(n, d)`` -> one logit per row."""

CONSULT = (
    "\nNow I will choose the next sequence that could lead to the correct answer. "
    "Option (A): {own}, Option (B): {mentor}. "
)
"""The original's consultation text, up to the "My choice: Option (" where it reads the hidden state."""

_LAYER = re.compile(r"^mlp\.(\d+)\.(weight|bias|running_mean|running_var|num_batches_tracked)$")


def decision_text(text: str, own: str, mentor: str) -> str:
    """The generator's text at the decision point: the answer so far, then both candidates."""
    return text + CONSULT.format(own=own, mentor=mentor)


class BranchMLP(torch.nn.Module):
    """The published ``BranchPredictionMLP`` without its final sigmoid (moco applies it)."""

    def __init__(self, widths: list[int], dropout: float = 0.1) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        for i, (width_in, width_out) in enumerate(pairwise(widths)):
            layers.append(torch.nn.Linear(width_in, width_out))
            if i < len(widths) - 2:
                layers += [torch.nn.BatchNorm1d(width_out), torch.nn.ReLU(), torch.nn.Dropout(dropout)]
            else:
                layers.append(torch.nn.Dropout(dropout))
        self.mlp = torch.nn.Sequential(*layers)
        self.linear = torch.nn.Linear(widths[-1], 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(self.mlp(hidden)).squeeze(-1)


def _widths(state: dict[str, torch.Tensor]) -> list[int] | None:
    """Layer widths [d, 2d, d, d/2] from a BranchPredictionMLP state dict (None: not one)."""
    linear = sorted(
        int(m.group(1))
        for key, value in state.items()
        if (m := _LAYER.match(key)) and m.group(2) == "weight" and value.dim() == 2
    )
    if not linear or "linear.weight" not in state or linear != list(range(0, 4 * len(linear), 4)):
        return None
    return [state[f"mlp.{linear[0]}.weight"].shape[1]] + [state[f"mlp.{i}.weight"].shape[0] for i in linear]


def _read_tensors(path: Path) -> dict[str, torch.Tensor] | None:
    """The file's tensors when it is a state dict (``torch.save`` or safetensors), else None."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception:  # safetensors raises its own error types for a damaged header
            return None
    try:
        with warnings.catch_warnings():  # torch.load notes when a file is TorchScript; we try that next
            warnings.simplefilter("ignore")
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # not a torch.save pickle (TorchScript archives and junk both end here)
        return None
    if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
        return {str(k): v for k, v in state.items()}
    return None


def _from_state_dict(path: Path, state: dict[str, torch.Tensor]) -> Classifier:
    widths = _widths(state)
    if widths is None:
        raise MocoError(
            f"params.mlp_path: {path} holds tensors but not a MentorCollab BranchPredictionMLP state dict "
            "(mlp.0/4/8.weight and linear.weight)"
        )
    model = BranchMLP(widths)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise MocoError(f"params.mlp_path: {path}: {str(exc).splitlines()[0]}") from None
    return model.eval()


def load_classifier(path_text: str, hidden_size: int, generator: str) -> Classifier:
    """The classifier at ``params.mlp_path``, refused in one line unless it reads ``hidden_size``-wide states."""
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise MocoError(f"params.mlp_path: {path} is not a file")
    state = _read_tensors(path)
    if state is not None:
        classifier = _from_state_dict(path, state)
        width = state["mlp.0.weight"].shape[1]
        if width != hidden_size:
            raise MocoError(
                f"params.mlp_path: the MLP reads {width}-wide hidden states but {generator}'s hidden size is "
                f"{hidden_size} (use the MLP trained on this generator)"
            )
    else:
        try:
            classifier = torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, ValueError) as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MocoError(
                f"params.mlp_path: {path} is neither a MentorCollab MLP state dict nor a TorchScript module ({detail})"
            ) from None
    try:
        with torch.no_grad():
            probe = classifier(torch.zeros((2, hidden_size)))
    except Exception as exc:  # any shape error a user's TorchScript module raises
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MocoError(
            f"params.mlp_path: the classifier does not read {generator}'s {hidden_size}-wide hidden states ({detail})"
        ) from None
    if probe.numel() != 2:
        raise MocoError(
            f"params.mlp_path: the classifier must give one logit per row, got shape {tuple(probe.shape)} for 2 rows"
        )
    return classifier
