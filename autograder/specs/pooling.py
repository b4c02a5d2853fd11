"""Specs of the pooling chapter: to be written (each layer registers one Spec, in book order)."""
