"""Attacks that test whether forgetting holds (ours, beyond the paper): relearning, precision and
association inference, each run on the unlearned models and on Clean and Compromised."""
