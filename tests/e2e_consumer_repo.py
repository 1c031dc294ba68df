"""mmepack adopted by a repository of its own, from the wheels, as the install page says.

Issue 28. This builds the three wheels of this checkout (`./pants package src/mmepack:dist
src/mmepack_contract:dist pants-plugins:dist`), then makes a fresh git repository that is not a clone of this one:

- `pants.toml` and the root `BUILD` are the ```` ```toml title="pants.toml" ```` and
  ```` ```text title="BUILD" ```` blocks of `docs/getting-started/install.md`, as written (the
  consumer's own settings are added after them: its interpreter constraints);
- the `./pants` launcher, the wheels in `3rdparty/mmepack/` (the page's find-links folder);
- one model, the example `risk_score` without its BUILD files (tailor writes them), whose ONNX
  weights DVC tracks on a local remote of the consumer's own (the objects copied from this
  repository's remote, pulled by the build through real DVC);
- some Python code of its own with its own black settings (line length 79, Pants' default
  black) and no mypy backend; nothing from `src/` or `pants-plugins/`.

It runs `tailor`, `fmt`, `lint`, `check`, `package`, `test` and `publish` (to a staging bucket
on a moto S3 server on loopback) there, each green, and checks the fixes the issue lists:
no BUILD in a version folder, no `skip_mypy` without the mypy backend, no `/` source root, the
programs built from the plugin's tool lockfile (never the consumer's resolve), `lock-envs`
with the library's default Python. The artifact must be byte for byte the one this checkout's
own CLI (built from sources, `[mmepack].from_sources`) writes from the same model folder.

Then the upgrade: wheels rebuilt from a temporary copy of this checkout with the patch version
bumped, put into the find-links folder beside the old ones, `[GLOBAL].plugins` pinned to the new
version: the consumer's test record names the new mmepack and `package` still works.

Cost: minutes (two wheel builds, a fresh Pants build root twice). It uses the machine's caches
(`~/.cache/pants`, the launcher's `~/.cache/mmepack`), so nothing re-downloads Pants. Run it as

    python3.11 -m tests.e2e_consumer_repo      # from the checkout's root; ci/consumer.sh
    MMEPACK_CONSUMER_KEEP=/tmp/c python3.11 -m tests.e2e_consumer_repo   # keeps it, logs/

It needs only the standard library and Python 3.11, plus moto[server] for the publish phase.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
if str(CHECKOUT) not in sys.path:  # `python3.11 tests/e2e_consumer_repo.py` works as well
    sys.path.insert(0, str(CHECKOUT))

from tests.e2e_newcomer_clone import Steps, _python311, _s3, _sha256, _start_moto  # noqa: E402

PAGE = CHECKOUT / "docs/getting-started/install.md"
MODEL = "risk_score"
WHEELS = "3rdparty/mmepack"
VERSION_FILE = "src/mmepack/__init__.py"
_BLOCK = r"^```{lang} title=\"{title}\"[ \t]*\n(.*?)^```[ \t]*$"
_VERSION_RE = re.compile(r'^__version__ = "([^"]+)"$', re.MULTILINE)
_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
_PLUGIN_PIN = re.compile(r'"mmepack-pants==([^"]+)"')

# The consumer's own code: formatted for its own black (line length 79), tested by pytest.
_OWN_CODE = {
    "pyproject.toml": "[tool.black]\nline-length = 79\n",
    "src/pricing/__init__.py": "",
    "src/pricing/discount.py": (
        '"""A consumer\'s own module, formatted by its own black settings."""\n\n\n'
        "def discounted(price: float, percent: float) -> float:\n"
        '    """The price after `percent` off, never below zero."""\n'
        "    return max(\n"
        "        0.0, price * (1 - percent / 100) - 0.0 * len(str(price)) * percent\n"
        "    )\n"
    ),
    "src/pricing/discount_test.py": (
        "from pricing.discount import discounted\n\n\n"
        "def test_discounted() -> None:\n"
        "    assert discounted(200.0, 25.0) == 150.0\n"
    ),
}


class Runner(Steps):
    """Steps that keep their logs in the work folder and can run in another folder (the
    checkout, to build the wheels), timing every command in one list."""

    def __init__(self, clone: Path, env: dict[str, str], logs: Path) -> None:
        super().__init__(clone, env)
        self.logs = logs

    def log(self, name: str, output: str) -> None:
        self.logs.mkdir(exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]
        (self.logs / f"{len(self.seconds):02d}-{slug}.log").write_text(output)

    def elsewhere(self, folder: Path) -> Runner:
        other = Runner(folder, self.env, self.logs)
        other.seconds = self.seconds
        return other


def page_block(lang: str, title: str) -> str:
    """The install page's block `title` (the page is the consumer's configuration)."""
    pattern = re.compile(_BLOCK.format(lang=lang, title=re.escape(title)), re.M | re.S)
    found = pattern.findall(PAGE.read_text())
    assert len(found) == 1, f'{PAGE}: expected one ```{lang} title="{title}" block'
    return str(found[0])


def checkout_version(root: Path) -> str:
    found = _VERSION_RE.search((root / VERSION_FILE).read_text())
    assert found, f"{root / VERSION_FILE}: no __version__ line"
    return found.group(1)


def build_wheels(root: Path, steps: Runner) -> dict[str, Path]:
    """`./pants package` of the two distributions in `root`; the wheels it wrote, by name."""
    steps.elsewhere(root).pants(
        f"build wheels ({checkout_version(root)})",
        "package",
        "src/mmepack:dist",
        "src/mmepack_contract:dist",
        "pants-plugins:dist",
    )
    version = checkout_version(root)
    wheels = {
        name: root / "dist" / f"{name}-{version}-py3-none-any.whl"
        for name in ("mmepack", "mmepack_contract", "mmepack_pants")
    }
    for wheel in wheels.values():
        assert wheel.is_file(), f"{wheel} was not built"
    return wheels


def bumped_copy(workdir: Path) -> Path:
    """This checkout's files (tracked and untracked, not ignored) in a temporary folder, with
    the patch version raised by one: the next release, built without touching the checkout."""
    copy = workdir / "next-release"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=CHECKOUT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        source = CHECKOUT / raw.decode()
        if source.is_file():
            target = copy / raw.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    version = checkout_version(copy)
    major, minor, patch = version.split(".")[:3]
    bumped = f"{major}.{minor}.{int(patch) + 1}"
    path = copy / VERSION_FILE
    path.write_text(path.read_text().replace(f'"{version}"', f'"{bumped}"'))
    return copy


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def make_consumer(workdir: Path, wheels: dict[str, Path]) -> Path:
    """A fresh repository (git init, not a clone) laid out as the install page says."""
    repo = workdir / "consumer"
    repo.mkdir()
    version = wheels["mmepack"].name.split("-")[1]
    toml = page_block("toml", "pants.toml")
    pinned = _PLUGIN_PIN.search(toml)
    assert pinned and pinned.group(1) == version, (
        f"{PAGE}: the pants.toml block pins mmepack-pants=={pinned and pinned.group(1)}, "
        f"the wheels are {version}: update the page"
    )
    # The consumer's own settings, beside what the page says mmepack needs.
    assert "\n[python]\n" in toml, f"{PAGE}: the pants.toml block has no [python] table"
    toml = toml.replace(
        "\n[python]\n", '\n[python]\ninterpreter_constraints = ["CPython==3.11.*"]\n'
    )
    machine = ""
    if Path("/etc/pip.conf").exists() or Path("/etc/xdg/pip/pip.conf").exists():
        # The page's note for machines whose pip configuration breaks pex (this one's).
        machine = '\n[subprocess-environment]\nenv_vars = ["PIP_CONFIG_FILE=/dev/null"]\n'
    (repo / "pants.toml").write_text(toml + machine)
    (repo / "BUILD").write_text(page_block("text", "BUILD"))
    shutil.copy2(CHECKOUT / "pants", repo / "pants")
    (repo / WHEELS).mkdir(parents=True)
    for wheel in wheels.values():
        shutil.copy2(wheel, repo / WHEELS / wheel.name)
    for relative, text in _OWN_CODE.items():
        (repo / relative).parent.mkdir(parents=True, exist_ok=True)
        (repo / relative).write_text(text)

    # The model without its BUILD files (tailor writes them) or its weights' generator.
    source = CHECKOUT / "models" / MODEL
    shutil.copytree(
        source,
        repo / "models" / MODEL,
        ignore=lambda folder, names: [
            n for n in names if n == "BUILD" or (folder == str(source) and n == "weights")
        ],
    )
    # DVC: the consumer's own local remote, holding the objects its .dvc files name.
    (repo / ".dvc").mkdir()
    (repo / ".dvc/config").write_text(
        "[core]\n    remote = local\n    analytics = false\n"
        "['remote \"local\"']\n    url = ../dvc-remote\n"
    )
    (repo / ".dvc/.gitignore").write_text("/config.local\n/tmp\n/cache\n")
    for record in (repo / "models" / MODEL).rglob("*.dvc"):
        md5 = re.search(r"md5: ([0-9a-f]{32})", record.read_text())
        assert md5, f"{record}: no md5"
        stored = Path("files/md5") / md5.group(1)[:2] / md5.group(1)[2:]
        (workdir / "dvc-remote" / stored).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(CHECKOUT / "dvc-remote" / stored, workdir / "dvc-remote" / stored)
    (repo / ".gitignore").write_text("/dist/\n/.pants.d/\n/.pids/\n")
    _git(repo, "init", "-q", "-b", "feature")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "consumer")
    return repo


def artifact(repo: Path) -> Path:
    version = (repo / "models" / MODEL / "model_version.txt").read_text().strip()
    return repo / "dist" / "mme" / f"{MODEL}_{version}.tar.gz"


def first_adoption(steps: Runner) -> None:
    """tailor, fmt, lint, check, package, test on the fresh repository, with the issue's fixes."""
    repo = steps.clone
    steps.pants("tailor", "tailor", "::")
    build_file = repo / "models" / MODEL / "BUILD"
    build = build_file.read_text()
    assert "triton_model(" in build and "python_sources(" in build, build
    assert "skip_mypy" not in build, f"tailor wrote skip_mypy without the mypy backend:\n{build}"
    assert "//:dvc" in build, build
    assert "python_requirements(" not in build, f"tailor made the model's env a resolve:\n{build}"
    version_folder_builds = sorted(
        str(p.relative_to(repo)) for p in (repo / "models").glob("*/*/*/BUILD")
    )
    assert not version_folder_builds, f"BUILD files in version folders: {version_folder_builds}"
    assert (repo / "src/pricing/BUILD").is_file(), "Pants' tailor skipped the consumer's code"
    # The example's environment Python, as its own BUILD file says (its requirements.lock was
    # made for it); tailor leaves it to mmepack's default.
    build_file.write_text(
        build.replace("triton_model(", 'triton_model(\n    python_version="3.12",')
    )

    # One Pants run per line below: each run of a fresh build root pays Pants' start and the
    # plugin's resolve again (about a minute on a busy machine), and goals run in order.
    checked = steps.pants("fmt lint check", "fmt", "lint", "check", "::")
    # The consumer's black settings, not mmepack's: its own file is as it wrote it.
    assert (repo / "src/pricing/discount.py").read_text() == _OWN_CODE["src/pricing/discount.py"]
    assert "✓ black succeeded." in checked, checked[-4000:]
    assert "✓ mmepack-validate succeeded." in checked, checked[-4000:]
    assert "✓ mmepack-check-cases succeeded." in checked, checked[-4000:]
    locked = steps.pants("lock-envs", "lock-envs", f"models/{MODEL}:{MODEL}")
    assert "Python None" not in locked, locked[-4000:]
    tested = steps.pants("package test", "package", "test", "::")
    assert artifact(repo).is_file(), tested[-4000:]
    assert f"✓ models/{MODEL}:{MODEL} succeeded" in tested, tested[-4000:]
    assert "✓ src/pricing/discount_test.py:tests succeeded" in tested, tested[-4000:]


def same_bytes_as_sources(steps: Runner) -> None:
    """The installed tool and this checkout's own code (`[mmepack].from_sources`, as its CLI PEX)
    write the same artifact from the consumer's model folder."""
    cli = CHECKOUT / "dist/src.mmepack/cli.pex"
    steps.elsewhere(CHECKOUT).pants("package cli.pex (from sources)", "package", "src/mmepack:cli")
    out = steps.clone.parent / "from-sources"
    steps.run(
        "mmepack package (from sources)",
        [_python311(), str(cli), "package", f"models/{MODEL}", "--pull", f"--output-dir={out}"],
    )
    built = artifact(steps.clone)
    assert _sha256(out / built.name) == _sha256(built), "tool and sources built different bytes"


def publish_staging(steps: Runner, workdir: Path) -> None:
    moto, url = _start_moto(workdir)
    try:
        assert _s3(url, "PUT", "consumer-staging") == 200
        env = {
            **steps.env,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": url,
        }
        published = steps.run(
            "publish (staging)",
            [
                "./pants",
                "--no-pantsd",
                "publish",
                f"models/{MODEL}:{MODEL}",
                "--mmepack-publish-staging-bucket=consumer-staging",
            ],
            env=env,
        )
        name = artifact(steps.clone).name
        assert f"s3://consumer-staging/{name} (uploaded)" in published, published[-4000:]
    finally:
        moto.terminate()
        moto.wait(timeout=30)


def tested_version(repo: Path) -> str:
    """The mmepack that ran the model's cases, from the record `./pants test` writes under
    dist/test/ (mmepack.publish.tested)."""
    name = f"{artifact(repo).name}.tested.json"
    [record] = list((repo / "dist" / "test").rglob(name))
    return str(json.loads(record.read_text())["mmepack_version"])


def upgrade(steps: Runner, workdir: Path) -> str:
    """The next release's wheels into the find-links folder, the plugin pin raised: the consumer
    runs the new plugin and the new mmepack."""
    copy = bumped_copy(workdir)
    wheels = build_wheels(copy, steps)
    new = checkout_version(copy)
    repo = steps.clone
    for wheel in wheels.values():
        shutil.copy2(wheel, repo / WHEELS / wheel.name)
    toml = repo / "pants.toml"
    toml.write_text(_PLUGIN_PIN.sub(f'"mmepack-pants=={new}"', toml.read_text()))
    tested = steps.pants("package test (new)", "package", "test", f"models/{MODEL}:{MODEL}")
    assert f"✓ models/{MODEL}:{MODEL} succeeded" in tested, tested[-4000:]
    assert tested_version(repo) == new, f"the test record names {tested_version(repo)}"
    return new


def consumer_repo(workdir: Path) -> Runner:
    # Nothing of this checkout's Pants session leaks into the consumer's.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PANTS_")}
    if Path(_CA_BUNDLE).is_file():
        # This machine's TLS goes through a proxy whose CA only the system bundle holds (the
        # page's note on machine settings; this repository sets it in its pants.toml).
        env["PANTS_CA_CERTS_PATH"] = _CA_BUNDLE
    steps = Runner(workdir / "consumer", env, workdir / "logs")
    wheels = build_wheels(CHECKOUT, steps)
    repo = make_consumer(workdir, wheels)
    first_adoption(steps)
    assert tested_version(repo) == checkout_version(CHECKOUT)
    same_bytes_as_sources(steps)
    publish_staging(steps, workdir)
    upgrade(steps, workdir)
    return steps


def test_a_repository_of_its_own_adopts_mmepack_from_the_wheels(tmp_path: Path) -> None:
    print(consumer_repo(tmp_path).report())


if __name__ == "__main__":
    started = time.monotonic()
    kept = os.environ.get("MMEPACK_CONSUMER_KEEP")
    if kept:
        Path(kept).mkdir(parents=True, exist_ok=False)
        report = consumer_repo(Path(kept)).report()
    else:
        with tempfile.TemporaryDirectory(prefix="mmepack-consumer-") as workdir:
            report = consumer_repo(Path(workdir)).report()
    print(report)
    print(f"wall: {time.monotonic() - started:.1f} s")
