"""The jobs admin and workflows: the steps table, the filter, the buttons."""

import pytest
from django.urls import reverse

import djtasks
from djtasks.models import Job, JobStatus
from tests import tasks

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:djtasks_job_changelist"


def change_page(client, result) -> str:
    return client.get(reverse("admin:djtasks_job_change", args=[result.id])).content.decode()


def test_a_step_page_lists_every_step_with_its_status(admin_client):
    flow = djtasks.chord(
        [tasks.add.step(1, 1), tasks.add.step(2, 2)],
        tasks.collect.step(),
        on_error=tasks.on_workflow_error.step(),
    ).enqueue()

    body = change_page(admin_client, flow.last)

    assert "All steps of workflow" in body
    for result in [*flow.results, flow.on_error]:
        assert reverse("admin:djtasks_job_change", args=[result.id]) in body
    table = body[body.index("djtasks-workflow") : body.index("All steps of workflow")]
    assert table.count('class="djtasks-badge djtasks-WAITING"') == 2
    assert table.count('class="djtasks-badge djtasks-READY"') == 2
    assert table.count('<tr class="djtasks-current">') == 1
    assert ">1.2<" in body and ">on error<" in body
    assert "waits for 2" in body


def test_a_plain_job_page_has_no_workflow_section(admin_client):
    body = change_page(admin_client, tasks.noop.enqueue())
    assert "All steps of workflow" not in body


def test_the_changelist_filters_by_workflow(admin_client):
    flow = djtasks.chain(tasks.add.step(1, 1), tasks.double.step()).enqueue()
    djtasks.chain(tasks.add.step(1, 1), tasks.double.step()).enqueue()
    plain = tasks.noop.enqueue()

    def listed(params):
        response = admin_client.get(reverse(CHANGELIST), params)
        return {str(job.pk) for job in response.context["cl"].result_list}

    assert listed({"workflow": str(flow.id)}) == {result.id for result in flow.results}
    assert len(listed({"workflow": "any"})) == 4
    assert plain.id not in listed({"workflow": "any"})
    assert listed({"workflow": "not-a-uuid"}) == set()


def test_a_never_released_step_offers_cancel_but_not_retry(admin_client):
    flow = djtasks.chain(tasks.add.step(1, 1), tasks.double.step()).enqueue()
    waiting = flow.results[1]

    assert "Cancel job" in change_page(admin_client, waiting)
    admin_client.post(
        reverse("admin:djtasks_job_operate", args=[waiting.id, "cancel"]), follow=True
    )
    assert Job.objects.get(pk=waiting.id).status == JobStatus.CANCELLED

    assert "Retry job" not in change_page(admin_client, waiting)


def test_deleting_a_step_in_the_admin_fails_its_workflow(admin_client):
    flow = djtasks.chain(tasks.add.step(1, 1), tasks.double.step()).enqueue()

    admin_client.post(
        reverse(CHANGELIST),
        {"action": "delete_selected", "_selected_action": [flow.results[0].id], "post": "yes"},
        follow=True,
    )

    assert not Job.objects.filter(pk=flow.results[0].id).exists()
    assert Job.objects.get(pk=flow.results[1].id).status == JobStatus.CANCELLED
