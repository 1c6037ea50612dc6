"""The command line: thin Typer commands and the rich views. The only package that prints."""
