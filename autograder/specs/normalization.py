"""Specs of the normalization chapter: to be written (each layer registers one Spec, in book order)."""
