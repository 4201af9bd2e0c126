"""Shared decoding engines: joint decoding, text exchange, vocabulary alignment, byte level, PSO."""

ENGINE_VERSION = 3
"""Bumped whenever what a decoding engine returns for the same inputs changes (2: sliding-window
attention read exactly where rows are fed unevenly; 3: the text exchange feeds a character still
being written as its bytes, not as U+FFFD), so cached outputs of an older engine are
not served; methods put it in the cache keys of whatever an engine decoded."""
