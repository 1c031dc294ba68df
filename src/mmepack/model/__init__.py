"""Reading a model repository: Triton configs against Triton's own schema, the packaging rules
every deployable must meet, the version file, and the weights DVC tracks. Nothing here writes;
later stages build on what it reads."""
