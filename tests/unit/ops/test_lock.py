"""The lock's platform matrix: which of a multi-platform lock's entries a cell installs, which cells a lock
covers (from the files its torch entries name), and the platform tags handed to pip for each."""

from __future__ import annotations

from adaline_repro.ops.lock import PLATFORMS, PYTHONS, covered, for_cell

LINUX_X86, MACOS, LINUX_ARM = PLATFORMS
_LOCK = f"""\
# a header
numpy==2.4.6 \\
    --hash=sha256:{"a" * 64}
    # via -r requirements.in
torch==2.13.0+cpu ; {LINUX_X86.marker} \\
    --hash=sha256:{"b" * 64}
    # torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl
torch==2.13.0 ; {MACOS.marker} \\
    --hash=sha256:{"c" * 64} \\
    --hash=sha256:{"d" * 64}
    # torch-2.13.0-cp311-cp311-macosx_14_0_arm64.whl
    # torch-2.13.0-cp313-cp313-macosx_14_0_arm64.whl
tqdm==4.70.1 \\
    --hash=sha256:{"e" * 64}
"""


def test_a_cell_installs_the_unmarked_entries_and_only_its_own_torch_without_its_marker():
    mac = for_cell(_LOCK, MACOS, "3.12")
    assert "numpy==2.4.6" in mac
    assert "tqdm==4.70.1" in mac
    assert "torch==2.13.0 \\\n" in mac
    assert ";" not in mac  # selected for the cell, so no marker left for pip to judge by the machine it runs on
    assert "+cpu" not in mac
    linux = for_cell(_LOCK, LINUX_X86, "3.11")
    assert "torch==2.13.0+cpu" in linux
    assert "macosx" not in linux
    assert "tqdm==4.70.1" in linux
    arm = for_cell(_LOCK, LINUX_ARM, "3.13")
    assert "torch" not in arm
    assert "numpy==2.4.6" in arm


def test_the_cells_covered_are_those_whose_wheel_the_lock_names():
    assert [(platform.name, python) for platform, python in covered(_LOCK)] == [
        ("Linux x86-64", "3.11"),
        ("macOS arm64", "3.11"),
        ("macOS arm64", "3.13"),
    ]


def test_the_matrix_is_cpython_3_11_to_3_13_on_three_platforms_with_every_tag_they_accept():
    assert PYTHONS == ("3.11", "3.12", "3.13")  # pyproject.toml's requires-python
    assert MACOS.tags[0] == "macosx_14_0_arm64"
    assert MACOS.tags[-1] == "macosx_10_4_universal2"
    assert LINUX_ARM.tags[0] == "manylinux_2_36_aarch64"
    assert "manylinux2014_aarch64" in LINUX_ARM.tags
    assert "manylinux_2_28_x86_64" in LINUX_X86.tags
    assert "manylinux1_x86_64" in LINUX_X86.tags
    assert not set(LINUX_ARM.tags) & set(LINUX_X86.tags)
