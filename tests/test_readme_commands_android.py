"""The commands of android_demo/README.md (the app's models) run as documented.

How each is run is the table ``COMMANDS`` of ``tests/readme_commands.py``;
``test_readme_commands.py``
checks that it lists every documented command.
"""

from __future__ import annotations

import pytest
import readme_commands as rc


@pytest.mark.slow
@pytest.mark.parametrize("command", rc.commands_of("android"), ids=rc.test_id)
def test_documented_command(command, readme_inputs, tmp_path):
    rc.run_documented(command, readme_inputs, tmp_path)
