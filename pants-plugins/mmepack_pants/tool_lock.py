"""The lockfile the plugin installs mmepack from (`[mmepack]`, a Python tool like `[black]`).

A consumer repository names the plugin in `[GLOBAL].plugins` and nothing else about mmepack's
own Python: the `mmepack-pants` wheel carries `mmepack_pants/mmepack.lock`, and Pants installs
the tool from it (`default_lockfile_resource`), the way it installs black from the lockfile in
its own wheel. The lock pins exactly what this repository tests with: it is this repository's
third-party lockfile (3rdparty/python/default.lock, the resolve the library is built and tested
in) plus one entry for each wheel of ours it needs (`mmepack`, `mmepack-contract`) built in the
same `./pants package` run.

That wheel is on no index. Its entry points at `file://${MMEPACK_WHEELS}/<wheel>`, a pex path
mapping: the consumer's `[python-repos].path_mappings = ["MMEPACK_WHEELS|<folder>"]` says where
the folder of wheels is on that machine (the same folder as `[python-repos].find_links`, which
Pants resolves the plugin from). The sha256 in the lock is the wheel's, so a wheel from another
build (or another version) is refused by pex rather than installed silently.

The lock is generated (a codegen target, `mmepack_tool_lock` in pants-plugins/BUILD), never
committed: it must hash the very wheel beside it in `dist/`.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from typing import Any, Dict, List, Optional, Tuple

from pants.backend.python.subsystems.setuptools import PythonDistributionFieldSet
from pants.core.target_types import ResourceSourceField
from pants.engine.addresses import UnparsedAddressInputs
from pants.engine.fs import CreateDigest, FileContent, GlobMatchErrorBehavior, PathGlobs
from pants.engine.rules import collect_rules, rule
from pants.engine.target import (
    COMMON_TARGET_FIELDS,
    GeneratedSources,
    GenerateSourcesRequest,
    MultipleSourcesField,
    StringField,
    StringSequenceField,
    Target,
)
from pants.engine.unions import UnionRule
from pants.util.strutil import softwrap

from mmepack_contract import ERROR_PREFIX
from mmepack_pants import engine

# The plugin's own distribution (its version is the tool's: subsystem.py, dist_version.py). Here,
# in a module that imports no other of the plugin's but engine.py (which imports none that imports
# the subsystem), so the subsystem can read it at import.
PLUGIN_DISTRIBUTION = "mmepack-pants"
# The pex path mapping the lock's `mmepack` artifact is written against.
WHEELS_MAPPING = "MMEPACK_WHEELS"
# Where the lock lands in the plugin wheel: `resource://mmepack_pants/mmepack.lock`.
LOCK_PACKAGE = "mmepack_pants"
LOCK_RESOURCE = "mmepack.lock"
_OUTPUT_PATH = f"pants-plugins/{LOCK_PACKAGE}/{LOCK_RESOURCE}"
_METADATA_BEGIN = "// --- BEGIN PANTS LOCKFILE METADATA: DO NOT EDIT OR REMOVE ---"
_METADATA_END = "// --- END PANTS LOCKFILE METADATA ---"


def tool_requirement(version: Optional[str]) -> str:
    """What the plugin installs by default: the library with the server packages, since the case
    runner (`test`) needs them and all three programs come from one install."""
    return f"mmepack[serve]=={version}" if version else "mmepack[serve]"


@dataclass(frozen=True)
class WheelFacts:
    """What the lock needs to know about the `mmepack` wheel."""

    filename: str
    name: str
    version: str
    sha256: str
    requires_dists: Tuple[str, ...]
    requires_python: str


def wheel_facts(filename: str, content: bytes) -> WheelFacts:
    """Name, version and requirements from the wheel's own METADATA (not from BUILD files), so
    the lock says what pip would read."""
    with zipfile.ZipFile(io.BytesIO(content)) as wheel:
        metadata_paths = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        if len(metadata_paths) != 1:
            raise ValueError(
                f"{ERROR_PREFIX} {filename}: expected one *.dist-info/METADATA, found "
                f"{len(metadata_paths)}; is it a wheel built by `./pants package`?"
            )
        message = Parser().parsestr(wheel.read(metadata_paths[0]).decode("utf-8"))
    return WheelFacts(
        filename=filename,
        name=message["Name"],
        version=message["Version"],
        sha256=hashlib.sha256(content).hexdigest(),
        requires_dists=tuple(message.get_all("Requires-Dist") or ()),
        requires_python=message.get("Requires-Python") or "",
    )


def _split_lock(text: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """A Pants pex lockfile: `//` comment header holding the metadata JSON, then pex's JSON."""
    lines = text.splitlines()
    try:
        begin, end = lines.index(_METADATA_BEGIN), lines.index(_METADATA_END)
    except ValueError:
        raise ValueError(
            f"{ERROR_PREFIX} the third-party lockfile has no Pants metadata header; regenerate it "
            "with `./pants generate-lockfiles`"
        ) from None
    metadata = json.loads(
        "\n".join(
            line[3:] if line.startswith("// ") else line[2:] for line in lines[begin + 1 : end]
        )
    )
    body = json.loads("\n".join(line for line in lines if not line.startswith("//")))
    return metadata, body


def _comment(text: str) -> List[str]:
    return [f"// {line}" if line else "//" for line in text.splitlines()]


def build_tool_lock(third_party_lock: str, *wheels: WheelFacts) -> str:
    """The tool lockfile: `third_party_lock` (a universal Pants pex lock of the library's
    requirements) plus the `mmepack` wheel, pinned by hash at `file://${MMEPACK_WHEELS}/...`.

    Pants validates a tool's default lockfile by its requirements (the tool's requirement must
    be among `generated_with_requirements`), and the plugin asks pex for that requirement alone,
    so pex installs only the closure of `mmepack[serve]` from the larger lock.
    """
    metadata, body = _split_lock(third_party_lock)
    [wheel] = [w for w in wheels if w.name == "mmepack"] or [wheels[0]]
    requirement = tool_requirement(wheel.version)
    resolves = body.get("locked_resolves") or []
    if len(resolves) != 1 or body.get("style") != "universal":
        raise ValueError(
            f"{ERROR_PREFIX} the third-party lockfile: expected one universal resolve "
            f"(style 'universal'), found {len(resolves)} of style {body.get('style')!r}"
        )
    ours = {w.name for w in wheels}
    locked = [r for r in resolves[0]["locked_requirements"] if r["project_name"] not in ours]
    for built in wheels:
        locked.append(
            {
                "artifacts": [
                    {
                        "algorithm": "sha256",
                        "hash": built.sha256,
                        "url": f"file://${{{WHEELS_MAPPING}}}/{built.filename}",
                    }
                ],
                "project_name": built.name,
                "requires_dists": list(built.requires_dists),
                "requires_python": built.requires_python or None,
                "version": built.version,
            }
        )
    locked.sort(key=lambda r: r["project_name"])
    body["locked_resolves"] = [{**resolves[0], "locked_requirements": locked}]
    body["requirements"] = sorted({*body.get("requirements", []), requirement})
    body["path_mappings"] = {
        WHEELS_MAPPING: "the folder holding the mmepack wheels ([python-repos].find_links)"
    }
    metadata["generated_with_requirements"] = sorted(
        {*metadata.get("generated_with_requirements", []), requirement}
    )
    header = [
        f"// The lockfile of the mmepack {wheel.version} tool, generated by the mmepack-pants",
        "// build (mmepack_pants/tool_lock.py) from its third-party lockfile and the mmepack",
        "// wheel it was built with. Needs [python-repos].path_mappings = "
        f'["{WHEELS_MAPPING}|<folder of the wheels>"].',
        "//",
        _METADATA_BEGIN,
        *_comment(json.dumps(metadata, indent=2, sort_keys=True)),
        _METADATA_END,
    ]
    return "\n".join([*header, json.dumps(body, indent=2, sort_keys=True), ""])


class MmepackToolLockSourceField(MultipleSourcesField):
    """The generator's input, never set: the lockfile is read from `third_party_lockfile`,
    since a `python_distribution` only owns targets in or below its own folder."""

    default = ()
    help = "Unused (the lockfile comes from `third_party_lockfile`)."


class MmepackToolLockThirdPartyField(StringField):
    alias = "third_party_lockfile"
    required = True
    help = softwrap(
        """
        Path from the build root of the Pants lockfile (a universal pex lock) of the resolve the
        library is built and tested in.
        """
    )


class MmepackToolLockDistributionsField(StringSequenceField):
    alias = "distributions"
    required = True
    help = softwrap(
        """
        Addresses of the `python_distribution`s of this repository's wheels the tool installs
        (`mmepack` and what it requires of ours, `mmepack-contract`): each is pinned by hash.
        """
    )


class MmepackToolLockTarget(Target):
    alias = "mmepack_tool_lock"
    core_fields = (
        *COMMON_TARGET_FIELDS,
        MmepackToolLockSourceField,
        MmepackToolLockThirdPartyField,
        MmepackToolLockDistributionsField,
    )
    help = softwrap(
        f"""
        The `{LOCK_PACKAGE}/{LOCK_RESOURCE}` resource of the mmepack-pants wheel: the lockfile
        a consumer repository installs the mmepack tool from (mmepack_pants/tool_lock.py).
        Only the mmepack repository itself declares one.
        """
    )


class GenerateToolLockRequest(GenerateSourcesRequest):
    input = MmepackToolLockSourceField
    output = ResourceSourceField


@rule(desc="Generate the mmepack tool lockfile")
async def generate_tool_lock(request: GenerateToolLockRequest) -> GeneratedSources:
    target = request.protocol_target
    dist_specs = target[MmepackToolLockDistributionsField].value
    lock_path = target[MmepackToolLockThirdPartyField].value
    assert dist_specs and lock_path is not None
    dists = await engine.targets(
        UnparsedAddressInputs(
            dist_specs,
            owning_address=target.address,
            description_of_origin=f"the `distributions` field of {target.address}",
        )
    )
    third_party = await engine.contents_of(
        PathGlobs(
            [lock_path],
            glob_match_error_behavior=GlobMatchErrorBehavior.error,
            description_of_origin=f"the `third_party_lockfile` field of {target.address}",
        )
    )
    built = await engine.built_distributions(PythonDistributionFieldSet.create(d) for d in dists)
    all_contents = await engine.contents_each(b.digest for b in built)
    facts = []
    for dist, contents in zip(dists, all_contents):
        wheels = [c for c in contents if c.path.endswith(".whl")]
        if len(wheels) != 1:
            raise ValueError(
                f"{ERROR_PREFIX} {target.address}: expected {dist.address} to build one wheel, "
                f"got {[c.path for c in contents]}; set `wheel=True, sdist=False` on it"
            )
        facts.append(wheel_facts(wheels[0].path.rsplit("/", 1)[-1], wheels[0].content))
    text = build_tool_lock(third_party[0].content.decode("utf-8"), *facts)
    digest = await engine.create(CreateDigest([FileContent(_OUTPUT_PATH, text.encode("utf-8"))]))
    return GeneratedSources(await engine.snapshot_of(digest))


def rules():
    return [*collect_rules(), UnionRule(GenerateSourcesRequest, GenerateToolLockRequest)]
