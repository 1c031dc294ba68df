"""The Triton Inference Server: which release the artifacts target (and its stubs), where the
local binary is, and running it as a child process that never outlives its owner."""
