"""botocore errors translated into what a user can act on; one API call at a time.

Credentials, Region, network and permission errors become one :class:`AwsSetupError`
whose message says what to set (the command-line tool prints it and exits with 2). The
``eks-ultraserver upgrade`` command calls AWS through :func:`call` as well."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore import exceptions as botocore_exceptions


class AwsSetupError(Exception):
    """Credentials, Region, profile, network or permissions stop the checks from running.

    The message is one line that says what to set; the CLI prints it and exits with 2.
    """


_SETUP_ERRORS = (
    botocore_exceptions.NoCredentialsError,
    botocore_exceptions.PartialCredentialsError,
    botocore_exceptions.NoRegionError,
    botocore_exceptions.ProfileNotFound,
    botocore_exceptions.CredentialRetrievalError,
    botocore_exceptions.TokenRetrievalError,
    botocore_exceptions.SSOError,
    botocore_exceptions.ConnectionError,
    botocore_exceptions.HTTPClientError,
)
_CREDENTIAL_CODES = frozenset(
    {
        "AuthFailure",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "RequestExpired",
        "InvalidSignatureException",
    }
)
_PERMISSION_CODES = frozenset({"UnauthorizedOperation", "AccessDenied", "AccessDeniedException"})


def setup_error(exc: BaseException, *, action: str = "") -> AwsSetupError | None:
    """Translates a botocore error about credentials, Region, network or permissions into
    one clear :class:`AwsSetupError`; returns ``None`` for anything else.

    :param action: the IAM action that was called (named in permission errors).
    """
    if isinstance(exc, botocore_exceptions.NoRegionError):
        return AwsSetupError("no AWS Region: pass --region, set 'region' in cdk.json context or AWS_REGION")
    if isinstance(exc, (botocore_exceptions.NoCredentialsError, botocore_exceptions.PartialCredentialsError)):
        return AwsSetupError(
            f"no usable AWS credentials ({exc}): pass --profile, set AWS_PROFILE, or run "
            "'aws configure' / 'aws sso login'"
        )
    if isinstance(exc, botocore_exceptions.ProfileNotFound):
        return AwsSetupError(f"{exc}: check --profile / AWS_PROFILE against ~/.aws/config")
    if isinstance(exc, (botocore_exceptions.SSOError, botocore_exceptions.TokenRetrievalError)):
        return AwsSetupError(f"{exc}: run 'aws sso login' for this profile")
    if isinstance(exc, botocore_exceptions.CredentialRetrievalError):
        return AwsSetupError(f"{exc}: check the credential source of this profile")
    if isinstance(exc, (botocore_exceptions.ConnectionError, botocore_exceptions.HTTPClientError)):
        return AwsSetupError(f"cannot reach AWS ({exc}): check the network, proxy and --region")
    if isinstance(exc, botocore_exceptions.ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in _CREDENTIAL_CODES:
            return AwsSetupError(
                f"AWS rejected the credentials ({code}): refresh them (e.g. 'aws sso login') "
                "or pass another --profile"
            )
        if code == "OptInRequired":
            return AwsSetupError(
                f"the Region is not enabled for this account ({code}): enable it or pass another --region"
            )
        if code in _PERMISSION_CODES:
            what = f" {action}" if action else ""
            return AwsSetupError(
                f"permission denied ({code}): the credentials need{what or ' read access'}; "
                "use a role that has it (--profile)"
            )
    return None


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore_exceptions.ClientError):
        return exc.response.get("Error", {}).get("Code", "")
    return ""


def call(action: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """Calls one API, turning setup errors into :class:`AwsSetupError`."""
    try:
        return fn(**kwargs)
    except (botocore_exceptions.ClientError, *_SETUP_ERRORS) as exc:
        err = setup_error(exc, action=action)
        if err is not None:
            raise err from exc
        raise


def has_operation(client: Any, operation: str) -> bool:
    """Whether the installed botocore knows an operation (new EC2 APIs may be missing)."""
    return operation in client.meta.service_model.operation_names


def error_reason(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, AwsSetupError) and exc.__cause__ else exc
    return error_code(cause) or str(exc)


def is_optional_failure(exc: BaseException) -> bool:
    """Whether an error of an optional check only means "not checked": any API error, or a
    permission error; credentials, Region and network errors still stop the run."""
    if isinstance(exc, AwsSetupError):
        return error_code(exc.__cause__) in _PERMISSION_CODES if exc.__cause__ else False
    return isinstance(exc, botocore_exceptions.ClientError)
