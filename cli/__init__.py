"""The command line: typer commands that parse flags, call one library function and hand the result to the output."""
