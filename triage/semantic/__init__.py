"""Semantic triage: a multilingual sentence-embedding model and a small trained head, beside the keyword rules.

Django-free on purpose (stdlib, numpy and the embedding library only), so it can be imported by a worker, a
management command or a benchmark, and tested without a database. Start at `model.SemanticTriage`.
"""
