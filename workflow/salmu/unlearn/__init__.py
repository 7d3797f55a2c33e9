"""Unlearning methods behind one interface; ``salmu unlearn`` runs one of them."""
