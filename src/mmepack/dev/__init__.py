"""The dev loop (`mmepack dev`): edit a model's step, see its cases answer in seconds, on a
local Triton that reloads only what changed. Not the production route: `./pants test` is."""
