"""User-facing errors: one line naming the field or file; the CLI exits with code 2."""


class MocoError(Exception):
    """Bad input (config, data file, model path, plugin): reported as one line, exit code 2."""


class MissingCapabilityError(MocoError):
    """No installed plugin implements a capability (training, merging) a method needs."""
