"""Helpers for tests that stub AWS with botocore's Stubber (no network, no account).

Every response built here is shaped like the API's output in the installed botocore
service model: Stubber validates each queued response against it (required members,
types, enums), so a wrong field name or enum value fails the test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
from botocore.stub import Stubber

ACCOUNT = "123456789012"
REGION = "us-east-1"
ZONE = "us-east-1-dfw-2a"
RID = "cr-0123456789abcdef1"
RID2 = "cr-0fedcba9876543210"
BLOCK_ID = "cb-0123456789abcdef1"


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


#: One botocore session for all tests: its loader caches the (large) service models.
_SESSION = botocore.session.get_session()


def stubbed(service: str, region: str = REGION) -> tuple[Any, Stubber]:
    """A client with dummy credentials (never used: Stubber answers before sending)."""
    client = _SESSION.create_client(
        service,
        region_name=region,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
    )
    return client, Stubber(client)


def reservation(**overrides: Any) -> dict[str, Any]:
    """One ``CapacityReservation`` as DescribeCapacityReservations returns it: an active
    UltraServer Capacity Block (u-p6e-gb200x72, 18 instances) with 5 days left."""
    t = now()
    item = {
        "CapacityReservationId": RID,
        "OwnerId": ACCOUNT,
        "CapacityReservationArn": f"arn:aws:ec2:{REGION}:{ACCOUNT}:capacity-reservation/{RID}",
        "AvailabilityZoneId": "use1-dfw2-az1",
        "InstanceType": "p6e-gb200.36xlarge",
        "InstancePlatform": "Linux/UNIX",
        "AvailabilityZone": ZONE,
        "Tenancy": "default",
        "TotalInstanceCount": 18,
        "AvailableInstanceCount": 18,
        "EbsOptimized": True,
        "EphemeralStorage": False,
        "State": "active",
        "StartDate": t - timedelta(days=1),
        "EndDate": t + timedelta(days=5),
        "EndDateType": "limited",
        "InstanceMatchCriteria": "targeted",
        "CreateDate": t - timedelta(days=10),
        "Tags": [],
        "ReservationType": "capacity-block",
        "CapacityBlockId": BLOCK_ID,
    }
    item.update(overrides)
    return {k: v for k, v in item.items() if v is not None}


def capacity_block(**overrides: Any) -> dict[str, Any]:
    t = now()
    item = {
        "CapacityBlockId": BLOCK_ID,
        "UltraserverType": "u-p6e-gb200x72",
        "AvailabilityZone": ZONE,
        "AvailabilityZoneId": "use1-dfw2-az1",
        "CapacityReservationIds": [RID],
        "StartDate": t - timedelta(days=1),
        "EndDate": t + timedelta(days=5),
        "CreateDate": t - timedelta(days=10),
        "State": "active",
        "Tags": [],
    }
    item.update(overrides)
    return {k: v for k, v in item.items() if v is not None}


def block_status(interconnect: str = "ok", unavailable: int = 0) -> dict[str, Any]:
    return {
        "CapacityBlockId": BLOCK_ID,
        "InterconnectStatus": interconnect,
        "TotalCapacity": 18,
        "TotalAvailableCapacity": 18 - unavailable,
        "TotalUnavailableCapacity": unavailable,
        "CapacityReservationStatuses": [
            {
                "CapacityReservationId": RID,
                "TotalCapacity": 18,
                "TotalAvailableCapacity": 18 - unavailable,
                "TotalUnavailableCapacity": unavailable,
            }
        ],
    }


def ssm_parameter(name: str, value: str) -> dict[str, Any]:
    return {
        "Name": name,
        "Type": "String",
        "Value": value,
        "Version": 1,
        "LastModifiedDate": now() - timedelta(days=3),
        "ARN": f"arn:aws:ssm:{REGION}::parameter{name}",
        "DataType": "aws:ec2:image" if name.endswith("image_id") else "text",
    }


def ami_parameters(kubernetes_version: str = "1.35", release: str = "1.35.6-20260728") -> dict[str, Any]:
    from eks_ultraserver.aws_checks import ami_parameter_name

    return {
        "Parameters": [
            ssm_parameter(ami_parameter_name(kubernetes_version, "image_id"), "ami-0123456789abcdef0"),
            ssm_parameter(ami_parameter_name(kubernetes_version, "release_version"), release),
        ],
    }


def cluster_version(version: str = "1.35", status: str = "STANDARD_SUPPORT") -> dict[str, Any]:
    t = now()
    return {
        "clusterVersion": version,
        "clusterType": "eks",
        "defaultPlatformVersion": "eks.1",
        "defaultVersion": False,
        "releaseDate": t - timedelta(days=60),
        "endOfStandardSupportDate": t + timedelta(days=300),
        "endOfExtendedSupportDate": t + timedelta(days=700),
        "status": status.lower().replace("_", "-"),
        "versionStatus": status,
        "kubernetesPatchVersion": f"{version}.2",
    }


class FakeSession:
    """Stands in for ``boto3.Session``: hands out the given (stubbed) clients."""

    def __init__(self, clients: dict[str, Any], region_name: str = REGION) -> None:
        self._clients = clients
        self.region_name = region_name

    def client(self, service: str, region_name: str | None = None) -> Any:
        return self._clients[service]


def isolate_from_aws(monkeypatch, tmp_path) -> None:
    """No credentials, no config, no instance metadata: any real call fails before the
    network with NoCredentialsError (or NoRegionError)."""
    for var in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "CDK_DEFAULT_ACCOUNT",
        "CDK_DEFAULT_REGION",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
