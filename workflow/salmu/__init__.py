"""SALMUBench reproduction pipeline."""
