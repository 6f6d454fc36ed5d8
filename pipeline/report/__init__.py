"""The pseudo-label quality report: how good are the CLIP, SAM-refined and projected labels?

* :mod:`pipeline.metrics` (shared with the trainer) — confusion matrices and IoU (numpy).
* :mod:`pipeline.report.shard` — one shard's confusion matrices, coverage and overlay figure.
* :mod:`pipeline.report.merge` — one split's report (JSON, Markdown, PNG) from its shards.
* :mod:`pipeline.report.plots` — the figures (matplotlib, Agg).
* :mod:`pipeline.report.cli` — ``python -m pipeline report shard|merge``.
* :mod:`pipeline.report.closing` — the workflow's closing lines (the evaluations a run wrote).
"""
