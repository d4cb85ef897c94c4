"""Bring-your-own-archive sources: platform exports (Medium, LinkedIn, Substack), RSS/Atom feeds, notes folders.

`service.ArchiveImporter` runs an import; `report` holds what it is asked (`SourceSpec`) and what it did
(`ImportReport`); one module per format (`medium`, `linkedin`, `substack`, `feeds`, `notes`), `detect` picks
the format, `archive` reads zips and folders within limits. (Nothing is imported here: a config reader can load
`report` without the HTML and feed parsers.)
"""
