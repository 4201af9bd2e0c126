"""moco's evaluation plugin: benchmark datasets and the scorers of their task types.

Everything importable from here is pure Python (no torch), so registering the plugin and
scoring outputs stay cheap.
"""

__version__ = "0.1.0"
