"""`outcrop cassettes import`: vcrpy / pytest-recording cassettes into Outcrop cassettes.

Reads one or more vcrpy cassettes (YAML or JSON), converts their bedrock-runtime and
sagemaker-runtime exchanges (recording/vcr_import.py) and writes one Outcrop cassette, which
`outcrop serve --replay DIR` then serves. Exchanges with other services are skipped and listed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

cassettes = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Work with Outcrop cassettes."
)


@cassettes.command("import")
def import_command(
    sources: Annotated[
        list[Path], typer.Argument(help="vcrpy cassette files (YAML or JSON).", metavar="IN...")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The Outcrop cassette to write (.json).")
    ],
    append: Annotated[
        bool, typer.Option("--append", help="Add to OUTPUT's interactions instead of replacing.")
    ] = False,
    redact_header: Annotated[
        list[str] | None,
        typer.Option("--redact-header", help="Also redact this request header (repeatable)."),
    ] = None,
    redact_path: Annotated[
        list[str] | None,
        typer.Option("--redact-path", help="Redact this JSON path of request bodies (repeatable)."),
    ] = None,
    redact_pattern: Annotated[
        list[str] | None,
        typer.Option("--redact-pattern", help="Redact what this regex matches (repeatable)."),
    ] = None,
) -> None:
    """Convert vcrpy / pytest-recording cassettes of Bedrock or SageMaker Runtime calls into
    one Outcrop cassette (replay it with `outcrop serve --replay DIR`)."""
    from outcrop.recording.cassette import Cassette, CassetteError, Redaction
    from outcrop.recording.vcr_import import ImportProblem, import_vcr

    try:
        redaction = Redaction.build(
            headers=redact_header or (), paths=redact_path or (), patterns=redact_pattern or ()
        )
    except ValueError as exc:  # a bad JSON path or regular expression
        raise typer.BadParameter(str(exc)) from None
    try:
        cassette = Cassette.load(output) if append and output.exists() else Cassette()
    except CassetteError as exc:
        raise typer.BadParameter(str(exc), param_hint="--output") from None
    before = len(cassette.interactions)
    for source in sources:
        try:
            result = import_vcr(source.read_text(encoding="utf-8"), redaction)
        except (OSError, UnicodeDecodeError, ImportProblem) as exc:
            typer.echo(f"outcrop: {source}: {exc}", err=True)
            raise typer.Exit(1) from None
        cassette.interactions.extend(result.interactions)
        for problem in result.skipped:
            typer.echo(f"{source}: skipped {problem}", err=True)
        typer.echo(
            f"{source}: {len(result.interactions)} interactions imported, "
            f"{len(result.skipped)} skipped"
        )
    cassette.save(output)
    typer.echo(f"{output}: {len(cassette.interactions) - before} interactions written")
