"""Built-in unlearning methods, one module each."""
