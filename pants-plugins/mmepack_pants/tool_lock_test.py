"""The tool lockfile the plugin's wheel carries: the library's lock plus the mmepack wheel."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

from mmepack_pants.tool_lock import WHEELS_MAPPING, build_tool_lock, tool_requirement, wheel_facts

_THIRD_PARTY = """// header
//
// --- BEGIN PANTS LOCKFILE METADATA: DO NOT EDIT OR REMOVE ---
// {
//   "version": 3,
//   "valid_for_interpreter_constraints": ["CPython==3.11.*"],
//   "generated_with_requirements": ["numpy<2"]
// }
// --- END PANTS LOCKFILE METADATA ---
{
  "locked_resolves": [
    {"locked_requirements": [{"project_name": "numpy", "version": "1.26.4", "artifacts": []}],
     "platform_tag": null}
  ],
  "path_mappings": {},
  "requirements": ["numpy<2"],
  "style": "universal"
}
"""


def _wheel(version: str, name: str = "mmepack") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as wheel:
        wheel.writestr(
            f"{name.replace('-', '_')}-{version}.dist-info/METADATA",
            "Metadata-Version: 2.1\n"
            f"Name: {name}\n"
            f"Version: {version}\n"
            "Requires-Python: >=3.11,<3.12\n"
            "Requires-Dist: numpy (<2)\n"
            "Requires-Dist: nvidia-pytriton (==0.7.0) ; extra == 'serve'\n",
        )
    return out.getvalue()


def _split(text: str) -> tuple[dict, dict]:
    lines = text.splitlines()
    begin = lines.index("// --- BEGIN PANTS LOCKFILE METADATA: DO NOT EDIT OR REMOVE ---")
    end = lines.index("// --- END PANTS LOCKFILE METADATA ---")
    metadata = json.loads("\n".join(line[2:] for line in lines[begin + 1 : end]))
    body = json.loads("\n".join(line for line in lines if not line.startswith("//")))
    return metadata, body


def test_lock_pins_the_wheel_by_hash_behind_the_path_mapping() -> None:
    content = _wheel("1.2.3")
    facts = wheel_facts("mmepack-1.2.3-py3-none-any.whl", content)
    metadata, body = _split(build_tool_lock(_THIRD_PARTY, facts))

    # Pants accepts the default lockfile only if the tool's requirement was locked.
    assert tool_requirement("1.2.3") == "mmepack[serve]==1.2.3"
    assert "mmepack[serve]==1.2.3" in metadata["generated_with_requirements"]
    assert metadata["valid_for_interpreter_constraints"] == ["CPython==3.11.*"]
    assert "mmepack[serve]==1.2.3" in body["requirements"]
    assert WHEELS_MAPPING in body["path_mappings"]
    (entry,) = [
        r
        for r in body["locked_resolves"][0]["locked_requirements"]
        if r["project_name"] == "mmepack"
    ]
    assert entry["version"] == "1.2.3"
    assert entry["requires_python"] == ">=3.11,<3.12"
    assert "nvidia-pytriton (==0.7.0) ; extra == 'serve'" in entry["requires_dists"]
    (artifact,) = entry["artifacts"]
    assert artifact["hash"] == hashlib.sha256(content).hexdigest()
    assert artifact["url"] == "file://${MMEPACK_WHEELS}/mmepack-1.2.3-py3-none-any.whl"
    # The third-party pins stay as they are.
    names = [r["project_name"] for r in body["locked_resolves"][0]["locked_requirements"]]
    assert names == ["mmepack", "numpy"]


def test_every_wheel_of_ours_is_pinned_and_the_requirement_is_mmepack_s() -> None:
    contract = _wheel("1.2.3", name="mmepack-contract")
    metadata, body = _split(
        build_tool_lock(
            _THIRD_PARTY,
            wheel_facts("mmepack_contract-1.2.3-py3-none-any.whl", contract),
            wheel_facts("mmepack-1.2.3-py3-none-any.whl", _wheel("1.2.3")),
        )
    )
    names = [r["project_name"] for r in body["locked_resolves"][0]["locked_requirements"]]
    assert names == ["mmepack", "mmepack-contract", "numpy"]
    assert "mmepack[serve]==1.2.3" in metadata["generated_with_requirements"]


def test_a_rebuilt_wheel_replaces_the_old_entry() -> None:
    first = build_tool_lock(
        _THIRD_PARTY, wheel_facts("mmepack-1.0.0-py3-none-any.whl", _wheel("1.0.0"))
    )
    second = build_tool_lock(first, wheel_facts("mmepack-1.0.1-py3-none-any.whl", _wheel("1.0.1")))
    _, body = _split(second)
    versions = [
        r["version"]
        for r in body["locked_resolves"][0]["locked_requirements"]
        if r["project_name"] == "mmepack"
    ]
    assert versions == ["1.0.1"]


def test_a_lock_without_pants_metadata_is_refused_with_the_fix() -> None:
    try:
        build_tool_lock('{"locked_resolves": []}', wheel_facts("m.whl", _wheel("1.0.0")))
    except ValueError as error:
        assert "generate-lockfiles" in str(error)
    else:
        raise AssertionError("a lockfile without Pants' metadata header was accepted")
