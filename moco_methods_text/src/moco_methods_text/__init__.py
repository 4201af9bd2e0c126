"""moco text-level methods: models exchanging generated text."""
