"""Actions that are not allowed now are shown disabled, and trying one says why: the engine's
reason (Lab.allowed), never a rule copied into the UI."""

from __future__ import annotations

from textual.command import CommandPalette

from tui.dialogs import HelpScreen, ProtectDialog

from tests.conftest import step2

from .helpers import filter_to, keys, make_app, settle, type_text


def setup_cloud(lab) -> None:
    """STEP 2 up to the cloud's protection, through the engine (the keyboard path is test_step2)."""
    step2(lab, map_network=False)


async def test_generation2_vm_cannot_be_protected_and_the_ui_says_why(sample_lab):
    setup_cloud(sample_lab)
    reason = sample_lab.allowed("protect", "MYGEN2VM")
    assert reason and "generation 2" in reason
    jobs_before = len(sample_lab.jobs())
    app = make_app(sample_lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        await filter_to(pilot, "MYGEN2VM")
        panel = app.query_one("#protected")
        assert panel.table.cursor_key == "vm:MYGEN2VM"

        # shown disabled in the key bar
        keybar = app.query_one("#keybar")
        assert ("e", "Protect", False) in keybar.groups()

        # trying it says why, with the engine's own words; nothing opens, nothing changes
        await keys(pilot, "e")
        assert not isinstance(app.screen, ProtectDialog)
        assert app.last_refusal == reason
        assert len(sample_lab.jobs()) == jobs_before
        assert sample_lab.status()["vms"][3]["protection"] == "not protected"

        # ? lists the key with the same reason
        await keys(pilot, "question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "generation 2" in app.screen.text.plain
        await keys(pilot, "escape")

        # the command palette lists it too, with the reason, and choosing it says why
        titles = {t: h for t, h, _ in app.palette_commands()}
        assert "not now: " + reason in titles["Enable protection"]
        await keys(pilot, "ctrl+p")
        assert isinstance(app.screen, CommandPalette)
        await type_text(pilot, "Enable protection")
        await pilot.pause(0.3)
        await keys(pilot, "enter")
        await settle(pilot)
        assert not isinstance(app.screen, ProtectDialog)
        assert app.last_refusal == reason

        # a VM that may be protected has the key enabled
        await keys(pilot, "escape")
        await filter_to(pilot, "MYBSD01")
        assert ("e", "Protect", True) in keybar.groups()


async def test_protect_before_the_cloud_is_configured_gives_the_engines_reason(lab):
    reason = lab.allowed("protect", "WEB01")
    assert reason
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "2")
        await filter_to(pilot, "WEB01")
        await keys(pilot, "e")
        assert app.last_refusal == reason
        assert not isinstance(app.screen, ProtectDialog)


async def test_register_twice_is_refused_with_the_engines_reason(lab):
    lab.run_until_done([lab.register_server("SC01")])
    reason = lab.allowed("register_server", "SC01")
    assert reason
    app = make_app(lab)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await keys(pilot, "3")
        await filter_to(pilot, "SC01")
        keybar = app.query_one("#keybar")
        assert ("r", "Register", False) in keybar.groups()
        await keys(pilot, "r")
        assert app.last_refusal == reason
