"""Specs of the activations chapter: to be written (each layer registers one Spec, in book order)."""
