"""Specs of the recurrent chapter: to be written (each layer registers one Spec, in book order)."""
