"""The one exception type commands raise: its message is what Docker shows the user."""


class RunvmError(Exception):
    pass


class NotFound(RunvmError):
    """Carries runc's wording ("does not exist"), which containerd tolerates on delete."""
