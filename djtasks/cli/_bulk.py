"""retry, cancel and delete: the same filters, dry run and batches, another operation."""

from djtasks.cli import _common
from djtasks.control.bulk import apply_in_batches


def run(options, out, *, eligible, operation, done, empty=0) -> int:
    """Count (dry run) or change, in batches, the filtered jobs ``eligible`` keeps."""
    backend = _common.backend_of(options)
    jobs = eligible(_common.matching_jobs(options, backend))
    if options["dry_run"]:
        count = jobs.count()
        out.write(f"Dry run: {_common.plural(count, 'job')} would be changed; nothing changed.")
        return 0
    out.write(done(apply_in_batches(jobs, operation, empty=empty)))
    return 0
