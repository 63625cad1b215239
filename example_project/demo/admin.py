from django.contrib import admin

from djtasks.admin import JobsAboutMixin

from .models import Report


@admin.register(Report)
class ReportAdmin(JobsAboutMixin, admin.ModelAdmin):
    list_display = ("title", "rows", "created_at", "built_at")
    readonly_fields = ("rows", "built_at")
