"""Helpers of bench/h200_rehearsal.py: the real tokenizer, representative rows, runs, the report."""
