"""Specs of the conv_transpose chapter: to be written (each layer registers one Spec, in book order)."""
