"""moco methods at the logit level: models that share a vocabulary decode token by token together."""
