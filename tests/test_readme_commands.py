"""Every command of README.md and export/README.md runs as documented (a failing one is a bug).

The commands and how each is run (small inputs, substitutions, skip reasons) are the table
``COMMANDS`` of ``tests/readme_commands.py``; its docstring says how to add a command. This file
checks that the table and the documents list the same commands, and runs the README's deraining,
conversion, preset, evaluation and scoring commands; ``test_readme_commands_train.py``,
``test_readme_commands_serving.py`` and ``test_readme_commands_export.py`` run the training,
SavedModel/serving and TFLite ones (one file per pytest-xdist worker with ``--dist loadfile``).
"""

from __future__ import annotations

import pytest
import readme_commands as rc


def test_extraction_joins_continuations_strips_comments_and_keeps_heredocs():
    markdown = "\n".join(
        [
            "```bash",
            "# a comment line",
            "tfderain presets   # a trailing comment",
            'tfderain derain "a # b.jpg" -o x.png',
            "tfderain train --config x \\",
            "    --set a=1 \\",
            "    --jit",
            "",
            "python - <<'EOF'",
            "print(1)  # kept",
            "EOF",
            "```",
            "```python",
            "not_a_command()",
            "```",
        ]
    )
    assert rc.extract(markdown) == [
        "tfderain presets",
        'tfderain derain "a # b.jpg" -o x.png',
        "tfderain train --config x --set a=1 --jit",
        "python - <<'EOF'\nprint(1)  # kept\nEOF",
    ]


def test_every_documented_command_is_in_the_table_and_nothing_else():
    documented = set(rc.documented_commands())
    listed = set(rc.COMMANDS)
    assert documented - listed == set(), "documented commands missing from COMMANDS"
    assert listed - documented == set(), "COMMANDS entries no document has (any more)"


def test_the_table_is_consistent():
    for command, how in rc.COMMANDS.items():
        if isinstance(how, rc.Skip):
            assert how.reason
            continue
        assert how.file in rc.FILES, command
        assert set(how.inputs) <= set(rc.INPUTS), command
        how.command(command)  # every replaced text is in the command
    for key, name in rc.FILES.items():  # each file runs the commands of its key
        assert f'rc.commands_of("{key}")' in (rc.REPO / "tests" / name).read_text(), name


@pytest.mark.slow
@pytest.mark.parametrize("command", rc.commands_of("docs"), ids=rc.test_id)
def test_documented_command(command, readme_inputs, tmp_path):
    rc.run_documented(command, readme_inputs, tmp_path)
