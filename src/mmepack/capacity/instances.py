"""Memory, GPU memory and local disk of common multi-model endpoint instance types.

Source: AWS's public instance specifications (Amazon EC2 instance type pages for G4dn, G5, M5
and C5, and the AWS Batch GPU-jobs table of GPU memory per instance), read 2026-12-06. SageMaker
`ml.` types run on the EC2 type of the same name. G4dn and G5 carry NVMe instance storage,
which SageMaker uses as the model volume; M5 and C5 are EBS-only, so their disk is the endpoint's
volume and comes from `--disk-gb`. An unknown type takes every figure from the flags.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE = (
    "AWS public instance specifications (EC2 G4dn/G5/M5/C5 instance type pages; AWS Batch "
    "GPU jobs table), read 2026-12-06"
)
GIB = 1024**3
GB = 1000**3


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_bytes: int
    gpu_memory_bytes: int  # 0: no GPU
    disk_bytes: int | None  # None: EBS-only, the volume size is the endpoint's choice


def _t(name: str, vcpus: int, memory_gib: int, gpu_gib: int, disk_gb: int | None) -> InstanceType:
    return InstanceType(
        name, vcpus, memory_gib * GIB, gpu_gib * GIB, None if disk_gb is None else disk_gb * GB
    )


INSTANCE_TYPES: dict[str, InstanceType] = {
    t.name: t
    for t in (
        _t("ml.g4dn.xlarge", 4, 16, 16, 125),
        _t("ml.g4dn.2xlarge", 8, 32, 16, 225),
        _t("ml.g5.xlarge", 4, 16, 24, 250),
        _t("ml.g5.2xlarge", 8, 32, 24, 450),
        _t("ml.m5.xlarge", 4, 16, 0, None),
        _t("ml.m5.2xlarge", 8, 32, 0, None),
        _t("ml.c5.2xlarge", 8, 16, 0, None),
    )
}
