"""cdk-nag (AwsSolutions) acknowledgements for findings that are right to keep, each with
its reason, on the one resource it concerns and for the exact finding.

cdk-nag 3 runs as a CDK policy-validation plugin
(``Validations.of(app).add_plugins(AwsSolutionsChecks(app))``) and honours the
acknowledgements of aws-cdk-lib's own ``Validations.of(construct).acknowledge(...)``, which
records them as construct metadata (``aws:cdk:acknowledged-rules``). So the library records
them with aws-cdk-lib alone and does not depend on cdk-nag. cdk-nag 3 no longer reads the
``cdk_nag`` CloudFormation metadata of version 2, and has no ``applies_to`` list and no
regular expressions: each finding is acknowledged by its own id.

Ids carry the pack's prefix, as the validation report prints them:
``AwsSolutions::AwsSolutions-L1`` for a whole rule,
``AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/X]`` for one
finding. With the prefix, cdk-nag reports the finding and aws-cdk-lib moves it to the
``suppressedViolations`` of the validation report (``validation-report.json`` in the cloud
assembly) with our reason and the construct it was acknowledged on; users who run the pack see
every acknowledgement there. (An id without the prefix would make cdk-nag drop the finding
silently.)

Findings that were wrong for our own resources were fixed in the constructs instead (IMDSv2
required, encrypted volumes, topics and queues, least-privilege node roles, no open ingress).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jsii
from aws_cdk import Acknowledgment, Aspects, CfnResource, IAspect, Stack, Validations

from constructs import IConstruct

_MANAGED = "Policy::arn:<AWS::Partition>:iam::aws:policy/"

EKS_NODE_POLICIES = [
    f"{_MANAGED}{name}"
    for name in (
        "AmazonEKSWorkerNodePolicy",
        "AmazonEC2ContainerRegistryPullOnly",
        "AmazonEKS_CNI_Policy",
        "AmazonSSMManagedInstanceCore",
    )
]
_NODE_REASON = (
    "EKS worker nodes need these AWS managed policies (EKS user guide, create-node-role); "
    "ECR access is the pull-only policy, and SSM replaces SSH access to nodes."
)
_CDK_PROVIDER_REASON = (
    "Role, policy or function of aws-cdk-lib's EKS kubectl provider (aws_eks_v2), which "
    "installs Helm charts and manifests; its permissions and runtime are set by aws-cdk-lib."
)
_ENDPOINT_REASON = (
    "Security group of a VPC interface endpoint (ECR, STS) made by aws-cdk-lib: it admits "
    "HTTPS only from the VPC's own CIDR block (Fn::GetAtt CidrBlock), never 0.0.0.0/0 or "
    "::/0; the rule cannot evaluate the intrinsic and reports that as a finding."
)


def acknowledgement_id(rule: str, finding: str | None = None) -> str:
    """The id cdk-nag 3 reports a finding with: ``<pack>::<rule>`` or
    ``<pack>::<rule>[<finding>]`` (the pack is the rule's prefix, ``AwsSolutions``)."""
    pack = rule.split("-", 1)[0]
    return f"{pack}::{rule}[{finding}]" if finding else f"{pack}::{rule}"


def suppress(resource: IConstruct | None, rule: str, reason: str, applies_to: Iterable[object] = ()) -> None:
    """Acknowledges one cdk-nag rule on a resource (its CloudFormation resource, when given an
    L2), with its reason.

    ``applies_to`` narrows it to findings, as cdk-nag 2's suppressions did: each string is one
    finding (``Policy::...``, ``Action::...``, ``Resource::...``); each ``{"regex": "/.../"}``
    acknowledges the findings of ``AwsSolutions-IAM4`` or ``-IAM5`` on this resource that the
    expression matches, computed at synthesis from the resource's final properties as cdk-nag
    computes them. Without ``applies_to``, the rule itself is acknowledged (rules that report
    one finding per resource, such as ``AwsSolutions-L1``)."""
    if resource is None:
        return
    cfn = resource if isinstance(resource, CfnResource) else resource.node.default_child
    if not isinstance(cfn, CfnResource):
        return
    findings: list[str] = []
    patterns: list[re.Pattern[str]] = []
    for entry in applies_to:
        if isinstance(entry, str):
            findings.append(entry)
        elif isinstance(entry, Mapping) and isinstance(entry.get("regex"), str):
            patterns.append(_js_regex(entry["regex"]))
        else:
            raise ValueError(f"applies_to entry {entry!r}: use a finding string or {{'regex': '/.../'}}")
    if patterns and _finder(rule) is None:
        raise ValueError(
            f"applies_to regex for {rule}: only {', '.join(sorted(_FINDERS))} have findings to match"
        )
    if not findings and not patterns:
        _acknowledge(cfn, acknowledgement_id(rule), reason)
    for finding in findings:
        _acknowledge(cfn, acknowledgement_id(rule, finding), reason)
    if patterns:
        Aspects.of(cfn).add(_AcknowledgeMatching(cfn.node.path, rule, reason, patterns))


def _acknowledge(cfn: CfnResource, ack_id: str, reason: str) -> None:
    Validations.of(cfn).acknowledge(Acknowledgment(id=ack_id, reason=reason))


def _js_regex(text: str) -> re.Pattern[str]:
    """``/pattern/flags`` (cdk-nag 2's form) or a bare pattern, as a Python expression."""
    match = re.fullmatch(r"/(.*)/([a-z]*)", text, re.DOTALL)
    if not match:
        return re.compile(text)
    return re.compile(match.group(1), re.IGNORECASE if "i" in match.group(2) else 0)


@jsii.implements(IAspect)
class _AcknowledgeMatching:
    """At synthesis (aspects run before validation plugins), acknowledges the findings of
    ``rule`` on the resource at ``path`` that one of ``patterns`` matches."""

    def __init__(self, path: str, rule: str, reason: str, patterns: list[re.Pattern[str]]) -> None:
        self._path, self._rule, self._reason, self._patterns = path, rule, reason, patterns

    def visit(self, node: IConstruct) -> None:
        finder = _finder(self._rule)
        if node.node.path != self._path or not isinstance(node, CfnResource) or finder is None:
            return
        for finding in finder(node):
            if any(p.search(finding) for p in self._patterns):
                _acknowledge(node, acknowledgement_id(self._rule, finding), self._reason)


# ------------------------------------------------------------------ findings as cdk-nag 3.0 computes them
# (cdk-nag src/utils/flatten-cfn-reference.ts, rules/iam/IAMNoManagedPolicies.ts and
# IAMNoWildcardPermissions.ts): only needed to expand regular expressions.


def _flatten(node: Any) -> str:
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        if node.get("Fn::Join"):
            delimiter, items = node["Fn::Join"]
            return str(delimiter).join(_flatten(item) for item in items)
        if node.get("Fn::Sub"):
            return _flatten(node["Fn::Sub"])
        if node.get("Fn::GetAtt"):
            resource, attribute = node["Fn::GetAtt"]
            return f"<{_flatten(resource)}.{_flatten(attribute)}>"
        if node.get("Fn::ImportValue"):
            return _flatten(node["Fn::ImportValue"])
        if node.get("Ref"):
            return f"<{_flatten(node['Ref'])}>"
    return json.dumps(node, separators=(",", ":"), ensure_ascii=False)


def _managed_policy_findings(cfn: CfnResource) -> list[str]:
    if cfn.cfn_resource_type not in ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group"):
        return []
    stack = Stack.of(cfn)
    arns = stack.resolve(getattr(cfn, "managed_policy_arns", None)) or []
    flat = (_flatten(stack.resolve(arn)) for arn in arns)
    return list(dict.fromkeys(f"Policy::{arn}" for arn in flat if ":iam::aws:" in arn))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _wildcard_findings(cfn: CfnResource) -> list[str]:
    stack = Stack.of(cfn)
    if cfn.cfn_resource_type in ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group"):
        policies = stack.resolve(getattr(cfn, "policies", None)) or []
        documents = [stack.resolve(p.get("policyDocument")) for p in policies if isinstance(p, dict)]
    elif cfn.cfn_resource_type in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        documents = [stack.resolve(getattr(cfn, "policy_document", None))]
    else:
        return []
    found: dict[str, None] = {}
    for document in documents:
        for statement in _as_list((document or {}).get("Statement") or []):
            if statement.get("Effect") != "Allow":
                continue
            for action in _as_list(statement.get("Action")):
                if isinstance(action, str) and "*" in action:
                    found[f"Action::{action}"] = None
            for resource in _as_list(statement.get("Resource")):
                flat = _flatten(resource)
                if "*" in flat:
                    found[f"Resource::{flat}"] = None
    return list(found)


_FINDERS: dict[str, Callable[[CfnResource], list[str]]] = {
    "AwsSolutions-IAM4": _managed_policy_findings,
    "AwsSolutions-IAM5": _wildcard_findings,
}


def _finder(rule: str) -> Callable[[CfnResource], list[str]] | None:
    return _FINDERS.get(rule)


# ------------------------------------------------------------------ what the library acknowledges


def _child(scope: IConstruct | None, *path: str) -> IConstruct | None:
    for name in path:
        if scope is None:
            return None
        scope = scope.node.try_find_child(name)
    return scope


def suppress_node_role(role: IConstruct) -> None:
    suppress(role, "AwsSolutions-IAM4", _NODE_REASON, EKS_NODE_POLICIES)


def suppress_cluster_findings(cluster: IConstruct) -> None:
    """The cluster role, aws-cdk-lib's kubectl provider, and the interface endpoints of the
    VPC when the cluster's own construct made it (never a VPC the user passed in)."""
    suppress(
        _child(cluster, "Role"),
        "AwsSolutions-IAM4",
        "The EKS cluster role needs AmazonEKSClusterPolicy (EKS user guide, cluster-iam-role).",
        [f"{_MANAGED}AmazonEKSClusterPolicy"],
    )
    provider = _child(cluster, "KubectlProvider")
    for path in (("Handler", "ServiceRole"), ("Provider", "framework-onEvent", "ServiceRole")):
        role = _child(provider, *path)
        suppress(
            role,
            "AwsSolutions-IAM4",
            _CDK_PROVIDER_REASON,
            [
                {
                    "regex": "/^Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambda(Basic|VPCAccess)ExecutionRole$/"
                },
                {
                    "regex": "/^Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly$/"
                },
                {"regex": "/AmazonElasticContainerRegistryPublicReadOnly/"},
            ],
        )
        suppress(
            _child(role, "DefaultPolicy"),
            "AwsSolutions-IAM5",
            _CDK_PROVIDER_REASON,
            [
                {"regex": "/^Action::s3:(GetBucket|GetObject|List)\\*$/"},
                {
                    "regex": "/^Resource::arn:(<AWS::Partition>|aws[a-z-]*):s3:::cdk-[a-z0-9]+-assets-(<AWS::AccountId>|[0-9]{12})-(<AWS::Region>|[a-z0-9-]+)\\/\\*$/"
                },
                {"regex": "/^Resource::<.*KubectlProviderHandler.*\\.Arn>:\\*$/"},
            ],
        )
    suppress(_child(provider, "Handler"), "AwsSolutions-L1", _CDK_PROVIDER_REASON)
    _suppress_endpoint_findings(cluster)


def _suppress_endpoint_findings(cluster: IConstruct) -> None:
    """``AwsSolutions-EC23`` on the security groups aws-cdk-lib gives interface endpoints:
    acknowledged only where every ingress rule's source is the VPC's own CIDR block."""
    vpc = getattr(cluster, "vpc", None)
    owner = cluster.node.scope
    if vpc is None or owner is None or vpc.node.scope is None:
        return
    vpc_cfn = vpc.node.default_child
    if vpc.node.scope.node.path != owner.node.path or not isinstance(vpc_cfn, CfnResource):
        return
    stack = Stack.of(vpc_cfn)
    own_cidr = {"Fn::GetAtt": [stack.resolve(vpc_cfn.logical_id), "CidrBlock"]}
    for endpoint in vpc.node.children:
        sg = _child(endpoint, "SecurityGroup")
        cfn = sg.node.default_child if sg is not None else None
        if cfn is None or getattr(cfn, "cfn_resource_type", None) != "AWS::EC2::SecurityGroup":
            continue
        ingress = stack.resolve(getattr(cfn, "security_group_ingress", None)) or []
        if ingress and all(
            rule.get("cidrIp") == own_cidr and rule.get("cidrIpv6") is None for rule in ingress
        ):
            suppress(cfn, "AwsSolutions-EC23", _ENDPOINT_REASON)
