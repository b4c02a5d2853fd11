"""Specs of the conv chapter: to be written (each layer registers one Spec, in book order)."""
