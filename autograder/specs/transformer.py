"""Specs of the transformer chapter: to be written (each layer registers one Spec, in book order)."""
