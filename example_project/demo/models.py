"""A model for the demo: reports that a background job builds."""

from django.db import models


class Report(models.Model):
    """A report built by the ``build_report`` task; its admin page lists its jobs."""

    title = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    rows = models.PositiveIntegerField(default=0)
    built_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.title
