"""Errors a user can act on.  The CLI prints them as one line, without a traceback."""


class EdgeMaasError(Exception):
    """Base class: the message says what is wrong and, where possible, what to do."""


class ModelFormatError(EdgeMaasError):
    """A file is not a TFLite model this tool can read, or uses features it refuses."""


class PartitionError(EdgeMaasError):
    """A cut plan is impossible (unknown tensor, empty shard, ...)."""


class ManifestError(EdgeMaasError):
    """A manifest is malformed or does not match the shards beside it."""


class TensorMismatchError(EdgeMaasError):
    """An input tensor is missing or has the wrong shape or dtype."""


class BackendUnavailableError(EdgeMaasError):
    """The requested backend cannot run on this machine (missing package, ...)."""


class UnsupportedOpError(ModelFormatError):
    """The native executor has no kernel for an op, or for the way the op is used."""


class TransportError(EdgeMaasError):
    """The broker could not be reached, a request timed out, or a message was malformed."""


class IntegrityError(EdgeMaasError):
    """Received bytes do not match their announced sha256 (nothing is kept)."""


class StageUnavailableError(EdgeMaasError):
    """A stage of a request can run nowhere: this device does not hold its submodel and no worker answered."""


class UnknownTaskError(EdgeMaasError):
    """A request names a task the service does not have (or names none where it has several)."""


class PayloadTooLargeError(TransportError):
    """A message (a request, or a device's reply) does not fit the broker's maximum packet size; it was not sent."""


class RequestTimeoutError(TransportError):
    """No answer (or no awaited report) came within the caller's timeout."""


class DeviceUnknownError(RequestTimeoutError):
    """A device never reported to this broker and did not answer within the timeout (a typo in its id?)."""


class DeviceOfflineError(EdgeMaasError):
    """The device's retained report says it is offline (its last will, or a clean stop)."""


class DeviceError(EdgeMaasError):
    """The device answered with an error: no model deployed yet, inputs it refused, a model that failed."""
