"""Response banks: precomputed per-(query, model) responses, scores and costs, for offline routing research.

A bank is one benchmark-format JSON file of task type ``bank``: each item carries, under
``bank``, every model's response, score and cost for that query. The same file is the dataset
of a run and, through the ``bank`` backend, the pool's "generations", so routers and voting
methods run on it with zero generation and are scored by the bank's own scores.
"""
