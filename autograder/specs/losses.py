"""Specs of the losses chapter: to be written (each layer registers one Spec, in book order)."""
