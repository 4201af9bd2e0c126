"""Shared decoding engines: joint decoding, text exchange, vocabulary alignment, byte level, PSO."""

ENGINE_VERSION = 2
"""Bumped whenever what a decoding engine returns for the same inputs changes (2: sliding-window
attention read exactly where rows are fed unevenly), so cached outputs of an older engine are
not served; methods put it in the cache keys of whatever an engine decoded."""
