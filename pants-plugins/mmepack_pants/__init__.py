"""Pants plugin for mmepack: target types, options and rules that call the mmepack library."""
