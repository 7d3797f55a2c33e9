"""Evaluation of one CLIP checkpoint on a SALMUBench benchmark directory.

Modules: ``data`` (benchmark loading and the official derived splits), ``encode`` (one cached
encoder pass per model), ``metrics`` (pure numpy metric functions), ``layout`` (the official JSON
layout and its flat table columns) and ``run`` (the ``salmu evaluate`` stage).
"""
