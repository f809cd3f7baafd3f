"""Pure parsing of the Invoke API's FunctionName / Qualifier and building of ARNs.

Accepted forms (reference §1): ``name``, ``name:qualifier``, a full ARN
``arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`` and a partial ARN
``<account>:function:<name>[:<qualifier>]``, each possibly percent-encoded.
The account field maps to a namespace: the configured account id means ``default``;
any other value that is a DNS label is the namespace itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from klambda_gateway.errors import InvalidParameterValue
from klambda_gateway.registry import LATEST

DEFAULT_NAMESPACE = "default"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_QUALIFIER = re.compile(r"^(\$LATEST|[0-9]{1,10}|[A-Za-z0-9_-]{1,128})$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class FunctionRef:
    namespace: str
    name: str
    qualifier: str | None  # None = unqualified ($LATEST)


def namespace_for_account(account: str, *, account_id: str) -> str:
    if account == account_id:
        return DEFAULT_NAMESPACE
    if _DNS_LABEL.match(account):
        return account
    raise InvalidParameterValue(
        f"The account field {account!r} of the function ARN is neither the platform's "
        f"account id {account_id} nor a namespace name (a DNS label): use one of those"
    )


def account_for_namespace(namespace: str, *, account_id: str) -> str:
    return account_id if namespace == DEFAULT_NAMESPACE else namespace


def function_arn(
    namespace: str, name: str, qualifier: str | None = None, *, region: str, account_id: str
) -> str:
    account = account_for_namespace(namespace, account_id=account_id)
    arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


def parse_function_name(raw: str, qualifier: str | None, *, account_id: str) -> FunctionRef:
    """Pure: FunctionName (+ optional Qualifier parameter) -> namespace, name, qualifier."""
    text = unquote(raw) if "%" in raw else raw
    parts = text.split(":")
    namespace = DEFAULT_NAMESPACE
    if parts[0] == "arn":
        # arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
        if len(parts) not in (7, 8) or parts[2] != "lambda" or parts[5] != "function":
            raise InvalidParameterValue(
                f"{text!r} is not a function ARN: expected "
                "arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]"
            )
        namespace = namespace_for_account(parts[4], account_id=account_id)
        name, inner = parts[6], (parts[7] if len(parts) == 8 else None)
    elif len(parts) >= 3 and parts[1] == "function":
        if len(parts) > 4:
            raise InvalidParameterValue(
                f"{text!r} is not a partial function ARN: expected "
                "<account>:function:<name>[:<qualifier>]"
            )
        namespace = namespace_for_account(parts[0], account_id=account_id)
        name, inner = parts[2], (parts[3] if len(parts) == 4 else None)
    elif len(parts) <= 2:
        name, inner = parts[0], (parts[1] if len(parts) == 2 else None)
    else:
        raise InvalidParameterValue(
            f"{text!r} is not a function name: use name, name:qualifier or a function ARN"
        )
    if not _NAME.match(name):
        raise InvalidParameterValue(
            f"Function name {name!r} is invalid: use 1-64 letters, digits, '-' or '_'"
        )
    if qualifier == "":
        qualifier = None
    if inner is not None and qualifier is not None and inner != qualifier:
        raise InvalidParameterValue(
            f"The derived qualifier from the function name ({inner}) does not match the "
            f"specified qualifier ({qualifier}): give the qualifier only once"
        )
    final = inner if inner is not None else qualifier
    if final is not None and not _QUALIFIER.match(final):
        raise InvalidParameterValue(
            f"Qualifier {final!r} is invalid: use $LATEST, a version number or an alias name"
        )
    return FunctionRef(namespace=namespace, name=name, qualifier=final)


def is_version(qualifier: str) -> bool:
    return qualifier == LATEST or qualifier.isdigit()
