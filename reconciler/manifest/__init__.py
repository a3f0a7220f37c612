"""Manifests: pydantic models, YAML loading, validation and schema export.

What the rest of the program calls:
- `loader.load_manifests(paths) -> Manifests`, raising `errors.ManifestErrors` (every error,
  each printed as `FILE:LINE:COLUMN: field.path: message`); `loader.parse_manifests` does the
  same for in-memory texts; `loader.manifest_files` lists the files a set of paths stands for.
- `models`: `Host`, `Policy` and their parts, the enums `Transport`, `Protection`,
  `InitialReplication`, and `Manifests` (hosts and policies by name, document locations).
- `schema.json_schema()` / `schema.schema_text()`: the JSON Schema generated from the models.
- `durations`, `grid`, `cron`: the value syntaxes used inside manifests.

Modules: `models` (documents), `fields` (annotated field types), `yamldoc` (YAML with
positions), `loader` (files → Manifests), `validate` (cross-document checks), `errors`,
`schema`. This package imports no other part of the program, except that `validate` uses the
pure filter module `reconciler.manifest.filters`. Nothing is imported here, so that importing one
submodule stays cheap and free of cycles.
"""
