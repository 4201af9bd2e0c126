"""Logging and progress-bar settings of the command line: quiet by default about third parties.

Loading a model prints transformers' and the hub's progress bars ("Loading weights") and
warnings that bury moco's own lines; they are hidden unless ``--verbose``. ``--quiet`` keeps
only errors and hides moco's own progress bar too.
"""

from __future__ import annotations

import logging
import os
import sys

QUIET, NORMAL, VERBOSE = -1, 0, 1
_THIRD_PARTY = ("transformers", "huggingface_hub", "datasets", "accelerate", "mergekit", "peft", "trl")


def configure_logging(verbosity: int = NORMAL) -> None:
    """Set moco's log level and silence third-party progress bars and chatter unless ``verbosity`` is VERBOSE."""
    level = {QUIET: logging.ERROR, NORMAL: logging.WARNING, VERBOSE: logging.INFO}[verbosity]
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "_moco", False)), None)
    if handler is None:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler._moco = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    handler.setLevel(level)  # file handlers (a sweep cell's run.log) may lower the root level; the console keeps this
    root.setLevel(level)
    for name in _THIRD_PARTY:
        logging.getLogger(name).setLevel(logging.NOTSET if verbosity == VERBOSE else logging.ERROR)
    if verbosity == VERBOSE:
        if "transformers" in sys.modules:
            from transformers.utils import logging as transformers_logging

            transformers_logging.enable_progress_bar()
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if "transformers" in sys.modules:  # already imported: its flags were read at import time
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()


def progress_enabled() -> bool:
    """Whether moco's own progress bars should show: a terminal, and not ``--quiet``."""
    return sys.stderr.isatty() and logging.getLogger().getEffectiveLevel() <= logging.WARNING
