"""MpiJobSpec: the MpiJob's arguments as a frozen, validated value object."""

import dataclasses

import cdk8s
import pytest

from eks_ultraserver.charts.compute_domain import ChannelAllocationMode, DraDriverTarget
from eks_ultraserver.charts.mpijob import (
    CleanPodPolicy,
    LauncherCreationPolicy,
    MpiJob,
    MpiJobSpec,
    UltraServerTarget,
)
from eks_ultraserver.config import EfaMode
from eks_ultraserver.model import ConfigurationError, UltraServerType

US72 = UltraServerTarget(name="us-a", type=UltraServerType.U_P6E_GB200X72)


def test_spec_applies_defaults_and_names_enum_members():
    """GIVEN strings and a lone target WHEN a spec is built THEN it holds tuples, dicts and
    enum members, and derives the GPUs, ranks and ComputeDomain size."""
    spec = MpiJobSpec(
        name="job",
        image="img:1",
        command="run",
        ultraservers=US72,  # type: ignore[arg-type]  # a lone target is accepted too
        workers=3,
        efa_mode="dranet",
        efa_devices=2,
        launcher_creation_policy="AtStartup",
        clean_pod_policy="All",
        channel_allocation_mode="All",
        worker_command=["sshd", "-De"],
    )
    assert spec.command == ("run",) and spec.ultraservers == (US72,)
    assert spec.worker_command == ("sshd", "-De")
    assert spec.env == {} and spec.labels == {} and spec.dra_driver == DraDriverTarget()
    assert spec.efa_mode is EfaMode.DRANET
    assert spec.launcher_creation_policy is LauncherCreationPolicy.AT_STARTUP
    assert spec.clean_pod_policy is CleanPodPolicy.ALL
    assert spec.channel_allocation_mode is ChannelAllocationMode.ALL
    assert (spec.worker_gpus, spec.total_ranks, spec.compute_domain_num_nodes) == (4, 12, 3)
    assert spec.single_domain and spec.efa_claim_template_name == "job-efa"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.workers = 4  # type: ignore[misc]
    assert dataclasses.replace(spec, gpus_per_worker=2, slots_per_worker=2).compute_domain_num_nodes == 0


def test_spec_raises_every_problem_once_and_the_chart_keeps_it():
    """GIVEN bad arguments THEN one ConfigurationError titled with the job lists each;
    GIVEN good ones THEN MpiJob keeps the spec it built."""
    with pytest.raises(ConfigurationError, match=r"invalid MpiJob 'job' \(2 problems\)") as err:
        MpiJobSpec(name="job", image="img:1", command=["run"], ultraservers=[US72], workers=19, efa_mode="x")
    assert err.value.problems[0].startswith("workers: 19 is more than the 18 nodes")
    assert err.value.problems[1].startswith("efa_mode: 'x' is not allowed")
    job = MpiJob(cdk8s.App(), "j", name="job", image="img:1", command=["run"], ultraservers=[US72], workers=2)
    assert job.spec == MpiJobSpec(
        name="job", image="img:1", command=("run",), ultraservers=(US72,), workers=2
    )
