"""Specs of the flatten chapter: to be written (each layer registers one Spec, in book order)."""
