"""Specs of the dropout chapter: to be written (each layer registers one Spec, in book order)."""
