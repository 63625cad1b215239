"""Which tasks may run: only Task objects defined in installed apps.

A task path comes from a database row (or the admin), so it is untrusted:
``os.system`` must never be called because a row names it. A path runs only
if it resolves to a Task object (of django.tasks or the backport) whose own
module path is that path, and the module belongs to an installed app. Every
Task validated by a djtasks backend is recorded here as it is defined.
"""

from importlib import import_module

from django.apps import apps
from django.utils.module_loading import autodiscover_modules

from djtasks.compat import TASK_CLASSES
from djtasks.exceptions import UnknownTask  # noqa: F401 - registry.UnknownTask

_tasks: dict = {}


def register(task) -> None:
    """Record a task defined at module level (the first definition wins)."""
    _tasks.setdefault(task.module_path, task)


def autodiscover() -> None:
    """Import the ``tasks`` module of every installed app."""
    autodiscover_modules("tasks")


def get(path: str):
    """Return the registered task at ``path`` or raise UnknownTask."""
    task = _tasks.get(path)
    if task is None:
        _import_if_installed(path)
        task = _tasks.get(path)
    if task is None:
        raise UnknownTask(f"{path!r} is not a registered task.")
    return task


def is_registered(path: str) -> bool:
    try:
        get(path)
    except UnknownTask:
        return False
    return True


def registered_paths() -> list[str]:
    return sorted(_tasks)


def _import_if_installed(path: str) -> None:
    """Import the module of ``path`` if an installed app owns it."""
    module_name, _, attribute = path.rpartition(".")
    if not module_name or not _owned_by_installed_app(module_name):
        return
    try:
        module = import_module(module_name)
    except ImportError:
        return
    candidate = getattr(module, attribute, None)
    # Importing the module defines its tasks, which registers them through
    # the backend's validate_task; a Task made by another backend is added
    # here if it names itself by this path.
    if isinstance(candidate, TASK_CLASSES) and candidate.module_path == path:
        register(candidate)


def _owned_by_installed_app(module_name: str) -> bool:
    return any(
        module_name == config.name or module_name.startswith(config.name + ".")
        for config in apps.get_app_configs()
    )
