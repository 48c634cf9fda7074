import yaml
from click.testing import CliRunner

from fakeface_ray.cli import cli


def test_help_lists_the_commands():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "demo-data", "run", "extract", "train", "show-config"):
        assert command in result.output


def test_run_keeps_the_original_flags():
    result = CliRunner().invoke(cli, ["run", "--help"])
    assert "--infile" in result.output and "--testsplit" in result.output


def test_show_config_applies_overrides():
    result = CliRunner().invoke(cli, ["show-config", "--set", "train.backend=loky", "--set", "extract.margin=0"])
    assert result.exit_code == 0
    shown = yaml.safe_load(result.output)
    assert shown["train"]["backend"] == "loky" and shown["extract"]["margin"] == 0.0


def test_user_errors_exit_2_with_a_message_and_no_traceback(tmp_path):
    runner = CliRunner()
    cases = [
        (["show-config", "--set", "train.kernal=rbf"], "did you mean 'train.kernels'"),
        (["run", "--infile", str(tmp_path / "missing"), "--out", str(tmp_path / "out")], "input not found"),
        (["run", "--testsplit", "1.5"], "between 0 and 1"),
        (["show-config", "--config", str(tmp_path / "none.yaml")], "config file not found"),
    ]
    for args, message in cases:
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
