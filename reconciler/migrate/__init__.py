"""Converters from other tools' configurations to our manifests (`reconcile import`).

`report.py` holds what every converter returns (`Conversion`: the manifest documents and the
`Finding`s about what was not converted or converted with a difference) and how the CLI writes
them; `names.py` turns names found in the input into manifest names. `zrepl.py` reads one
zrepl.yml per machine (its parts in `zrepl_*.py`: reading, jobs, snapshotting, hooks, transfer
options, transports, keep rules, and the final check); `sanoid.py` a sanoid.conf, with `ini.py`
(the INI reader), `sanoid_settings.py` (effective settings), `sanoid_policy.py` (schedule,
retention, hooks), `syncoid.py` (syncoid command lines) and `sanoid_replication.py` (targets and
Hosts). The converters are pure functions of the input text: the CLI reads the files.
"""
