"""The build policy: a pure Dockerfile checker run before anything reaches Docker.

`check_dockerfile(text, allowed_bases=..., allowed_registries=...)` returns a `PolicyReport`
whose `errors` refuse the build (each names the rule it broke and the line) and whose
`warnings` are shown but do not block (an image whose final stage runs as root).
`RUN --mount` may use only the types in `ALLOWED_MOUNT_TYPES`.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

DOCKER_HUB = "docker.io"
_DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z]+)\s*=\s*(.*)$")
_URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://|^git@")
_ROOT_USERS = {"", "root", "0"}
_WHITESPACE_RE = re.compile(r"\s+")

# The `RUN --mount` types a build may use, with what each is for (shown on the policy page and
# the build form). `secret` and `ssh` are refused: the build host's secrets and agent sockets
# are not the builder's to borrow. A type Docker adds later is refused until it is listed here.
ALLOWED_MOUNT_TYPES: dict[str, str] = {
    "bind": "the build context, an earlier stage or an allowed base image (from=…), read-only by default",
    "cache": "a build cache directory (e.g. for apt or pip downloads)",
    "tmpfs": "a temporary in-memory directory",
}


@dataclass(frozen=True)
class Violation:
    """One broken (or warned-about) rule, with the Dockerfile line it was found on."""

    rule: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message} (rule: {self.rule})"


@dataclass
class PolicyReport:
    """The outcome of a check: errors block the build, warnings do not."""

    errors: list[Violation] = field(default_factory=list)
    warnings: list[Violation] = field(default_factory=list)
    total_steps: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing blocks the build."""
        return not self.errors


@dataclass(frozen=True)
class Instruction:
    """One logical Dockerfile instruction (continuation lines joined)."""

    line: int
    keyword: str
    args: str


def parse_instructions(text: str) -> tuple[list[Instruction], list[tuple[int, str]]]:
    """Split a Dockerfile into instructions, plus the leading comment lines (parser directives)."""
    instructions: list[Instruction] = []
    header: list[tuple[int, str]] = []
    buffer = ""
    start = 0
    seen_instruction = False
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not buffer:
            if not stripped:
                continue
            if stripped.startswith("#"):
                if not seen_instruction:
                    header.append((number, stripped))
                continue
            start = number
        elif stripped.startswith("#"):
            continue  # comments inside a continued instruction are dropped by Docker too
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        instructions.append(_instruction(start, buffer))
        seen_instruction = True
        buffer = ""
    if buffer.strip():
        instructions.append(_instruction(start, buffer))
    return instructions, header


def _instruction(line: int, text: str) -> Instruction:
    """One instruction from its joined text; Docker separates the keyword by any whitespace."""
    keyword, _, args = _partition_ws(text.strip())
    return Instruction(line, keyword.upper(), args.strip())


def _partition_ws(text: str) -> tuple[str, str, str]:
    """Like `str.partition(" ")`, but on the first run of any whitespace (tabs included)."""
    parts = _WHITESPACE_RE.split(text, maxsplit=1)
    return (parts[0], " ", parts[1]) if len(parts) == 2 else (parts[0], "", "")


def _split_flags(args: str) -> tuple[list[str], str]:
    """Leading `--flag[=value]` tokens and the rest of the arguments."""
    flags: list[str] = []
    rest = args
    while rest.startswith("--"):
        token, _, rest = _partition_ws(rest)
        flags.append(token)
        rest = rest.lstrip()
    return flags, rest


def _mount_options(spec: str) -> dict[str, str] | None:
    """The `key=value` options of a `--mount` value (CSV, as BuildKit reads it), keys lower-cased.

    None when the value does not parse; a bare option (e.g. `readonly`) maps to "true".
    """
    try:
        rows = list(csv.reader([spec]))
    except csv.Error:
        return None
    options: dict[str, str] = {}
    for field_ in rows[0] if rows else []:
        key, sep, value = field_.strip().partition("=")
        options[key.strip().lower()] = value.strip() if sep else "true"
    return options


def image_registry(ref: str) -> str:
    """The registry host of an image reference (`docker.io` when none is named)."""
    first, sep, _ = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return DOCKER_HUB


def base_allowed(ref: str, allowed_bases: Iterable[str], allowed_registries: Iterable[str]) -> bool:
    """True when `ref` matches an allowed base pattern or comes from an allowed registry."""
    candidates = {ref}
    if ":" not in ref.rpartition("/")[2] and "@" not in ref:
        candidates.add(f"{ref}:latest")
    for pattern in allowed_bases:
        pattern = pattern.strip()
        if pattern and any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            return True
    registry = image_registry(ref)
    return any(registry == r.strip().rstrip("/") for r in allowed_registries if r.strip())


def _sources(args: str) -> list[str]:
    """The source arguments of ADD/COPY (everything but the destination), shell or JSON form."""
    if args.startswith("["):
        try:
            parts = json.loads(args)
        except ValueError:
            parts = None
        if isinstance(parts, list):
            return [str(p) for p in parts[:-1]]
    return args.split()[:-1]


class _Checker:
    def __init__(self, allowed_bases: list[str], allowed_registries: list[str]) -> None:
        self.allowed_bases = allowed_bases
        self.allowed_registries = allowed_registries
        self.report = PolicyReport()
        self.stages: set[str] = set()
        self.stage_count = 0
        self.final_user = ""
        self.final_user_line = 0

    def error(self, rule: str, line: int, message: str) -> None:
        self.report.errors.append(Violation(rule, line, message))

    def check_header(self, header: list[tuple[int, str]]) -> None:
        for number, comment in header:
            match = _DIRECTIVE_RE.match(comment)
            if match and match.group(1).lower() in ("syntax", "escape", "check"):
                name = match.group(1).lower()
                self.error(f"no-{name}-directive", number, f"the parser directive '# {name}=' is not allowed")

    def check_base(self, ref: str, line: int, rule: str) -> None:
        if ref.lower() == "scratch" or ref.lower() in self.stages:
            return
        if "$" in ref:
            self.error(rule, line, f"'{ref}' uses a variable; name the image explicitly")
        elif not base_allowed(ref, self.allowed_bases, self.allowed_registries):
            self.error(rule, line, f"'{ref}' is not in the allowed base images or registries")

    def check_run_flags(self, flags: list[str], rest: str, line: int) -> None:
        """RUN's flags: no host network, no insecure mode, only the allowed mount types."""
        for index, flag in enumerate(flags):
            name, sep, value = flag.partition("=")
            name = name.lower()
            value = value.strip("\"'").lower()
            if name == "--network" and value == "host":
                self.error("no-network-host", line, "RUN --network=host is not allowed")
            elif name == "--security" and value == "insecure":
                self.error("no-insecure", line, "RUN --security=insecure is not allowed")
            elif name == "--mount":
                if not sep:
                    # `--mount type=secret` (no '='): take the next word as its value, as a
                    # lenient reader might, and refuse the spelling either way.
                    following = flags[index + 1] if index + 1 < len(flags) else _partition_ws(rest)[0]
                    self.check_mount(following, line)
                    self.error("mount-syntax", line, "write RUN --mount=<options> (with '=')")
                else:
                    self.check_mount(flag.partition("=")[2], line)

    def check_mount(self, spec: str, line: int) -> None:
        """One `--mount` value: an allowed type, no variables, `from=` an allowed image or stage."""
        if "$" in spec:
            self.error("mount-type", line, f"'--mount={spec}' uses a variable; spell the options out")
            return
        options = _mount_options(spec.strip())
        if options is None:
            self.error("mount-type", line, f"'--mount={spec}' could not be read")
            return
        kind = options.get("type", "bind").strip("\"'").lower()  # BuildKit's default type is bind
        if kind not in ALLOWED_MOUNT_TYPES:
            allowed = ", ".join(sorted(ALLOWED_MOUNT_TYPES))
            self.error("mount-type", line,
                       f"RUN --mount type '{kind}' is not allowed (allowed: {allowed})")
            return
        source = options.get("from", "")
        if source and not source.isdigit() and source.lower() not in self.stages:
            self.check_base(source, line, "allowed-base")

    def instruction(self, ins: Instruction, *, nested: bool = False) -> None:
        flags, rest = _split_flags(ins.args)
        if ins.keyword == "FROM" and not nested:
            parts = rest.split()
            if not parts:
                self.error("from-syntax", ins.line, "FROM names no image")
                return
            self.check_base(parts[0], ins.line, "allowed-base")
            if len(parts) >= 3 and parts[1].upper() == "AS":
                self.stages.add(parts[2].lower())
            self.stage_count += 1
            self.final_user, self.final_user_line = "", ins.line
        elif ins.keyword == "RUN":
            self.check_run_flags(flags, rest, ins.line)
        elif ins.keyword == "ADD":
            for source in _sources(rest):
                if _URL_RE.match(source):
                    self.error("no-add-url", ins.line, f"ADD from a URL ({source}) is not allowed")
        elif ins.keyword == "COPY":
            for flag in flags:
                name, _, value = flag.partition("=")
                index = value.isascii() and value.isdigit()
                if name == "--from" and not index and value.lower() not in self.stages:
                    self.check_base(value, ins.line, "allowed-base")
        elif ins.keyword == "USER" and not nested:
            self.final_user = rest.split(":")[0].strip()
            self.final_user_line = ins.line
        elif ins.keyword == "ONBUILD":
            self.instruction(_instruction(ins.line, rest), nested=True)


def check_dockerfile(
    text: str, *, allowed_bases: Iterable[str] = (), allowed_registries: Iterable[str] = ()
) -> PolicyReport:
    """Check a Dockerfile against the policy; see the module docstring for the rules."""
    checker = _Checker(list(allowed_bases), list(allowed_registries))
    instructions, header = parse_instructions(text)
    checker.check_header(header)
    if not instructions or instructions[0].keyword not in ("FROM", "ARG"):
        checker.error("from-first", instructions[0].line if instructions else 1,
                      "a Dockerfile must start with FROM")
    for ins in instructions:
        checker.instruction(ins)
    if checker.stage_count and checker.final_user.lower() in _ROOT_USERS:
        checker.report.warnings.append(Violation(
            "runs-as-root", checker.final_user_line,
            "the final stage runs as root; add a USER instruction with an unprivileged user",
        ))
    checker.report.total_steps = len(instructions)
    return checker.report
