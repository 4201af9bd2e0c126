"""moco methods at the logit level: models decode together token by token (one shared vocabulary) or,
across tokenizers, on a union vocabulary or one byte at a time."""
