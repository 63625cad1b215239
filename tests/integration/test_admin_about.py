"""Jobs bound to model rows: .using(about=instance) and the admin listing."""

import pytest
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.urls import path, reverse

from djtasks.admin import JobsInline
from djtasks.compat import InvalidTask
from djtasks.models import Job
from example_project.demo.models import Report
from example_project.demo.tasks import build_report
from tests.tasks import add

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"


# A second admin site whose Report page uses the inline instead of the mixin.
inline_site = admin.AdminSite(name="inline_admin")


class ReportWithJobsInline(admin.ModelAdmin):
    inlines = [JobsInline]


inline_site.register(Report, ReportWithJobsInline)
urlpatterns = [path("inline-admin/", inline_site.urls), path("admin/", admin.site.urls)]


def test_using_about_records_the_instance():
    report = Report.objects.create(title="Q3")
    result = build_report.using(about=report).enqueue(report.pk)
    job = Job.objects.get(pk=result.id)
    assert job.content_type == ContentType.objects.get_for_model(Report)
    assert job.object_id == str(report.pk)
    assert job.about == report


def test_bulk_enqueue_records_the_instance_too():
    from djtasks import bulk_enqueue

    report = Report.objects.create(title="bulk")
    results = bulk_enqueue(add.using(about=report), [((1, 2), {}), ((3, 4), {})])
    jobs = Job.objects.filter(pk__in=[r.id for r in results])
    assert {job.object_id for job in jobs} == {str(report.pk)}


@pytest.mark.parametrize("about", [Report(title="unsaved"), "not a model", 42])
def test_about_must_be_a_saved_instance(about):
    with pytest.raises(InvalidTask, match="saved model instance"):
        add.using(about=about).enqueue(1, 2)
    assert not Job.objects.exists()


def test_jobs_without_about_have_no_binding():
    result = add.enqueue(1, 2)
    job = Job.objects.get(pk=result.id)
    assert job.content_type_id is None and job.object_id is None


def test_the_instance_page_lists_its_jobs(admin_client):
    report = Report.objects.create(title="Q3")
    other = Report.objects.create(title="Q4")
    mine = build_report.using(about=report).enqueue(report.pk)
    theirs = build_report.using(about=other).enqueue(other.pk)
    body = admin_client.get(reverse("admin:demo_report_change", args=[report.pk])).content.decode()
    assert reverse("admin:djtasks_job_change", args=[mine.id]) in body
    assert reverse("admin:djtasks_job_change", args=[theirs.id]) not in body
    assert 'class="djtasks-badge djtasks-READY"' in body
    # A link to every job about it, through the jobs list.
    all_jobs = admin_client.get(
        reverse("admin:djtasks_job_changelist"),
        {
            "content_type__id__exact": ContentType.objects.get_for_model(Report).pk,
            "object_id__exact": report.pk,
        },
    )
    assert all_jobs.status_code == 200
    assert [str(job.pk) for job in all_jobs.context["cl"].result_list] == [mine.id]


def test_the_job_page_links_back_to_the_instance(admin_client):
    report = Report.objects.create(title=SCRIPT)
    result = build_report.using(about=report).enqueue(report.pk)
    body = admin_client.get(reverse("admin:djtasks_job_change", args=[result.id])).content.decode()
    assert reverse("admin:demo_report_change", args=[report.pk]) in body
    assert SCRIPT not in body


def test_users_who_may_not_see_jobs_get_no_job_panel(client, django_user_model):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("editor", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="change_report"))
    client.force_login(user)
    report = Report.objects.create(title="Q3")
    build_report.using(about=report).enqueue(report.pk)
    response = client.get(reverse("admin:demo_report_change", args=[report.pk]))
    assert response.status_code == 200
    assert "djtasks-badge" not in response.content.decode()


@pytest.mark.urls(__name__)
def test_jobs_inline(admin_client):
    report = Report.objects.create(title="Q3")
    result = build_report.using(about=report).enqueue(report.pk)
    page = admin_client.get(reverse("inline_admin:demo_report_change", args=[report.pk]))
    body = page.content.decode()
    assert page.status_code == 200
    assert "Jobs about this object" in body
    assert reverse("admin:djtasks_job_change", args=[result.id]) in body
    assert "example_project.demo.tasks.build_report" in body
