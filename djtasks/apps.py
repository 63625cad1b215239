from django.apps import AppConfig


class DjtasksConfig(AppConfig):
    name = "djtasks"
    verbose_name = "Tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from djtasks import checks  # noqa: F401 - registers the system checks
