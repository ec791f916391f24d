"""The Kubeflow MPI operator, packaged at synth time as a Helm chart from its release manifest.

Why a generated chart (and not ``cluster.add_manifest``):

- upstream ships no Helm chart, only a release manifest (deploy/v2beta1/mpi-operator.yaml)
  that it installs with ``kubectl apply --server-side``;
- its MPIJob CRD is ~311 KB as JSON: the CDK kubectl provider installs manifests with
  ``kubectl create --save-config`` / ``kubectl apply`` (aws-eks-v2 kubectl-handler
  apply/__init__.py), both of which store the whole object in the
  ``kubectl.kubernetes.io/last-applied-configuration`` annotation, and annotations are
  limited to 262,144 bytes, so the apply fails; inlined into a CloudFormation template it
  would also eat most of the 1 MB template limit;
- the EKS guide (ml-eks-nvidia-ultraserver) uses ``kubectl create -f`` on the release
  asset, which avoids the annotation but can never update anything afterwards;
- Helm creates the documents of a chart's ``crds/`` folder itself, without that
  annotation, and never deletes them on uninstall (deleting the CRD would delete every
  MPIJob). Shipped as an S3 asset, the chart costs the template one URL.

So at synth time the library obtains the pinned release manifest (a local copy, the user
cache, or one download), checks its SHA-256 against ``versions.MPI_OPERATOR.sha256``, and
writes a chart directory: ``Chart.yaml``, ``values.yaml`` (controller scheduling), the
CRD into ``crds/`` verbatim and every other document into ``templates/`` (with any
``{{`` escaped so Helm prints it literally). The Namespace document is left out: the
release namespace is created by Helm (``--create-namespace``) before anything else. The
chart's bytes depend only on the manifest and this module, so the S3 asset hash is
stable from one synth to the next.

Caveat (Helm docs, "Custom Resource Definitions"): Helm does not upgrade CRDs in
``crds/``; after an MPI operator upgrade, apply the new CRD with
``kubectl apply --server-side -f`` (see docs/addons.md).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from eks_ultraserver.charts.helm_values import (
    deep_merge,
    label_selector_problems,
    parse_version,
    tolerations_problems,
    unknown_keys,
    values_problems,
)
from eks_ultraserver.model import ConfigurationError
from eks_ultraserver.versions import MPI_OPERATOR

__all__ = [
    "CHART_VALUES",
    "MpiOperatorChart",
    "MpiOperatorRelease",
    "MpiOperatorValues",
    "default_cache_dir",
    "load_manifest",
    "write_chart",
]

#: The generated chart's default values (its values.yaml): scheduling of the controller.
CHART_VALUES: dict[str, Any] = {"nodeSelector": {}, "tolerations": [], "affinity": {}}

#: Environment variable that moves the cache (default: $XDG_CACHE_HOME/eks-ultraserver,
#: else ~/.cache/eks-ultraserver).
CACHE_DIR_ENV = "EKS_ULTRASERVER_CACHE_DIR"
#: A local copy of the release manifest, used when no path is configured (offline
#: machines and CI: ``export EKS_ULTRASERVER_MPI_OPERATOR_MANIFEST=/path/mpi-operator.yaml``).
MANIFEST_ENV = "EKS_ULTRASERVER_MPI_OPERATOR_MANIFEST"

_MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_DOC_SEPARATOR_RE = re.compile(r"^---[ \t]*$", re.MULTILINE)
#: libyaml's loader when PyYAML has it (the CRD is ~650 KB of YAML), else the pure one.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_FIXED_MTIME = 315532800  # 1980-01-01T00:00:00Z, the oldest time a zip entry can carry
_VERSION_KEY = "addonVersions.mpiOperator"
_MANIFEST_KEY = "mpiOperatorManifest"


def default_cache_dir() -> Path:
    """Where downloaded manifests and generated charts are kept."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "eks-ultraserver"


# --------------------------------------------------------------------------------------
# Which release
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class MpiOperatorRelease:
    """One MPI operator release manifest: version, SHA-256 and download URL."""

    version: str
    sha256: str
    url: str

    @classmethod
    def resolve(cls, override: str | None = None) -> MpiOperatorRelease:
        """The pinned release, or the one an override names.

        An override is the pinned version (``"v0.8.0"``) or another version with its
        checksum, ``"v0.7.0@sha256:<64 hex digits>"``: the library pins a checksum for
        every manifest it installs, and only knows the pinned one's.
        """
        if override is None or override == MPI_OPERATOR.version:
            return cls(version=MPI_OPERATOR.version, sha256=MPI_OPERATOR.sha256, url=MPI_OPERATOR.repository)
        version, at, digest = str(override).partition("@")
        digest = digest.removeprefix("sha256:").lower()
        problems = []
        valid_version = parse_version(version) is not None and version.startswith("v")
        if not valid_version:
            problems.append(
                f"{_VERSION_KEY}: {version!r} is not an MPI operator release like {MPI_OPERATOR.version!r}"
            )
        if not at:
            example = version if valid_version else MPI_OPERATOR.version
            problems.append(
                f"{_VERSION_KEY}: {override!r} has no checksum; only {MPI_OPERATOR.version} is pinned "
                "with one. Give the release manifest's SHA-256 with the version, e.g. "
                f'-c addonVersions=\'{{"mpiOperator":"{example}@sha256:<64 hex digits>"}}\' '
                "(sha256sum mpi-operator.yaml)"
            )
        elif not _SHA256_RE.match(digest):
            problems.append(f"{_VERSION_KEY}: {digest!r} is not a SHA-256 (64 hexadecimal digits)")
        if problems:
            raise ConfigurationError(problems, subject="MPI operator configuration")
        url = MPI_OPERATOR.repository.replace(MPI_OPERATOR.version, version)
        return cls(version=version, sha256=digest, url=url)


# --------------------------------------------------------------------------------------
# Getting the manifest
# --------------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_manifest(
    release: MpiOperatorRelease,
    *,
    local_path: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> bytes:
    """The release manifest's bytes, checked against ``release.sha256``.

    :param local_path: a local copy of the manifest. Default: the file named by the
        ``EKS_ULTRASERVER_MPI_OPERATOR_MANIFEST`` environment variable, else the verbatim
        copy that ships with the library (``eks_ultraserver/third_party``). Never downloads.
    :param cache_dir: unused; kept for callers of earlier versions.
    :raises ConfigurationError: unreadable file, no copy of that release, or wrong checksum.
    """
    if local_path is None:
        local_path = os.environ.get(MANIFEST_ENV) or None
    if local_path is None:
        packaged = resources.files("eks_ultraserver") / "third_party" / f"mpi-operator-{release.version}.yaml"
        if packaged.is_file():
            local_path = str(packaged)
    if local_path is not None:
        path = Path(local_path).expanduser()
        try:
            data = path.read_bytes()
        except OSError as err:
            raise ConfigurationError(
                [f"{_MANIFEST_KEY}: cannot read {str(path)!r} ({err.strerror or err})"],
                subject="MPI operator manifest",
            ) from None
        actual = _sha256(data)
        if actual != release.sha256:
            raise ConfigurationError(
                [
                    f"{_MANIFEST_KEY}: {str(path)!r} has SHA-256 {actual}, but the MPI operator "
                    f"{release.version} release manifest has {release.sha256}; use the "
                    f"unmodified file from {release.url}"
                ],
                subject="MPI operator manifest",
            )
        return data

    raise ConfigurationError(
        [
            f"{_MANIFEST_KEY}: no copy of the MPI operator {release.version} release manifest ships "
            f"with this library; download it from {release.url} and pass it with "
            f"-c {_MANIFEST_KEY}=<path> (or set {MANIFEST_ENV}=<path>)"
        ],
        subject="MPI operator manifest",
    )


# --------------------------------------------------------------------------------------
# Writing the chart
# --------------------------------------------------------------------------------------


def _escape_template(text: str) -> str:
    """Makes Helm print ``{{`` literally (Helm docs: ``{{ "{{" }}``)."""
    return text.replace("{{", '{{ "{{" }}')


def _scheduling_block(indent: str) -> str:
    """Helm template lines that add the controller's scheduling from values."""
    lines = []
    for key in ("nodeSelector", "tolerations", "affinity"):
        lines += [
            f"{indent}{{{{- with .Values.{key} }}}}",
            f"{indent}{key}:",
            f"{indent}  {{{{- toYaml . | nindent {len(indent) + 2} }}}}",
            f"{indent}{{{{- end }}}}",
        ]
    return "\n".join(lines) + "\n"


def _slug(value: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", value.lower()).strip("-")


@dataclass(frozen=True, kw_only=True, slots=True)
class MpiOperatorChart:
    """A generated chart: its directory, namespace and release."""

    path: Path
    namespace: str
    release: MpiOperatorRelease
    files: tuple[str, ...]


def chart_files(manifest: bytes, release: MpiOperatorRelease) -> tuple[dict[str, bytes], str]:
    """The chart's files (relative path -> bytes) and the manifest's namespace."""
    problems: list[str] = []
    text = manifest.decode("utf-8")
    namespace = ""
    crds: dict[str, str] = {}
    templates: dict[str, str] = {}
    deployments = 0
    for index, chunk in enumerate(_DOC_SEPARATOR_RE.split(text)):
        try:
            doc = yaml.load(chunk, Loader=_YAML_LOADER)
        except yaml.YAMLError as err:
            problems.append(f"{_MANIFEST_KEY}: document {index} is not YAML ({err})")
            continue
        if doc is None:
            continue  # the header comment
        if not isinstance(doc, dict) or "kind" not in doc:
            problems.append(f"{_MANIFEST_KEY}: document {index} is not a Kubernetes object")
            continue
        kind = str(doc["kind"])
        name = str((doc.get("metadata") or {}).get("name", index))
        body = chunk.strip("\n") + "\n"
        if kind == "Namespace":
            namespace = name
            continue
        if kind == "CustomResourceDefinition":
            crds[f"crds/{_slug(name)}.yaml"] = body  # crds/ is not templated by Helm
            continue
        body = _escape_template(body)
        if kind == "Deployment":
            deployments += 1
            pod_spec = (((doc.get("spec") or {}).get("template") or {}).get("spec")) or {}
            taken = [k for k in CHART_VALUES if k in pod_spec]
            if taken:
                problems.append(
                    f"{_MANIFEST_KEY}: the Deployment {name!r} already sets {', '.join(taken)}; "
                    "this library templates the controller's scheduling itself"
                )
            match = re.search(r"^(?P<indent>[ ]*)containers:[ \t]*$", body, re.MULTILINE)
            if match is None:
                problems.append(f"{_MANIFEST_KEY}: the Deployment {name!r} has no 'containers:' line")
            else:
                at = match.start()
                body = body[:at] + _scheduling_block(match["indent"]) + body[at:]
        templates[f"templates/{len(templates):02d}-{_slug(kind)}-{_slug(name)}.yaml"] = body
    if not namespace:
        problems.append(f"{_MANIFEST_KEY}: the manifest has no Namespace document")
    if not crds:
        problems.append(f"{_MANIFEST_KEY}: the manifest has no CustomResourceDefinition")
    if deployments != 1:
        problems.append(f"{_MANIFEST_KEY}: expected one controller Deployment, found {deployments}")
    if problems:
        raise ConfigurationError(problems, subject="MPI operator manifest")

    semver = release.version.removeprefix("v")
    chart_yaml = (
        "apiVersion: v2\n"
        "name: mpi-operator\n"
        f"description: Kubeflow MPI operator {release.version}, generated by eks-ultraserver "
        f"from the upstream release manifest (SHA-256 {release.sha256}).\n"
        "type: application\n"
        f"version: {semver}\n"
        f'appVersion: "{release.version}"\n'
    )
    values_yaml = (
        "# Scheduling of the mpi-operator controller (added by eks-ultraserver).\n"
        + yaml.safe_dump(CHART_VALUES, sort_keys=True, default_flow_style=False)
    )
    files = {"Chart.yaml": chart_yaml, "values.yaml": values_yaml, **crds, **templates}
    return {path: content.encode("utf-8") for path, content in sorted(files.items())}, namespace


def write_chart(
    manifest: bytes,
    release: MpiOperatorRelease,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
) -> MpiOperatorChart:
    """Writes the chart under ``<cache>/charts/mpi-operator-<version>/`` (in a directory
    named by its content hash, so the same manifest always gives the same directory and
    bytes) and returns it.

    Files get a fixed modification time, so nothing about the directory depends on when
    it was written.
    """
    files, namespace = chart_files(manifest, release)
    digest = hashlib.sha256()
    for path, content in files.items():
        digest.update(path.encode() + b"\0" + hashlib.sha256(content).digest())
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    # The last path segment has no dot: CDK names a directory asset's staging copy after
    # the source's "extension".
    target = cache / "charts" / f"mpi-operator-{release.version}" / digest.hexdigest()[:20]
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
        try:
            for path, content in files.items():
                out = staging / path
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(content)
                os.chmod(out, 0o644)
                os.utime(out, (_FIXED_MTIME, _FIXED_MTIME))
            for sub in sorted({p.parent for p in staging.rglob("*")}, reverse=True):
                os.chmod(sub, 0o755)
                os.utime(sub, (_FIXED_MTIME, _FIXED_MTIME))
            try:
                os.rename(staging, target)
            except OSError:
                if not target.is_dir():  # not a concurrent writer of the same chart
                    raise
        finally:
            if staging.exists():
                _rmtree(staging)
    return MpiOperatorChart(path=target, namespace=namespace, release=release, files=tuple(files))


def _rmtree(path: Path) -> None:
    for sub in sorted(path.rglob("*"), reverse=True):
        sub.rmdir() if sub.is_dir() else sub.unlink()
    path.rmdir()


# --------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class MpiOperatorValues:
    """Helm values of the generated MPI operator chart (validated when created).

    :param system_node_selector: node labels of the nodes that run the controller.
        Default: not pinned.
    :param system_node_tolerations: tolerations for the controller. Default: none.
    :param extra_values: values deep-merged over the library's; only the chart's keys
        (``nodeSelector``, ``tolerations``, ``affinity``) are accepted. Default: none.
    """

    system_node_selector: Mapping[str, str] | None = None
    system_node_tolerations: Sequence[Mapping[str, Any]] = ()
    extra_values: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = values_problems("addonValues.mpiOperator", self.extra_values)
        if isinstance(self.extra_values, Mapping):
            problems += [
                f"addonValues.mpiOperator.{key}: the generated MPI operator chart has no such "
                f"value; allowed: {', '.join(sorted(CHART_VALUES))}"
                for key in unknown_keys(self.extra_values, CHART_VALUES)
            ]
        problems += label_selector_problems("system_node_selector", self.system_node_selector)
        problems += tolerations_problems("system_node_tolerations", self.system_node_tolerations)
        if problems:
            raise ConfigurationError(problems, subject="MPI operator configuration")

    def values(self) -> dict[str, Any]:
        ours: dict[str, Any] = {}
        if self.system_node_selector:
            ours["nodeSelector"] = dict(self.system_node_selector)
        if self.system_node_tolerations:
            ours["tolerations"] = [dict(t) for t in self.system_node_tolerations]
        return deep_merge(ours, self.extra_values)
