"""What each model costs a multi-model endpoint: measured at test time, budgeted, planned.

An MME still has to be sized (instance type, how many models stay resident, how long a cold
model takes to answer), and neither Triton's per-GPU metrics nor CloudWatch's endpoint-wide MME
metrics say what one model costs. The model tests already load every artifact on the local
endpoint, so they measure it there.

Modules, one job each:
- `measure`: the figures of one load (cold load, PSS host memory, shared memory, disk, GPU)
- `budget`: the repo-wide default budgets and the check a model test fails on
- `record`: `<artifact>.capacity.json` beside the artifact, and finding it again for publish
- `instances`: memory, GPU memory and disk of common MME instance types, with their source
- `plan`: how many models fit an instance, which go first, the shm settings they need
- `command`: `mmepack capacity`
"""
