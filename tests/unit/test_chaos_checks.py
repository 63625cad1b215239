"""The chaos run's verdict on one job: what counts as lost or as an unexplained re-run."""

from types import SimpleNamespace

from tests.reliability.chaos import problems_of

LOST = {"exception_class_path": "djtasks.exceptions.WorkerLost", "traceback": "..."}


def job(status="SUCCESSFUL", attempts=1, errors=(), return_value=None, lost_attempts=None):
    value = attempts if return_value is None else return_value
    lost = sum(error is LOST for error in errors) if lost_attempts is None else lost_attempts
    return SimpleNamespace(
        id="j",
        status=status,
        attempts=attempts,
        errors=list(errors),
        return_value=value,
        lost_attempts=lost,
        # A max_attempts 1 job: each lost attempt gave its place back.
        max_attempts=1 + lost,
    )


def runs(*pids_and_attempts):
    return [SimpleNamespace(pid=pid, attempt=attempt) for pid, attempt in pids_and_attempts]


def test_a_job_run_once_is_fine():
    assert problems_of(job(), runs((10, 1)), killed_pids=set()) == []


def test_a_rerun_after_its_process_was_killed_is_fine():
    done = job(attempts=3, errors=[LOST, LOST])

    assert problems_of(done, runs((10, 1), (11, 3)), killed_pids={10, 99}) == []


def test_a_finished_run_handed_back_from_a_killed_process_is_fine():
    # Finished, its outcome not yet written when the process was killed: the
    # supervisor hands it back uncounted, so two runs share attempt 1.
    assert problems_of(job(attempts=1), runs((10, 1), (11, 1)), killed_pids={10}) == []


def test_a_rerun_without_a_kill_is_reported():
    done = job(attempts=2, errors=[LOST])

    [problem] = problems_of(done, runs((10, 1), (11, 2)), killed_pids=set())
    assert "were not killed" in problem


def test_a_job_that_did_not_succeed_or_never_ran_is_reported():
    assert "ended FAILED" in problems_of(job(status="FAILED"), runs((1, 1)), set())[0]
    assert "never ran" in problems_of(job(), [], set())[0]


def test_an_attempt_lost_without_a_worker_lost_entry_is_reported():
    done = job(attempts=2, errors=[])

    [problem] = problems_of(done, runs((11, 2)), killed_pids=set())
    assert "WorkerLost" in problem


def test_a_return_value_from_another_attempt_is_reported():
    done = job(attempts=2, errors=[LOST], return_value=1)

    [problem] = problems_of(done, runs((10, 1), (11, 2)), killed_pids={10})
    assert "last execution" in problem


def test_a_lost_attempt_that_used_up_max_attempts_is_reported():
    done = job(attempts=2, errors=[LOST], lost_attempts=0)

    [problem] = problems_of(done, runs((10, 1), (11, 2)), killed_pids={10})
    assert "lost_attempts 0" in problem
