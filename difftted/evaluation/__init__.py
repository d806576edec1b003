"""Evaluating generated motion: the metrics (``metrics``) and the table command (``evaluate``)."""
