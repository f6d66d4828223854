"""Errors a user can cause in a project; each message names the file and the fix."""


class ProjectError(Exception):
    """Base class for project errors."""


class SchemaError(ProjectError):
    """A project database from an older or newer version that cannot be used as is."""


class MediaError(ProjectError):
    """A video or image folder that cannot be opened or decoded."""


class FormatError(ProjectError):
    """An export that cannot be written or an import file that cannot be read."""


class StorageError(ProjectError):
    """The project file cannot be read or written (read-only folder, full disk, locked); what was
    saved before is intact."""
