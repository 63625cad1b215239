"""Models used only by the test suite."""

from django.db import models


class Ledger(models.Model):
    """One row per execution of a test task: proves how often a job ran."""

    job_id = models.CharField(max_length=64, db_index=True)
    tag = models.CharField(max_length=100, blank=True)
    attempt = models.PositiveIntegerField(default=1)
    pid = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.job_id} #{self.attempt} {self.tag}"
