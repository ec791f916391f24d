"""Every workload chart of an environment, as a cdk8s App and as YAML files.

Two groups, decided by whether they can safely start all at once:

- **Validation charts** (:func:`validation_charts`): per UltraServer, an IMEX channel check
  (one pod, one node, no GPUs) and the EKS guide's nvbandwidth job (2 nodes). They finish
  on their own, use at most 3 nodes of an UltraServer, and do not compete with each other
  for more than one node, so they can all be applied together. The stack deploys exactly
  these when ``validationJobs`` is true (``cluster.add_cdk8s_chart(chart.node.id, chart)``
  for each).
- **Benchmark charts** (:func:`benchmark_charts`): one NCCL all-reduce job per UltraServer
  and, with several UltraServers, one across all of them over EFA. Each takes every GPU of
  its UltraServers. Started together, two of them can each grab part of the same nodes and
  wait for each other forever (no gang scheduling), and two ComputeDomains sharing one
  NVLink clique can conflict (kubernetes-sigs/dra-driver-nvidia-gpu#892); so they are
  written for the user to apply one at a time, never deployed by the stack.

Chart ids are the Kubernetes names of the jobs, stable for a given configuration.
"""

from __future__ import annotations

import os
from pathlib import Path

import cdk8s

from eks_ultraserver.charts.compute_domain import DraDriverTarget
from eks_ultraserver.charts.mpijob import UltraServerTarget
from eks_ultraserver.charts.validation import ImexChannelCheck, NcclAllReduceJob, NvbandwidthJob
from eks_ultraserver.config import EnvironmentConfig
from eks_ultraserver.model import ConfigurationError

#: Sub-directories of the output directory (owned by :func:`write_manifests`).
VALIDATION_DIR = "validation"
BENCHMARK_DIR = "benchmarks"

#: Name of the NCCL job across every UltraServer (when there are several).
NCCL_ALL_NAME = "nccl-all-ultraservers"


def validation_charts(
    app: cdk8s.App, config: EnvironmentConfig, *, namespace: str = "default"
) -> list[cdk8s.Chart]:
    """Adds the validation charts of ``config`` to ``app`` and returns them, in order.

    Per UltraServer: ``imex-channel-check-<name>`` (:class:`ImexChannelCheck`) and
    ``nvbandwidth-<name>`` (:class:`NvbandwidthJob`). Each chart's id (``chart.node.id``)
    is that name. The charts need the NVIDIA DRA driver and the MPI operator (their CRDs)
    installed first.
    """
    dra = DraDriverTarget.from_addons(config.addons)
    charts: list[cdk8s.Chart] = []
    for target in UltraServerTarget.from_config(config):
        check = f"imex-channel-check-{target.name}"
        charts.append(
            ImexChannelCheck(app, check, ultraserver=target, name=check, dra_driver=dra, namespace=namespace)
        )
        nvb = f"nvbandwidth-{target.name}"
        charts.append(
            NvbandwidthJob(app, nvb, ultraserver=target, name=nvb, dra_driver=dra, namespace=namespace)
        )
    return charts


def benchmark_charts(
    app: cdk8s.App, config: EnvironmentConfig, *, namespace: str = "default"
) -> list[cdk8s.Chart]:
    """Adds the NCCL all-reduce charts of ``config`` to ``app`` and returns them, in order.

    ``nccl-<name>`` per UltraServer and, with more than one UltraServer,
    ``nccl-all-ultraservers`` across all of them. Run them one at a time.
    """
    dra = DraDriverTarget.from_addons(config.addons)
    targets = UltraServerTarget.from_config(config)
    names = [f"nccl-{t.name}" for t in targets]
    if len(targets) > 1 and NCCL_ALL_NAME in names:
        raise ConfigurationError(
            [
                f"ultraServers: an UltraServer named {NCCL_ALL_NAME.removeprefix('nccl-')!r} would give its "
                f"NCCL job the name {NCCL_ALL_NAME!r}, which the job across all UltraServers uses; rename it"
            ],
            subject="workload charts",
        )
    efa_mode = config.addons.efa_mode
    charts: list[cdk8s.Chart] = [
        NcclAllReduceJob(
            app, n, ultraservers=[t], name=n, efa_mode=efa_mode, dra_driver=dra, namespace=namespace
        )
        for t, n in zip(targets, names, strict=True)
    ]
    if len(targets) > 1:
        charts.append(
            NcclAllReduceJob(
                app,
                NCCL_ALL_NAME,
                ultraservers=targets,
                name=NCCL_ALL_NAME,
                efa_mode=efa_mode,
                dra_driver=dra,
                namespace=namespace,
            )
        )
    return charts


def build_app(config: EnvironmentConfig, outdir: str | os.PathLike = "dist") -> cdk8s.App:
    """A cdk8s App holding every workload chart of ``config`` (validation, then benchmarks).

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
    benchmark_charts(app, config)
    return app


def chart_yaml(chart: cdk8s.Chart) -> str:
    """The YAML document stream of one chart (what ``app.synth()`` writes for it)."""
    return cdk8s.Yaml.stringify(*chart.to_json())


def write_manifests(config: EnvironmentConfig, out_dir: str | os.PathLike) -> list[Path]:
    """Writes every workload chart of ``config`` as YAML and returns the files written.

    Layout: ``<out_dir>/validation/<chart id>.yaml`` (safe to ``kubectl apply -f`` as a
    directory) and ``<out_dir>/benchmarks/<chart id>.yaml`` (one at a time). Earlier
    ``*.yaml`` files in those two sub-directories are removed first, so the directories
    always hold exactly the current configuration. Same configuration, same bytes.
    """
    out = Path(out_dir)
    app = cdk8s.App(outdir=str(out))
    groups = (
        (VALIDATION_DIR, validation_charts(app, config)),
        (BENCHMARK_DIR, benchmark_charts(app, config)),
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
    "NCCL_ALL_NAME",
    "VALIDATION_DIR",
    "benchmark_charts",
    "build_app",
    "chart_yaml",
    "validation_charts",
    "write_manifests",
]
