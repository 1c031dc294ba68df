"""Load test a multi-model endpoint and pick its autoscaling threshold.

Multi-model endpoints scale on invocations per instance (CloudWatch's
`SageMakerVariantInvocationsPerInstance`). The target for that metric is a trade-off between
latency and cost that teams otherwise find by hand. This stage sweeps offered load (concurrent
callers) against one endpoint, measures throughput and latency percentiles at each level, picks
the highest invocations per minute per instance that keeps p99 under a target (less a safety
margin), and writes the Application Auto Scaling policy that applies it.

One driver serves both the local endpoint (`mmepack.endpoint`) and a real SageMaker endpoint:
both are called through boto3's `sagemaker-runtime` `invoke_endpoint`, the local one by
`endpoint_url` on loopback.

Modules, one job each:
- `plan`: the sweep's bounds (levels, seconds and requests per level) and the traffic mix
- `payload`: request bodies from a payload file, typed by the model's own config
- `driver`: a bounded pool of caller threads per level; one sample per request
- `stats`: percentiles, throughput and errors per level; cold loads apart from warm latency
- `recommend`: the chosen level, the target value and the target-tracking policy
- `report`: CSV, PNG plot, self-contained HTML page and JSON summary
- `cli`: `mmepack loadtest`
"""
