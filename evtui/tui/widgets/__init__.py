"""Widgets, one module per panel of the main screen."""
