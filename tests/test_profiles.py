"""Profiles: the built-in set, user profiles, and errors that name file, key and line."""
from __future__ import annotations

import pytest

from gptoss_deploy.backends import REGISTRY
from gptoss_deploy.planner.errors import UsageError
from gptoss_deploy.planner.profiles import available_profiles, load_profile

REQUIRED = {"laptop", "workstation", "server", "aws", "azure", "auto"}
NAMES = REGISTRY


def test_every_required_profile_ships_and_validates(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    loaded = {p.name: p for p in available_profiles(NAMES)}
    assert REQUIRED <= set(loaded)
    assert all(p.source == "built-in" and p.profile.description for p in loaded.values())
    assert loaded["aws"].profile.backend == "bedrock" and loaded["azure"].profile.backend == "azure"


def _write(tmp_path, text):
    path = tmp_path / "mine.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("body,expected", [
    ('description = "x"\ncontxt = 8192\n', "mine.toml:2: contxt: unknown key"),
    ('description = "x"\n\ncontext = "8192"\n', "mine.toml:3: context: Input should be a valid integer"),
    ('description = "x"\ncontext = 999999\n', "mine.toml:2: context: Input should be less than or equal to 131072"),
    ('description = "x"\nbackend = "tgi"\n', "mine.toml:2: backend: Input should be 'auto', 'llamacpp'"),
    ('context = 8192\n', "mine.toml: description: Field required"),
    ('description = "x\n', "mine.toml: not valid TOML"),
])
def test_invalid_profile_names_file_key_and_line(tmp_path, body, expected):
    with pytest.raises(UsageError) as err:
        load_profile(str(_write(tmp_path, body)), NAMES)
    assert expected in err.value.message
    assert "\n" not in err.value.message


def test_user_profile_in_config_dir_is_found_by_name(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    user_dir = tmp_path / "gptoss-deploy" / "profiles"
    user_dir.mkdir(parents=True)
    (user_dir / "gaming-rig.toml").write_text('description = "my rig"\ncontext = 65536\n')
    loaded = load_profile("gaming-rig", NAMES)
    assert (loaded.source, loaded.profile.context) == ("user", 65536)
    assert "gaming-rig" in {p.name for p in available_profiles(NAMES)}


def test_unknown_profile_lists_the_choices(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    with pytest.raises(UsageError, match="unknown profile 'lapton'; choose one of: auto, aws, azure, laptop"):
        load_profile("lapton", NAMES)
