"""`reconcile serve`, the forced command of a confined target: every zfs command the driver
sends to a target (built by `zfs/commands.py`, quoted by the `SshRunner`) is allowed; a table of
attacks is refused, each with exit 126, one stderr line and one log record; and a property:
whatever the grammar of allowed and forbidden pieces builds, an accepted command names only
datasets below the root and no forbidden option."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.cli import Console, main
from reconciler.cli.options import _Parser
from reconciler.cli.serve import run_serve
from reconciler.core.plan import ReceiveOptions, SendOptions
from reconciler.core.serve_check import (
    REFUSED_EXIT,
    Refused,
    ServeRules,
    check_argv,
    check_command,
)
from reconciler.zfs import commands
from reconciler.zfs.port import SendRequest
from reconciler.zfs.runner import SshRunner

ROOT = "vault/nas"
RULES = ServeRules((ROOT,))
ROLLBACK = ServeRules((ROOT,), allow_rollback=True)
APPEND = ServeRules((ROOT,), allow_rollback=True, append_only=True)
FS = "vault/nas/tank/my home"  # a space, as zrepl's platform tests use
SNAPS = ("vault/nas/tank/my home@zr_20261126T120000Z", "vault/nas/tank@zr_20261126T121500Z")
TAG = "zr:home:offsite"


def _wire(args: Sequence[str]) -> bytes:
    """The command line our SshRunner sends for `zfs ARGS` (SSH_ORIGINAL_COMMAND)."""
    runner = SshRunner(host="backup", address="backup.example")
    return runner.remote_command(("zfs", *args)).encode()


def _target_commands(rollback: bool) -> list[tuple[str, ...]]:
    """Every argv the driver sends to a target host, built by the same builders."""
    built: list[tuple[str, ...]] = []
    for columns, types in (
        (commands.LIST_COLUMNS, commands.LIST_TYPES),
        (commands.NAME_COLUMNS, commands.LIST_TYPES),
        (commands.STAMP_COLUMNS, commands.STAMP_TYPES),
        (commands.NAME_COLUMNS, commands.SNAPSHOT_TYPES),
    ):
        built.append(commands.list_versions([ROOT, FS], columns, types))
        built += commands.list_filesystems([ROOT, FS], columns=columns, types=types)
    built += commands.list_details([FS, "vault/nas/tank"], list(SNAPS))
    built += commands.holds(list(SNAPS))
    built.append(commands.get(["receive_resume_token", "guid"], [FS]))
    options = ReceiveOptions(
        override=(("canmount", "noauto"), ("readonly", "on"), ("mountpoint", "none")),
        inherit=("mountpoint", "sharenfs"),
        force=rollback,
    )
    built.append(commands.receive(FS, options))
    built.append(commands.receive(FS, ReceiveOptions()))
    built.append(commands.abort_resume(FS))
    built += [commands.hold(TAG, SNAPS[0]), commands.release(TAG, SNAPS[0])]
    built += commands.hold_many(TAG, list(SNAPS)) + commands.release_many(TAG, list(SNAPS))
    built.append(commands.bookmark(SNAPS[0], f"{FS}#zr_20261126T120000Z_offsite"))
    built += commands.destroy_snapshots(FS, ["zr_20261126T120000Z", "zr_a", "manual.1"])
    built.append(commands.destroy_bookmark(f"{FS}#zr_20261126T120000Z_offsite"))
    built += [commands.create(FS, parents=True), commands.create(ROOT, parents=False)]
    if rollback:
        built += [commands.rollback(SNAPS[0], True), commands.rollback(SNAPS[0], False)]
    return built


@pytest.mark.parametrize("args", _target_commands(rollback=False), ids=lambda a: " ".join(a[:2]))
def test_every_command_the_driver_sends_to_a_target_is_allowed(args: tuple[str, ...]) -> None:
    assert check_command(_wire(args), RULES) == args


@pytest.mark.parametrize("args", _target_commands(rollback=True), ids=lambda a: " ".join(a[:2]))
def test_with_allow_rollback_rollbacks_and_forced_receives_are_allowed(
    args: tuple[str, ...],
) -> None:
    assert check_command(_wire(args), ROLLBACK) == args


def test_a_batch_at_the_drivers_argument_budget_is_allowed() -> None:
    snapshots = [f"{FS}@zr_{n:06d}" for n in range(4000)]
    batches = commands.holds(snapshots)
    assert len(batches) > 1
    for args in batches:
        assert check_command(_wire(args), RULES) == args


def test_the_send_side_and_channel_programs_are_not_for_a_target() -> None:
    send = commands.send(SendRequest(FS, "zr_1", options=SendOptions()))
    program = commands.bookmark_program("vault", [(SNAPS[0], f"{FS}#m")])[0]
    for args in (send, program, commands.snapshot([f"{FS}@x"])):
        with pytest.raises(Refused, match="is not allowed here"):
            check_command(_wire(args), RULES)


ATTACKS: list[tuple[str, bytes, ServeRules]] = [
    ("destroy outside the root", b"zfs destroy vault/other@a", RULES),
    ("destroy a filesystem", b"zfs destroy vault/nas/tank", RULES),
    ("destroy -r of the root", b"zfs destroy -r vault/nas", RULES),
    ("destroy -R of the root", b"zfs destroy -R vault/nas@a", RULES),
    ("destroy -f", b"zfs destroy -f vault/nas@a", RULES),
    ("destroy an option after the operand", b"zfs destroy vault/nas@a -R", RULES),
    ("destroy a range", b"zfs destroy vault/nas@a%z", RULES),
    ("destroy the pool", b"zfs destroy vault", RULES),
    ("destroy when append-only", b"zfs destroy vault/nas@a", APPEND),
    ("rollback without --allow-rollback", b"zfs rollback -r vault/nas@a", RULES),
    ("rollback when append-only", b"zfs rollback vault/nas@a", APPEND),
    ("receive -F", b"zfs receive -s -u -F vault/nas/tank", RULES),
    ("receive -F when append-only", b"zfs receive -s -u -F vault/nas/tank", APPEND),
    ("receive outside the root", b"zfs receive -s -u vault/other", RULES),
    ("receive into the pool", b"zfs receive -s -u vault", RULES),
    ("receive -d", b"zfs receive -s -u -d vault/nas", RULES),
    ("receive -e", b"zfs receive -s -u -e vault/nas", RULES),
    ("receive mounting", b"zfs receive -s vault/nas/tank", RULES),
    ("receive -o mountpoint=/etc", b"zfs receive -s -u -o mountpoint=/etc vault/nas/x", RULES),
    ("receive -o canmount=on", b"zfs receive -s -u -o canmount=on vault/nas/x", RULES),
    ("receive -o sharenfs=on", b"zfs receive -s -u -o sharenfs=on vault/nas/x", RULES),
    ("receive -A with -F", b"zfs receive -A -F vault/nas/x", RULES),
    ("recv alias", b"zfs recv -s -u vault/nas/x", RULES),
    ("dot-dot", b"zfs create -u -p vault/nas/../other", RULES),
    ("dot-dot at the end", b"zfs destroy vault/nas/..@a", RULES),
    ("dot component", b"zfs create -u -p vault/nas/./x", RULES),
    ("empty component", b"zfs create -u -p vault/nas//x", RULES),
    ("trailing slash", b"zfs create -u -p vault/nas/", RULES),
    ("prefix that is not a parent", b"zfs create -u -p vault/nas2", RULES),
    ("space escapes the name", b"zfs destroy vault/nas@a vault/other@b", RULES),
    ("semicolon", b"zfs list -H -p vault/nas; zfs destroy -r vault", RULES),
    ("semicolon in a quoted name", b"zfs create -u -p 'vault/nas/x;reboot'", RULES),
    ("command substitution", b"zfs create -u -p 'vault/nas/$(reboot)'", RULES),
    ("backticks", b"zfs create -u -p 'vault/nas/`reboot`'", RULES),
    ("newline", b"zfs create -u -p 'vault/nas/x\nzfs destroy -r vault'", RULES),
    ("tab", b"zfs create -u -p 'vault/nas/x\ty'", RULES),
    ("pipe", b"zfs list -H -p vault/nas | sh", RULES),
    ("redirection", b"zfs list -H -p vault/nas > /etc/passwd", RULES),
    ("name starting with -R", b"zfs destroy -Rf", RULES),
    ("option-like dataset", b"zfs create -u -p -R", RULES),
    ("create -o mountpoint", b"zfs create -u -p -o mountpoint=/etc vault/nas/x", RULES),
    ("create outside the root", b"zfs create -u -p vault/other", RULES),
    ("create that would mount", b"zfs create -p vault/nas/x", RULES),
    ("combined flags", b"zfs list -Hp vault/nas", RULES),
    ("listing everything", b"zfs list -H -p -o name -t filesystem", RULES),
    ("listing outside", b"zfs list -H -p -o name -r vault", RULES),
    ("listing -d 100", b"zfs list -H -p -d 100 vault/nas", RULES),
    ("hold -r", b"zfs hold -r tag vault/nas@a", RULES),
    ("holds -r", b"zfs holds -H -p -r vault/nas@a", RULES),
    ("release outside", b"zfs release tag vault/other@a", RULES),
    ("zfs set", b"zfs set mountpoint=/ vault/nas", RULES),
    ("zfs allow", b"zfs allow evil destroy vault", RULES),
    ("zfs inherit", b"zfs inherit mountpoint vault/nas", RULES),
    ("zfs send", b"zfs send vault/nas@a", RULES),
    ("zfs program", b"zfs program vault /tmp/x.lua", RULES),
    ("zfs mount", b"zfs mount vault/nas", RULES),
    ("zfs rename", b"zfs rename vault/nas/x vault/x", RULES),
    ("zfs promote", b"zfs promote vault/nas/x", RULES),
    ("zpool", b"zpool destroy vault", RULES),
    ("sudo", b"sudo zfs list -H -p vault/nas", RULES),
    ("absolute zfs path", b"/sbin/zfs list -H -p vault/nas", RULES),
    ("a shell", b"sh -c 'zfs destroy -r vault'", RULES),
    ("interactive", b"", RULES),
    ("zfs alone", b"zfs", RULES),
    ("unbalanced quote", b"zfs create -u -p 'vault/nas/x", RULES),
    ("huge command line", b"zfs holds -H -p " + b"vault/nas@a " * 20_000, RULES),
    ("not UTF-8", b"zfs create -u -p vault/nas/\xff", RULES),
    ("NUL byte", b"zfs create -u -p vault/nas/x\x00y", RULES),
]


@pytest.mark.parametrize(("line", "rules"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
def test_attacks_are_refused(line: bytes, rules: ServeRules) -> None:
    with pytest.raises(Refused):
        check_command(line, rules)


def _serve(tmp_path: Path, line: bytes | None, *flags: str) -> tuple[int, str, list[dict]]:
    """`reconcile serve` through `main`, with SSH_ORIGINAL_COMMAND set to `line` (not set
    when None); exit status, stderr and the log records."""
    log = tmp_path / "serve.log"
    stderr = io.StringIO()
    ran: list[tuple[str, tuple[str, ...]]] = []
    environ = {} if line is None else {b"SSH_ORIGINAL_COMMAND": line}
    argv = ["--root", ROOT, "--log", str(log), *flags]

    def run_zfs(zfs: str, args: Sequence[str]) -> int:
        ran.append((zfs, tuple(args)))
        return 0

    code = run_serve(argv, Console(io.StringIO(), stderr), _Parser, environ, run_zfs)
    records = [json.loads(text) for text in log.read_text().splitlines()] if log.exists() else []
    assert (code == REFUSED_EXIT) == (not ran)
    return code, stderr.getvalue(), records


@pytest.mark.parametrize(("line", "rules"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS])
def test_each_refusal_is_one_stderr_line_exit_126_and_one_log_record(
    tmp_path: Path, line: bytes, rules: ServeRules
) -> None:
    flags = ["--allow-rollback"] if rules.allow_rollback else []
    flags += ["--append-only"] if rules.append_only else []
    code, stderr, records = _serve(tmp_path, line, *flags)
    assert code == REFUSED_EXIT
    assert stderr.startswith("reconcile serve: refused: ") and stderr.count("\n") == 1
    assert len(records) == 1
    assert records[0]["verdict"] == "refused"
    assert records[0]["command"] == line.decode("utf-8", "backslashreplace")


def test_an_allowed_command_runs_zfs_with_the_checked_words_and_is_logged(tmp_path: Path) -> None:
    args = commands.receive(FS, ReceiveOptions(override=(("canmount", "noauto"),)))
    log = tmp_path / "serve.log"
    ran: list[tuple[str, tuple[str, ...]]] = []
    environ = {b"SSH_ORIGINAL_COMMAND": _wire(args)}

    def run_zfs(zfs: str, words: Sequence[str]) -> int:
        ran.append((zfs, tuple(words)))
        return 7

    argv = ["--root", ROOT, "--log", str(log), "--zfs", "/sbin/zfs"]
    code = run_serve(argv, Console(io.StringIO(), io.StringIO()), _Parser, environ, run_zfs)
    assert code == 7
    assert ran == [("/sbin/zfs", args)]
    (record,) = [json.loads(text) for text in log.read_text().splitlines()]
    assert record["verdict"] == "allowed" and record["argv"] == ["zfs", *args]


def test_no_command_at_all_is_refused(tmp_path: Path) -> None:
    code, stderr, records = _serve(tmp_path, None)
    assert code == REFUSED_EXIT and "no command" in stderr and len(records) == 1


def test_refusals_through_main_go_to_stderr(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSH_ORIGINAL_COMMAND", "zfs destroy -r vault")
    stderr = io.StringIO()
    log = tmp_path / "serve.log"
    code = main(
        ["serve", "--root", ROOT, "--log", str(log)], console=Console(io.StringIO(), stderr)
    )
    assert code == REFUSED_EXIT
    assert stderr.getvalue() == (
        "reconcile serve: refused: zfs destroy: option '-r' is not allowed\n"
    )
    assert json.loads(log.read_text())["argv"] == ["zfs", "destroy", "-r", "vault"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ([], "--root"),
        (["--root", "vault/../etc"], "not a filesystem name"),
        (["--root", ROOT, "--zfs", "zfs"], "absolute path"),
    ],
)
def test_bad_serve_options_are_usage_errors(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["serve", *flags], console=Console(io.StringIO(), io.StringIO()))
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_log_that_cannot_be_written_does_not_turn_a_refusal_into_a_run(tmp_path: Path) -> None:
    stderr = io.StringIO()
    environ = {b"SSH_ORIGINAL_COMMAND": b"zfs destroy -r vault"}
    argv = ["--root", ROOT, "--log", str(tmp_path / "missing" / "serve.log")]

    def run_zfs(zfs: str, words: Sequence[str]) -> int:
        raise AssertionError("ran zfs")

    code = run_serve(argv, Console(io.StringIO(), stderr), _Parser, environ, run_zfs)
    assert code == REFUSED_EXIT


# --- the property ---------------------------------------------------------------------------

NAMES = st.sampled_from(
    [
        *(ROOT, f"{ROOT}/a", f"{ROOT}/a b", f"{ROOT}/a/b:c.d_e-f"),
        *("vault", "vault/other", "vault/nas2", f"{ROOT}/..", f"{ROOT}/../x", "-R", ""),
        *(f"{ROOT}/$(x)", f"{ROOT}/x;y", f"{ROOT}/x\ny", f"{ROOT}/`x`", f"{ROOT} ", f"{ROOT}//a"),
    ]
)
GOOD_NAMES = st.sampled_from([ROOT, f"{ROOT}/a", f"{ROOT}/a b"])
VERSIONS = st.sampled_from(["", "", "@a", "@a", "@a,b", "#m", "@a%b", "@", "@-r", "#", "@a b"])
# per verb, the options the reconciler uses (with their values) and its operands' shape
SHAPES: dict[str, tuple[list[list[str]], str]] = {
    "list": ([["-H"], ["-p"], ["-o", "name,guid"], ["-t", "snapshot"], ["-r"], ["-d", "1"]], "N+"),
    "get": ([["-H"], ["-p"], ["-o", "name,property,value,source"]], "PN+"),
    "holds": ([["-H"], ["-p"]], "N+"),
    "hold": ([], "TN+"),
    "release": ([], "TN+"),
    "receive": ([["-s"], ["-u"], ["-F"], ["-o", "canmount=noauto"], ["-x", "mountpoint"]], "N"),
    "create": ([["-u"], ["-p"]], "N"),
    "destroy": ([], "N"),
    "rollback": ([["-r"]], "N"),
    "bookmark": ([], "NN"),
    "set": ([], "PN"),
    "allow": ([], "TPN"),
}
FORBIDDEN_PIECES = [
    *(["-R"], ["-f"], ["-F"], ["-n"], ["--"], ["-d", "9"], ["-A"], ["-Hp"]),
    *(["-o", "mountpoint=/"], ["-o", "canmount=on"], ["-o", "sharenfs=on"]),
]


@st.composite
def hostile_commands(draw: st.DrawFn) -> list[str]:
    """`zfs VERB [options] operands`: the reconciler's options for the verb, some left out,
    maybe one forbidden piece put anywhere, operands of the verb's shape from NAMES."""
    verb = draw(st.sampled_from(sorted(SHAPES)))
    flags, shape = SHAPES[verb]
    words = [w for flag in flags if draw(st.integers(0, 4)) > 0 for w in flag]
    for kind in shape.replace("+", ""):
        count = draw(st.integers(1, 3)) if f"{kind}+" in shape else 1
        for _ in range(count):
            if kind == "N":
                words.append(draw(st.one_of(GOOD_NAMES, NAMES)) + draw(VERSIONS))
            else:
                words.append("zr:home:offsite" if kind == "T" else "mountpoint")
    if draw(st.integers(0, 2)) == 0:
        piece = draw(st.sampled_from(FORBIDDEN_PIECES))
        at = draw(st.integers(0, len(words)))
        words[at:at] = piece
    return ["zfs", verb, *words]


@settings(max_examples=500, deadline=None)
@given(argv=hostile_commands(), rules=st.sampled_from([RULES, ROLLBACK, APPEND]))
def test_an_accepted_command_names_only_datasets_below_the_root(
    argv: list[str], rules: ServeRules
) -> None:
    try:
        args = check_argv(argv, rules)
    except Refused:
        return
    forced = rules.allow_rollback and not rules.append_only
    forbidden = {"-R", "-f", "-n", "--", "-Hp", "mountpoint=/", "canmount=on", "sharenfs=on"}
    assert not (forbidden | ({"-d", "-r"} if args[0] == "destroy" else set())) & set(args)
    assert forced or "-F" not in args
    assert args[0] != "rollback" or forced
    assert not (rules.append_only and args[0] == "destroy")
    assert args[0] not in {"set", "allow"}
    for word in args[1:]:
        if "/" in word or word.startswith("vault"):
            name = word.partition("@")[0].partition("#")[0]
            assert name == ROOT or name.startswith(ROOT + "/"), args
            assert ".." not in name.split("/") and "" not in name.split("/"), args
            assert not set(word) & set("\n;$`%"), args


def test_the_grammar_builds_accepted_commands_too() -> None:
    """The property means something only if many of its commands are accepted."""
    accepted: list[tuple[str, ...]] = []

    @settings(max_examples=1500, deadline=None, database=None, derandomize=True)
    @given(argv=hostile_commands())
    def collect(argv: list[str]) -> None:
        with contextlib.suppress(Refused):
            accepted.append(check_argv(argv, ROLLBACK))

    collect()
    assert len({args[0] for args in accepted}) >= 7 and len(accepted) >= 25
