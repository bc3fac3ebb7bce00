"""The Dockerfile policy checker and the build-context checker (pure functions)."""

from __future__ import annotations

import io
import tarfile

import pytest

from app.images.context import ContextError, check_context
from app.images.policy import base_allowed, check_dockerfile, image_registry

BASES = ["debian:12", "busybox:*", "127.0.0.1:5000/*"]


def check(text: str, **kw):
    kw.setdefault("allowed_bases", BASES)
    kw.setdefault("allowed_registries", ["registry.example.org"])
    return check_dockerfile(text, **kw)


def rules(report) -> set[str]:
    return {v.rule for v in report.errors}


def test_allowed_dockerfile_passes_with_step_count():
    report = check("FROM debian:12\nRUN echo hi \\\n    && echo there\nUSER 1000\nCMD [\"sh\"]\n")
    assert report.ok and report.warnings == []
    assert report.total_steps == 4


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("# syntax=docker/dockerfile:1\nFROM debian:12\n", "no-syntax-directive"),
        ("#SYNTAX = evil/frontend\nFROM debian:12\n", "no-syntax-directive"),
        ("# escape=`\nFROM debian:12\n", "no-escape-directive"),
        ("FROM debian:12\nRUN --network=host curl x\n", "no-network-host"),
        ("FROM debian:12\nRUN --mount=type=cache,target=/x --security=insecure id\n", "no-insecure"),
        ("FROM debian:12\nADD https://example.org/x.tgz /x\n", "no-add-url"),
        ("FROM debian:12\nADD [\"http://example.org/a\", \"/a\"]\n", "no-add-url"),
        ("FROM debian:12\nADD git@github.com:a/b.git /b\n", "no-add-url"),
        ("FROM ubuntu:22.04\n", "allowed-base"),
        ("FROM debian:11\n", "allowed-base"),
        ("ARG B=debian:12\nFROM ${B}\n", "allowed-base"),
        ("FROM debian:12\nCOPY --from=alpine:3 /x /x\n", "allowed-base"),
        ("FROM debian:12\nONBUILD RUN --network=host id\n", "no-network-host"),
        ("RUN id\n", "from-first"),
    ],
)
def test_refused_dockerfiles_name_their_rule(text, rule):
    report = check(text)
    assert not report.ok
    assert rule in rules(report), report.errors
    assert all(str(v.line) in str(v) for v in report.errors)


def test_violation_reports_its_line():
    report = check("FROM debian:12\n\nRUN echo ok\nADD http://x/y /y\n")
    assert [(v.rule, v.line) for v in report.errors] == [("no-add-url", 4)]


def test_multi_stage_names_and_registries():
    text = (
        "FROM busybox:1.36 AS Build\nRUN echo\n"
        "FROM registry.example.org/team/base:1\nCOPY --from=build /x /x\n"
        "FROM build\nUSER app\n"
    )
    report = check(text)
    assert report.ok, report.errors
    assert report.warnings == []


def test_root_final_stage_warns_but_passes():
    report = check("FROM debian:12\nUSER app\nFROM debian:12\nRUN id\n")
    assert report.ok
    assert [w.rule for w in report.warnings] == ["runs-as-root"]
    assert check("FROM debian:12\nUSER root:root\n").warnings[0].rule == "runs-as-root"


def test_registry_parsing_and_matching():
    assert image_registry("debian:12") == "docker.io"
    assert image_registry("library/debian") == "docker.io"
    assert image_registry("127.0.0.1:5000/x:1") == "127.0.0.1:5000"
    assert base_allowed("busybox", ["busybox:latest"], [])
    assert base_allowed("127.0.0.1:5000/a/b:2", [], ["127.0.0.1:5000"])
    assert not base_allowed("127.0.0.1:5001/a", [], ["127.0.0.1:5000"])


def _tar(members, gz: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w") as archive:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
            else:
                info.type = tarfile.SYMTYPE if kind == "sym" else tarfile.LNKTYPE
                info.linkname = payload
                archive.addfile(info)
    return buffer.getvalue()


def test_valid_context_passes():
    data = _tar([("Dockerfile", "file", b"FROM debian:12\n"), ("app/x", "file", b"1"),
                 ("app/link", "sym", "x"), ("app/up", "sym", "../Dockerfile")], gz=True)
    summary = check_context(data, max_unpacked_bytes=1000)
    assert summary.entries == 4 and summary.has_dockerfile


@pytest.mark.parametrize(
    "members",
    [
        [("../evil", "file", b"x")],
        [("a/../../evil", "file", b"x")],
        [("/etc/passwd", "file", b"x")],
        [("link", "sym", "/etc/passwd")],
        [("a/link", "sym", "../../outside")],
        [("hard", "lnk", "../outside")],
    ],
)
def test_escaping_contexts_are_refused(members):
    with pytest.raises(ContextError):
        check_context(_tar(members), max_unpacked_bytes=1000)


def test_non_tar_and_oversized_contexts_are_refused():
    with pytest.raises(ContextError, match="not a tar"):
        check_context(b"hello, not a tarball" * 100, max_unpacked_bytes=1000)
    with pytest.raises(ContextError, match="more than"):
        check_context(_tar([("big", "file", b"x" * 2000)]), max_unpacked_bytes=1000)


@pytest.mark.parametrize(
    "run",
    [
        "RUN --mount=type=secret,id=npm cat /run/secrets/npm",
        "RUN --mount=type=ssh git clone git@example.org:a/b.git",
        "RUN --mount=id=npm,type=secret cat /run/secrets/npm",
        "RUN --mount=TYPE=SECRET,id=npm cat /run/secrets/npm",
        "RUN --MOUNT=type=secret,id=npm id",
        'RUN --mount="type=secret,id=npm" id',
        "RUN --mount=\"type=ssh\" id",
        "RUN --mount type=secret,id=npm cat /run/secrets/npm",
        "RUN\t--mount=type=secret,id=npm\tid",
        "RUN --mount=type=cache,target=/c \\\n    --mount=type=secret,id=npm id",
        "RUN \\\n  --mount=type=ssh \\\n  id",
        "run --mount=type=secret,id=x id",
        "ONBUILD RUN --mount=type=secret,id=x id",
        "RUN --mount=type=$T,id=x id",
        "RUN --mount=type=devices id",
    ],
)
def test_secret_and_ssh_mounts_are_refused_however_spelled(run):
    report = check(f"FROM debian:12\n{run}\nUSER 1000\n")
    assert not report.ok
    assert rules(report) & {"mount-type", "mount-syntax"}, report.errors


@pytest.mark.parametrize(
    "run",
    [
        "RUN --mount=type=cache,target=/var/cache/apt apt-get update",
        "RUN --mount=type=bind,source=req.txt,target=/r.txt pip install -r /r.txt",
        "RUN --mount=target=/src ls /src",
        "RUN --mount=type=tmpfs,target=/tmp id",
        "RUN --mount=type=CACHE,target=/c id",
        "RUN --mount=type=bind,from=debian:12,target=/d ls /d",
    ],
)
def test_allowed_mount_types_pass(run):
    report = check(f"FROM debian:12\n{run}\nUSER 1000\n")
    assert report.ok, report.errors


def test_bind_mount_from_an_unallowed_image_is_refused_and_from_a_stage_passes():
    refused = check("FROM debian:12\nRUN --mount=type=bind,from=alpine:3,target=/a ls\nUSER 1000\n")
    assert rules(refused) == {"allowed-base"}
    staged = check("FROM debian:12 AS tools\nFROM debian:12\n"
                   "RUN --mount=from=tools,target=/t ls /t\nUSER 1000\n")
    assert staged.ok, staged.errors


def test_tab_after_the_keyword_still_reads_the_instruction():
    assert rules(check("FROM debian:12\nRUN\t--network=host id\n")) == {"no-network-host"}
    assert rules(check("FROM\tubuntu:22.04\n")) == {"allowed-base"}


def test_allowed_mount_types_are_listed_and_exclude_secret_and_ssh():
    from app.images.policy import ALLOWED_MOUNT_TYPES

    assert set(ALLOWED_MOUNT_TYPES) == {"bind", "cache", "tmpfs"}
