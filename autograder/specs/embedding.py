"""Specs of the embedding chapter: to be written (each layer registers one Spec, in book order)."""
