"""The image a new workspace gets when the admin does not choose one.

Until the real workspace image (VS Code and JupyterLab) has been built on this install, that is
the configured default, normally the tiny test image; once the `build_workspace_image` task has
succeeded, the real image. An install that set `SLIPWAY_DEFAULT_IMAGE` to anything other than
the test image keeps its choice.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from app.worker.workspace_image import REAL_IMAGE, last_build, real_image_built

TEST_IMAGE = "slipway/test-workspace:latest"


@dataclass(frozen=True)
class DefaultImage:
    """The default image's reference, how forms label it, and whether it is the test image."""

    ref: str
    label: str
    is_test: bool


def default_workspace_image() -> DefaultImage:
    """The image approvals and the provision form use by default, with a label for people."""
    configured = current_app.config["DEFAULT_IMAGE"]
    if configured != TEST_IMAGE:
        return DefaultImage(configured, configured, False)
    if real_image_built():
        return DefaultImage(REAL_IMAGE, f"{REAL_IMAGE} (VS Code and JupyterLab)", False)
    build = last_build()
    if build is not None and not build.is_finished:
        note = f"the real image is being built: task #{build.id}, {build.progress}%"
    else:
        note = "a placeholder page per app; build the real image with `flask build-workspace-image`"
    return DefaultImage(TEST_IMAGE, f"{TEST_IMAGE} (test image: {note})", True)
