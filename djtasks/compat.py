"""One import point for the tasks framework: Django's own or the backport.

Django 6.0+ ships ``django.tasks``; on Django 5.2 the ``django-tasks`` package
supplies the same API as ``django_tasks``. Libraries such as Wagtail define
their tasks with the backport even on Django 6, and both frameworks read the
same ``TASKS`` setting, so one process may hold Task objects of both kinds.
``TASK_CLASSES`` and ``framework_of()`` let djtasks accept either.
"""

from importlib import import_module
from importlib.util import find_spec

_NAMES = (
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultStatus",
)


def _load(package: str, invalid_task: str, invalid_backend: str):
    base = import_module(f"{package}.base")
    exceptions = import_module(f"{package}.exceptions")
    framework = {name: getattr(base, name) for name in _NAMES}
    framework.update(
        package=package,
        BaseTaskBackend=import_module(f"{package}.backends.base").BaseTaskBackend,
        signals=import_module(f"{package}.signals"),
        InvalidTask=getattr(exceptions, invalid_task),
        InvalidTaskBackend=getattr(exceptions, invalid_backend),
        TaskResultDoesNotExist=exceptions.TaskResultDoesNotExist,
        task_backends=import_module(package).task_backends,
    )
    return framework


def _frameworks():
    found = []
    if find_spec("django.tasks") is not None:
        found.append(_load("django.tasks", "InvalidTask", "InvalidTaskBackend"))
    if find_spec("django_tasks") is not None:
        found.append(_load("django_tasks", "InvalidTaskError", "InvalidTaskBackendError"))
    if not found:
        raise ImportError(
            "djtasks needs Django 6.0+ (django.tasks) or, on Django 5.2, "
            "the django-tasks backport package."
        )
    return found


FRAMEWORKS = _frameworks()
# The primary framework: Django's own when present, else the backport.
PRIMARY = FRAMEWORKS[0]

Task = PRIMARY["Task"]
TaskContext = PRIMARY["TaskContext"]
TaskError = PRIMARY["TaskError"]
TaskResult = PRIMARY["TaskResult"]
TaskResultStatus = PRIMARY["TaskResultStatus"]
BaseTaskBackend = PRIMARY["BaseTaskBackend"]
InvalidTask = PRIMARY["InvalidTask"]
TaskResultDoesNotExist = PRIMARY["TaskResultDoesNotExist"]
task_backends = PRIMARY["task_backends"]
signals = PRIMARY["signals"]

# Re-exported helpers whose home differs between Django and the backport.
if PRIMARY["package"] == "django.tasks":
    from django.utils.inspect import is_module_level_function  # noqa: F401
    from django.utils.json import normalize_json  # noqa: F401
else:
    from django_tasks.utils import is_module_level_function, normalize_json  # noqa: F401

TASK_CLASSES = tuple(framework["Task"] for framework in FRAMEWORKS)


def framework_of(task) -> dict:
    """Return the framework (Django's or the backport's) a Task belongs to."""
    for framework in FRAMEWORKS:
        if isinstance(task, framework["Task"]):
            return framework
    raise TypeError(f"{task!r} is not a Task of django.tasks or django_tasks.")


def database_of(alias: str) -> str:
    """The database alias holding the jobs of TASKS[alias] ("default" if none)."""
    return getattr(task_backends[alias], "database", "default")


def signals_of(task):
    """The signals module of the framework ``task`` belongs to.

    A backport Task's receivers (its logging among them) listen on the
    backport's signals, a Django Task's on Django's.
    """
    return framework_of(task)["signals"]
