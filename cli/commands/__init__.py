"""The ``detnat`` commands: one Typer app per noun (``realm``, ``plan``, ``token`` ...) and the
top-level verbs (``forward``, ``reverse``, ``serve``), each in its own module, composed by
:mod:`cli.main`. A command parses its options, calls the engine or the service, and renders;
what commands share is in :mod:`cli.runtime` and :mod:`cli.output`, never in one another."""
