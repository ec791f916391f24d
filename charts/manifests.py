"""Every workload chart of an environment, as a cdk8s App and as YAML files.

Two groups, decided by whether they can safely start all at once:

- **Validation charts** (:func:`validation_charts`): per UltraServer, an IMEX channel check
  (a Job with one pod, one node, no GPUs) and the EKS guide's nvbandwidth job (2 nodes).
  They finish on their own, use at most 3 nodes of an UltraServer, and do not compete with
  each other for more than one node, so they can all be applied together. The stack deploys
  exactly these when ``validationJobs`` is true (one Kubernetes manifest per chart, each
  after the node group of its UltraServer).
- **Benchmark charts** (:func:`benchmark_charts`): one NCCL all-reduce job per UltraServer
  and, with several UltraServers, one across all of them over EFA. Each takes every GPU of
  its UltraServers. Started together, two of them can each grab part of the same nodes and
  wait for each other forever (no gang scheduling), and two ComputeDomains sharing one
  NVLink clique can conflict (kubernetes-sigs/dra-driver-nvidia-gpu#892); so they are
  written for the user to apply one at a time, never deployed by the stack.

Chart ids are the Kubernetes names of the jobs, stable for a given configuration.

Why the validation charts' names end in a content digest (``imex-channel-check-us-1-3f9a0c``):
a ComputeDomain's spec is immutable, and so is a Job's pod template, so an object whose
spec changed under the same name cannot be applied over the old one ("field is
immutable"). With the digest of the chart's objects in every name (ComputeDomain, its
ResourceClaimTemplate, the Job or MPIJob and the pods' references to them), a changed
check is a set of new objects; the stack, which uses the name as the construct id of the
chart's manifest, then creates the new manifest resource and deletes the old one (its
``kubectl delete`` ignores objects the TTL controller already removed) instead of
updating objects in place, and an unchanged check keeps its name, so nothing happens to
it. The NCCL benchmarks, applied and deleted by hand one at a time, keep plain names.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cdk8s

from eks_ultraserver.charts.compute_domain import DraDriverTarget
from eks_ultraserver.charts.mpijob import UltraServerTarget, max_job_name_length
from eks_ultraserver.charts.validation import ImexChannelCheck, NcclAllReduceJob, NvbandwidthJob
from eks_ultraserver.config import EnvironmentConfig
from eks_ultraserver.model import ConfigurationError

#: Sub-directories of the output directory (owned by :func:`write_manifests`).
VALIDATION_DIR = "validation"
BENCHMARK_DIR = "benchmarks"

#: Name of the NCCL job across every UltraServer (when there are several).
NCCL_ALL_NAME = "nccl-all-ultraservers"

#: Hex digits of the content digest at the end of every validation chart's name.
DIGEST_LENGTH = 6
#: What a chart's own name is replaced by before its objects are hashed.
_NAME_MASK = "{{name}}"


def content_digest(objects: Sequence[Any], name: str) -> str:
    """The first :data:`DIGEST_LENGTH` hex digits of the SHA-256 of ``objects`` (canonical
    JSON), with every occurrence of ``name`` masked: so the digest of a chart is the same
    whether computed on its objects before or after they were given the digested name."""
    text = json.dumps(list(objects), sort_keys=True, separators=(",", ":")).replace(name, _NAME_MASK)
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_LENGTH]


def _digest_named(
    app: cdk8s.App, base: str, max_length: int, build: Callable[[cdk8s.App, str], cdk8s.Chart]
) -> cdk8s.Chart:
    """Builds a chart once under ``base`` (cut so that ``-<digest>`` fits ``max_length``) in
    a scratch app to hash it, then in ``app`` named ``<base>-<digest>``."""
    stem = base[: max_length - DIGEST_LENGTH - 1].rstrip("-")
    digest = content_digest(build(cdk8s.App(), stem).to_json(), stem)
    return build(app, f"{stem}-{digest}")


def validation_charts(
    app: cdk8s.App, config: EnvironmentConfig, *, namespace: str = "default", queue: str | None = None
) -> list[cdk8s.Chart]:
    """Adds the validation charts of ``config`` to ``app`` and returns them, in order.

    Per UltraServer: ``imex-channel-check-<name>-<digest>`` (:class:`ImexChannelCheck`) and
    ``nvbandwidth-<name>-<digest>`` (:class:`NvbandwidthJob`), where ``<digest>`` is the
    :func:`content_digest` of the chart (the base name is cut when a long UltraServer name
    would not leave room for it). Each chart's id (``chart.node.id``) is that name, and so
    is every object's. Each chart has ``ultraservers``, the UltraServers it runs on. The
    charts need the NVIDIA DRA driver and the MPI operator (their CRDs) installed first.
    With ``queue``, the nvbandwidth jobs go through that Kueue LocalQueue (in
    ``namespace``); the IMEX channel check (a bare pod's Job) is never queued.
    """
    dra = DraDriverTarget.from_addons(config.addons)
    charts: list[cdk8s.Chart] = []
    for target in UltraServerTarget.from_config(config):

        def check(scope: cdk8s.App, name: str, target: UltraServerTarget = target) -> cdk8s.Chart:
            return ImexChannelCheck(
                scope, name, ultraserver=target, name=name, dra_driver=dra, namespace=namespace
            )

        def nvbandwidth(scope: cdk8s.App, name: str, target: UltraServerTarget = target) -> cdk8s.Chart:
            return NvbandwidthJob(
                scope, name, ultraserver=target, name=name, dra_driver=dra, namespace=namespace, queue=queue
            )

        charts.append(_digest_named(app, f"imex-channel-check-{target.name}", 63, check))
        charts.append(_digest_named(app, f"nvbandwidth-{target.name}", max_job_name_length(2), nvbandwidth))
    return charts


def benchmark_names(config: EnvironmentConfig) -> list[str]:
    """The NCCL job names of ``config``, one per UltraServer (``nccl-<name>``); refuses an
    UltraServer whose job name would be the cross-UltraServer job's."""
    names = [f"nccl-{u.name}" for u in config.ultraservers]
    if len(names) > 1 and NCCL_ALL_NAME in names:
        raise ConfigurationError(
            [
                f"ultraServers: an UltraServer named {NCCL_ALL_NAME.removeprefix('nccl-')!r} would give its "
                f"NCCL job the name {NCCL_ALL_NAME!r}, which the job across all UltraServers uses; rename it"
            ],
            subject="workload charts",
        )
    return names


def benchmark_charts(
    app: cdk8s.App,
    config: EnvironmentConfig,
    *,
    image: str,
    namespace: str = "default",
    queue: str | None = None,
) -> list[cdk8s.Chart]:
    """Adds the NCCL all-reduce charts of ``config`` to ``app`` and returns them, in order.

    ``nccl-<name>`` per UltraServer and, with more than one UltraServer,
    ``nccl-all-ultraservers`` across all of them. Run them one at a time. ``image`` is the
    nccl-tests image (required, a version tag or a digest; see :class:`NcclAllReduceJob`).
    With ``queue``, each job goes through that Kueue LocalQueue (in ``namespace``).
    """
    dra = DraDriverTarget.from_addons(config.addons)
    targets = UltraServerTarget.from_config(config)
    names = benchmark_names(config)
    efa_mode = config.addons.efa_mode
    charts: list[cdk8s.Chart] = [
        NcclAllReduceJob(
            app,
            n,
            ultraservers=[t],
            image=image,
            name=n,
            efa_mode=efa_mode,
            dra_driver=dra,
            namespace=namespace,
            queue=queue,
        )
        for t, n in zip(targets, names, strict=True)
    ]
    if len(targets) > 1:
        charts.append(
            NcclAllReduceJob(
                app,
                NCCL_ALL_NAME,
                ultraservers=targets,
                image=image,
                name=NCCL_ALL_NAME,
                efa_mode=efa_mode,
                dra_driver=dra,
                namespace=namespace,
                queue=queue,
            )
        )
    return charts


def build_app(
    config: EnvironmentConfig, outdir: str | os.PathLike = "dist", *, nccl_image: str | None = None
) -> cdk8s.App:
    """A cdk8s App holding every workload chart of ``config`` (validation, then benchmarks
    when ``nccl_image`` is given).

    ``app.synth()`` writes one ``<chart id>.yaml`` per chart into ``outdir``;
    :func:`write_manifests` writes the same documents split into ``validation/`` and
    ``benchmarks/``.
    """
    app = cdk8s.App(
        outdir=str(outdir),
        output_file_extension=".yaml",
        yaml_output_type=cdk8s.YamlOutputType.FILE_PER_CHART,
    )
    validation_charts(app, config)
    if nccl_image is not None:
        benchmark_charts(app, config, image=nccl_image)
    return app


def chart_yaml(chart: cdk8s.Chart) -> str:
    """The YAML document stream of one chart (what ``app.synth()`` writes for it)."""
    return cdk8s.Yaml.stringify(*chart.to_json())


def write_manifests(
    config: EnvironmentConfig,
    out_dir: str | os.PathLike,
    *,
    nccl_image: str | None = None,
    queue: str | None = None,
    namespace: str = "default",
) -> list[Path]:
    """Writes every workload chart of ``config`` as YAML and returns the files written.

    Layout: ``<out_dir>/validation/<chart id>.yaml`` (safe to ``kubectl apply -f`` as a
    directory) and ``<out_dir>/benchmarks/<chart id>.yaml`` (one at a time; written only
    with ``nccl_image``, the nccl-tests image, which has no default). Earlier ``*.yaml``
    files in those two sub-directories are removed first, so the directories always hold
    exactly the current configuration. Same configuration, same bytes. With ``queue``, the
    MPIJobs go through that Kueue LocalQueue, and every object is in ``namespace``.
    """
    out = Path(out_dir)
    benchmark_names(config)  # a reserved UltraServer name is refused with or without benchmarks
    app = cdk8s.App(outdir=str(out))
    groups = (
        (VALIDATION_DIR, validation_charts(app, config, namespace=namespace, queue=queue)),
        (
            BENCHMARK_DIR,
            benchmark_charts(app, config, image=nccl_image, namespace=namespace, queue=queue)
            if nccl_image is not None
            else [],
        ),
    )
    written: list[Path] = []
    for sub, charts in groups:
        directory = out / sub
        directory.mkdir(parents=True, exist_ok=True)
        for stale in sorted(directory.glob("*.yaml")):
            stale.unlink()
        for chart in charts:
            path = directory / f"{chart.node.id}.yaml"
            path.write_text(chart_yaml(chart), encoding="utf-8")
            written.append(path)
    return written


__all__ = [
    "BENCHMARK_DIR",
    "DIGEST_LENGTH",
    "NCCL_ALL_NAME",
    "VALIDATION_DIR",
    "benchmark_charts",
    "benchmark_names",
    "build_app",
    "chart_yaml",
    "content_digest",
    "validation_charts",
    "write_manifests",
]
