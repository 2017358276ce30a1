"""Trace formats: one module per format behind one small reader protocol."""
