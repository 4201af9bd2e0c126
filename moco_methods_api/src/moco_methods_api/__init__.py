"""moco API-level methods: choosing or switching whole models per query."""
