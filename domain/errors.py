"""Domain errors: a small tree, translated once at the interface layer.

DomainError
 ├── InvalidRequestError      a value broke a rule (names the field)
 │    └── RequestTooLargeError a value is larger than the limit (names the field)
 ├── ServiceCallNotFoundError unknown id, or another tenant's id
 └── InvalidTransitionError   a command is not allowed in the call's current state
"""


class DomainError(Exception):
    """Base of every duecall domain error."""


class InvalidRequestError(DomainError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class RequestTooLargeError(InvalidRequestError):
    """A value (the body to send) is larger than the deployment allows."""


class ServiceCallNotFoundError(DomainError):
    def __init__(self, service_call_id: object) -> None:
        super().__init__(f"service call {service_call_id} not found")
        self.service_call_id = service_call_id


class InvalidTransitionError(DomainError):
    def __init__(self, command: str, status: str) -> None:
        super().__init__(f"cannot {command} a call that is {status}")
        self.command = command
        self.status = status
