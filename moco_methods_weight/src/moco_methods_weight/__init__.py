"""moco weight-level methods: models combined in parameter space (same architecture required)."""
