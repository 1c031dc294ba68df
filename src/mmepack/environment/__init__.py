"""The Python backend environment of a model: resolve, build, slim, pack, prove and cache it.

This subpackage (plus `mmepack.triton` for the proof) is all the environment-builder PEX
carries, so Pants' cache of an environment build depends on nothing else in mmepack."""
