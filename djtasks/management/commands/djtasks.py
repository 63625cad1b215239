"""manage.py djtasks SUBCOMMAND: the operator's commands (djtasks.cli, one module each)."""

from django.core.management.base import BaseCommand, CommandError

from djtasks.cli import BadInput, subcommands

# The exit status for refused input, as argparse uses for a bad argument.
BAD_INPUT = 2


class Command(BaseCommand):
    help = "Operate djtasks: see the subcommands below (manage.py djtasks SUBCOMMAND --help)."
    # No system checks first: they load the URLconf and every admin, which
    # would double the time of `health`, a probe run every few seconds.
    # The subcommands check what they use themselves (queues, task paths).
    requires_system_checks = []

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        for name, module in subcommands().items():
            module.add_arguments(
                commands.add_parser(name, help=module.HELP, description=module.HELP)
            )

    def handle(self, *args, subcommand, **options):
        module = subcommands()[subcommand]
        try:
            status = module.run(options, self.stdout)
        except BadInput as error:
            raise CommandError(str(error), returncode=BAD_INPUT) from None
        if status:
            # A non-zero status without a traceback (e.g. `health` when no
            # worker beats); the subcommand printed its reason.
            raise SystemExit(status)
