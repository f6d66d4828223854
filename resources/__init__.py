"""Shipped assets: the default model weights and card, icons, Qt style (package data)."""
