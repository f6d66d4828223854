"""Exceptions a user can cause; each message names the file or value and the fix."""


class SSTrackError(Exception):
    """Base class of every error the tracker library raises on bad input."""


class ConfigError(SSTrackError):
    """An unknown model config name or override."""


class CheckpointError(SSTrackError):
    """A weight file that cannot be read or does not fit the model."""


class InputError(SSTrackError):
    """A bad image, box or media path given to the tracker."""
