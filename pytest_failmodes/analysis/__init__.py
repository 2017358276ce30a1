"""The error-analysis tools behind ``failmodes <verb>``: review, synth, axial,
reasons, slices, cooccur, steps.

They use the engine, the readers, the model runner and the stats; the pytest
plugin never imports this package.
"""
